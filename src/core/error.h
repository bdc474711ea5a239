// Errors: exceptions with a clear message at the boundaries, and a check macro for invariants.
#pragma once

#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace moerun {

// An error caused by input from outside (a file, a flag, a request); its message names the culprit.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Throws moerun::Error with a message formatted by fmt.
template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

// Aborts the process with file, line and message; for broken invariants, never for bad input.
[[noreturn]] void abort_with(const char* file, int line, const std::string& message);

}  // namespace moerun

// Aborts with file and line when an internal invariant does not hold.
#define MOERUN_CHECK(cond)                                                         \
  do {                                                                             \
    if (!(cond)) ::moerun::abort_with(__FILE__, __LINE__, "check failed: " #cond); \
  } while (0)

// Debug-only assertion for hot loops.
#ifdef NDEBUG
#define MOERUN_DASSERT(cond) ((void)0)
#else
#define MOERUN_DASSERT(cond) MOERUN_CHECK(cond)
#endif
