#include "core/paths.h"

#include <cstdlib>

namespace moerun {

std::string cache_dir() {
  if (const char* d = std::getenv("MOERUN_CACHE"); d && *d) return d;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return std::string(x) + "/moerun";
  if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.cache/moerun";
  return ".moerun-cache";
}

std::string default_tokenizer_dir() {
  return cache_dir() + "/tokenizer-qwen3";
}

}  // namespace moerun
