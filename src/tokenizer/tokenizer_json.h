// A fast reader for tokenizer.json: the two large members (model.vocab, model.merges) go straight
// into flat vectors, everything else into a small nlohmann DOM. nlohmann alone needs ~0.5 s for
// the 11 MB Qwen3 file; this reader keeps loading well under the 200 ms goal.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace moerun {

// tokenizer.json split into its bulky parts and the rest.
struct TokenizerJson {
  nlohmann::json rest;  // the whole document without model.vocab and model.merges
  std::vector<std::pair<std::string, int64_t>> vocab;  // model.vocab in file order
  std::vector<std::string> merges;                     // model.merges as "a b"
  bool has_vocab = false;                              // model.vocab was present (as an object)
  bool has_merges = false;                             // model.merges was present (as an array)
};

// Parses tokenizer.json text; throws Error naming `path` and the byte offset on malformed JSON or
// when model.vocab / model.merges have the wrong shape.
TokenizerJson parse_tokenizer_json(std::string_view text, const std::string& path);

}  // namespace moerun
