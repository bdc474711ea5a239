// Byte-level BPE: merges applied by rank (lowest first, leftmost among equals), as Hugging Face's
// `tokenizers` BPE model does without dropout.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>
#include <vector>

#include "tokenizer/vocab.h"

namespace moerun {

// The merge table of a vocabulary, keyed by the ids of the two parts.
class BpeModel {
 public:
  // Builds the byte table and merge table from `vocab` (only `normal` tokens take part in BPE);
  // throws Error when a byte has no token or a merge names a token that is not in the vocabulary.
  explicit BpeModel(const VocabData& vocab);

  // Appends the ids of one pre-tokenized piece of raw bytes (not empty) to `out`.
  void encode_piece(std::string_view bytes, std::vector<int32_t>& out) const;

 private:
  struct Slot {
    uint64_t key = ~uint64_t{0};  // (left << 32) | right; all ones when empty
    int32_t rank = 0;
    int32_t result = 0;
  };
  // The slot of pair (left, right), or null when the pair does not merge.
  const Slot* find_merge(int32_t left, int32_t right) const;
  void insert_merge(int32_t left, int32_t right, int32_t rank, int32_t result);

  std::array<int32_t, 256> byte_token_{};  // byte -> id of its one-character token
  std::vector<Slot> table_;                // open addressing, power-of-two size
  uint64_t mask_ = 0;
};

}  // namespace moerun
