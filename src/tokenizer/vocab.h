// The data a byte-level BPE tokenizer is built from, as a Hugging Face directory or a GGUF carries
// it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace moerun {

// Token kinds as llama.cpp's GGUF `tokenizer.ggml.token_type` stores them.
enum class TokenType : int32_t {
  undefined = 0,
  normal = 1,
  unknown = 2,
  control = 3,
  user_defined = 4,
  unused = 5,
  byte = 6,
};

// Everything needed to tokenize and to format chats: vocabulary, merges, special ids, template.
struct VocabData {
  std::string model = "gpt2";          // tokenizer.ggml.model
  std::string pre = "qwen2";           // tokenizer.ggml.pre (selects the pre-tokenizer regex)
  std::vector<std::string> tokens;     // [n_vocab] token text in byte-level (GPT-2 unicode) form
  std::vector<TokenType> token_types;  // [n_vocab]
  std::vector<std::string> merges;     // "left right" pairs, by rank
  int32_t bos_id = -1;                 // -1 when absent
  int32_t eos_id = -1;
  int32_t pad_id = -1;
  bool add_bos = false;
  std::string chat_template;  // Jinja source; empty when absent
};

// Loads tokenizer.json (+ tokenizer_config.json when present) from a Hugging Face directory and
// returns the vocabulary as llama.cpp would write it to GGUF, padded with unused "[PADn]" tokens up
// to `pad_to` entries when pad_to is larger. Throws Error naming the file and the problem.
VocabData load_hf_vocab(const std::string& dir, int64_t pad_to = 0);

}  // namespace moerun
