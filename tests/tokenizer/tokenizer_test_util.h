// Shared by the tokenizer tests: the real Qwen3 tokenizer, loaded once.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "core/paths.h"
#include "tokenizer/tokenizer.h"

namespace moerun {

// The Qwen3 tokenizer directory: $MOERUN_TOKENIZER_DIR or the setup script's cache folder.
inline std::string qwen3_tokenizer_dir() {
  if (const char* d = std::getenv("MOERUN_TOKENIZER_DIR"); d && *d) return d;
  return default_tokenizer_dir();
}

// The Qwen3 tokenizer, or null when its files are not installed (tests then skip).
inline const Tokenizer* qwen3_tokenizer() {
  static const std::unique_ptr<Tokenizer> tok = []() -> std::unique_ptr<Tokenizer> {
    if (!std::filesystem::exists(qwen3_tokenizer_dir() + "/tokenizer.json")) return nullptr;
    return std::make_unique<Tokenizer>(Tokenizer::from_hf_dir(qwen3_tokenizer_dir()));
  }();
  return tok.get();
}

}  // namespace moerun
