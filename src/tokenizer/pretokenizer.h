// Pre-tokenizer: splits normalised text into the pieces BPE works on, with the regex of
// tokenizer.json run by PCRE2 (UTF + UCP, JIT) so that pieces equal those of Hugging Face's
// `tokenizers`.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace moerun {

// The Split regex that Hugging Face's tokenizer.json carries for a `tokenizer.ggml.pre` name.
// Throws Error for names moerun does not know.
const std::string& hf_regex_for_pre(std::string_view pre);

// The `tokenizer.ggml.pre` name whose tokenizer.json regex is exactly `regex`, or "" when unknown.
std::string pre_name_for_regex(std::string_view regex);

// Half-open byte range [begin, end) of one piece inside the split text.
struct PieceSpan {
  uint32_t begin;
  uint32_t end;
};

// A compiled pre-tokenizer; thread-safe (each call uses its own match state).
class PreTokenizer {
 public:
  // Compiles the regex for `pre` (e.g. "qwen2"); throws Error for unknown names.
  explicit PreTokenizer(std::string_view pre);
  ~PreTokenizer();
  PreTokenizer(const PreTokenizer&) = delete;
  PreTokenizer& operator=(const PreTokenizer&) = delete;

  // Appends the pieces of `text` (valid UTF-8, at most 4 GiB) to `out`, covering it without gaps:
  // regex matches and the text between them ("Isolated" split behaviour).
  void split(std::string_view text, std::vector<PieceSpan>& out) const;

 private:
  void* code_ = nullptr;  // pcre2_code_8*
};

}  // namespace moerun
