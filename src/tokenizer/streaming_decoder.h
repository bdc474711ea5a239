// Incremental detokenizer for generation: turns token ids into text that only ever contains
// complete UTF-8 characters, holding back the bytes of a character split across tokens.
#pragma once

#include <cstdint>
#include <string>

#include "tokenizer/tokenizer.h"

namespace moerun {

// One per generated sequence; not thread-safe.
class StreamingDecoder {
 public:
  // `tokenizer` must outlive the decoder; control tokens are rendered when `render_control`.
  explicit StreamingDecoder(const Tokenizer& tokenizer, bool render_control = false)
      : tok_(&tokenizer), render_control_(render_control) {}

  // Text completed by token `id` (possibly empty); invalid byte sequences become U+FFFD.
  std::string push(int32_t id);
  // The held-back bytes of an unfinished character, as U+FFFD (empty when none); resets.
  std::string flush();
  // Number of bytes currently held back (0..3).
  size_t pending() const { return pending_.size(); }

 private:
  const Tokenizer* tok_;
  bool render_control_;
  std::string pending_;
};

}  // namespace moerun
