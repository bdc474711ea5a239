// One sequence's output rules, shared by the single-sequence generator and the scheduler: stop
// tokens, streaming UTF-8 decoding and stop strings, turning sampled ids into released text.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/stop_strings.h"
#include "tokenizer/streaming_decoder.h"

namespace moerun {

class Tokenizer;

// What one sampled token did to the output.
enum class TokenVerdict {
  keep,        // part of the output; generation goes on
  stop_token,  // an end-of-turn id: not part of the output; generation ends
  stop_string  // completed a stop string: generation ends (the token is part of the output)
};

// Watches one sequence's sampled tokens; not thread-safe.
class TokenTextStream {
 public:
  // `tokenizer` may be null (then no text is produced and stop strings are not checked).
  TokenTextStream(const Tokenizer* tokenizer, std::vector<std::string> stop_strings,
                  std::vector<int32_t> stop_tokens);
  // Handles sampled `id`; appends the text that became safe to show to `text`.
  TokenVerdict push(int32_t id, std::string& text);
  // End of generation: appends the held-back text (nothing after a stop string) to `text`.
  void finish(std::string& text);

 private:
  std::vector<int32_t> stop_tokens_;
  std::unique_ptr<StreamingDecoder> decoder_;
  StopStringMatcher stops_;
};

}  // namespace moerun
