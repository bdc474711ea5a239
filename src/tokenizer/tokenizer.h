// The tokenizer: text <-> token ids for a byte-level BPE vocabulary (the Qwen3 family), equal to
// Hugging Face's `tokenizers` on the same tokenizer.json.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/bpe.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/vocab.h"

namespace moerun {

// Whether the text of added tokens (`<|im_start|>`, `<think>`, ...) becomes those tokens.
enum class SpecialTokens {
  as_text,  // never: the text is encoded like any other text (user input, chat messages)
  parse,    // always, as Hugging Face's encode() does (trusted text, raw completion by opt-in)
};

// Half-open byte range [begin, end) of a text.
struct TextRange {
  size_t begin;
  size_t end;
};

// Text with the byte ranges where added-token text may become added tokens (the chat formatter's
// own markup); everything else is untrusted and encoded as plain text.
struct MarkedText {
  std::string text;
  std::vector<TextRange> trusted;  // sorted, non-overlapping
};

// An immutable tokenizer; encode/decode are thread-safe.
class Tokenizer {
 public:
  // Builds the tokenizer from vocabulary data (from load_hf_vocab or a GGUF); throws Error when
  // the data is inconsistent or uses a model/pre-tokenizer moerun does not implement.
  explicit Tokenizer(VocabData vocab);
  // Loads tokenizer.json (+ tokenizer_config.json) from a Hugging Face directory.
  static Tokenizer from_hf_dir(const std::string& dir);

  // Token ids of `text`. Invalid UTF-8 is first repaired (each maximal invalid subpart becomes
  // U+FFFD), then NFC-normalised, pre-tokenized and merged.
  std::vector<int32_t> encode(std::string_view text, SpecialTokens special) const;
  // Appends the ids of `text` to `out`.
  void encode(std::string_view text, SpecialTokens special, std::vector<int32_t>& out) const;
  // Token ids of a marked text: added-token text becomes added tokens only inside trusted ranges.
  std::vector<int32_t> encode(const MarkedText& marked) const;

  // The bytes of a token id sequence; control tokens are included when `render_control`, unused
  // and out-of-range ids produce nothing. The result may end inside a UTF-8 character.
  std::string decode(std::span<const int32_t> ids, bool render_control = true) const;
  // The raw bytes token `id` stands for (empty for unused and out-of-range ids).
  std::string_view token_bytes(int32_t id) const;

  // The id of the token whose vocabulary text is exactly `text`, or -1.
  int32_t find_token(std::string_view text) const;
  int32_t n_vocab() const { return static_cast<int32_t>(vocab_.tokens.size()); }
  bool is_control(int32_t id) const;
  const VocabData& vocab() const { return vocab_; }

 private:
  struct AddedToken {
    std::string text;
    int32_t id;
  };
  // Encodes text containing no added tokens: NFC, pre-tokenize, BPE.
  void encode_plain(std::string_view text, std::vector<int32_t>& out) const;
  // Encodes valid UTF-8 `text`, matching added tokens only where `may_match(begin, end)` holds.
  template <typename MayMatch>
  void encode_with_added(std::string_view text, MayMatch may_match,
                         std::vector<int32_t>& out) const;

  VocabData vocab_;
  uint64_t serial_;  // distinguishes tokenizers in the per-thread piece cache
  std::unique_ptr<BpeModel> bpe_;
  std::unique_ptr<PreTokenizer> pre_;
  std::vector<std::string> bytes_;                        // [n_vocab] raw bytes per id
  std::vector<AddedToken> added_;                         // longest first
  std::array<std::vector<uint32_t>, 256> added_by_byte_;  // first byte -> indices into added_
};

}  // namespace moerun
