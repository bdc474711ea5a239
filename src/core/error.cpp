#include "core/error.h"

#include <cstdio>
#include <cstdlib>

namespace moerun {

void abort_with(const char* file, int line, const std::string& message) {
  std::fprintf(stderr, "moerun: internal error at %s:%d: %s\n", file, line, message.c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace moerun
