// One sequence's generation: prefill the prompt in chunks, then sample token by token until an
// end-of-turn token, a stop string or the token limit, streaming complete UTF-8 text.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "engine/sampler.h"

namespace moerun {

class LanguageModel;
class SequenceState;
class Tokenizer;

// Why generation ended (timeout and error only come from the engine's scheduler).
enum class FinishReason { stop, length, cancelled, timeout, error };

// Name used in APIs: "stop", "length", "cancelled", "timeout", "error".
const char* finish_reason_name(FinishReason reason);

// What to generate.
struct GenerationRequest {
  std::vector<int32_t> prompt;  // token ids, at least one
  SamplingParams sampling;
  int64_t max_tokens = 256;          // generated tokens at most
  std::vector<std::string> stop;     // stop strings (not included in the output)
  std::vector<int32_t> stop_tokens;  // end-of-turn ids (not included in the output)
  int64_t prefill_chunk = 512;       // prompt tokens per forward pass
};

// What came out, with timings.
struct GenerationResult {
  std::vector<int32_t> tokens;  // generated ids (without a final stop token)
  int64_t fed_tokens = 0;  // how many of `tokens` the state has consumed (all but maybe the last)
  std::string text;        // their text, cut before a stop string
  FinishReason finish = FinishReason::length;
  int64_t prompt_tokens = 0;
  double prefill_seconds = 0;
  double decode_seconds = 0;  // from the first to the last sampled token
};

// Callbacks during generation; any may be empty.
struct GenerationCallbacks {
  std::function<void(const std::string&)> on_text;        // complete UTF-8 text as it becomes final
  std::function<void(std::span<const float>)> on_logits;  // logits [vocab] before each sample
  std::function<void(int32_t)> on_token;                  // each sampled id
  std::function<void()> on_prefill_done;                  // once the prompt has been processed
};

// Runs one request on `state` (which keeps the conversation: its position grows). The tokenizer
// may be null (then no text is produced and stop strings are not checked). `cancel` is polled
// between tokens. Throws Error when the prompt does not fit the state's capacity.
GenerationResult generate(LanguageModel& model, SequenceState& state, const Tokenizer* tokenizer,
                          const GenerationRequest& request, const GenerationCallbacks& callbacks,
                          const std::atomic<bool>* cancel = nullptr);

}  // namespace moerun
