// What front ends give the engine (a request) and get back (events through a handle).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "engine/generator.h"
#include "engine/sampler.h"

namespace moerun {

// Most alternatives a request may ask log-probabilities for (OpenAI's limit).
inline constexpr int32_t kMaxTopLogprobs = 20;

// One generation request, already tokenized and validated by the front end.
struct EngineRequest {
  std::vector<int32_t> prompt;  // token ids, at least one
  SamplingParams sampling;
  int64_t max_tokens = 256;          // generated tokens at most
  std::vector<std::string> stop;     // stop strings (not included in the output)
  std::vector<int32_t> stop_tokens;  // end-of-turn ids (not included in the output)
  bool logprobs = false;             // report each token's log-probability
  int32_t top_logprobs = 0;          // and this many alternatives (0..kMaxTopLogprobs)
  double timeout_seconds = 0;        // from submission to the end; 0: no limit
};

// A token id with its log-probability under the model's distribution (log-softmax of the raw
// logits, before penalties and temperature).
struct TokenLogprob {
  int32_t id = -1;
  float logprob = 0.0f;
};

// Counts and times of one request.
struct RequestUsage {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  double queue_seconds = 0;    // submission to admission
  double prefill_seconds = 0;  // admission to the first sampled token
  double decode_seconds = 0;   // first to last sampled token
};

// Something that happened to a request, in order: token events, then exactly one `done`.
struct EngineEvent {
  enum Kind { token, done };
  Kind kind = token;
  // token: the sampled id (not sent for end-of-turn ids), its log-probability and alternatives
  // when asked, and the text it released (may be empty: held for UTF-8 or a possible stop string).
  TokenLogprob sampled;
  std::vector<TokenLogprob> top;
  std::string text;  // done: the held-back text released at the end
  // done: why it ended; `error` names what went wrong for FinishReason::error.
  FinishReason finish = FinishReason::stop;
  std::string error;
  RequestUsage usage;
};

// A submitted request as the front end sees it: events to wait for, and a cancel switch.
// Shared between the front end's thread and the engine thread.
class RequestHandle {
 public:
  explicit RequestHandle(uint64_t id) : id_(id) {}
  // The engine's number for this request.
  uint64_t id() const { return id_; }
  // Asks the engine to stop the request and free its sequence (a `done` event follows).
  void cancel() { cancelled_.store(true, std::memory_order_relaxed); }
  // True once cancel() was called.
  bool cancel_requested() const { return cancelled_.load(std::memory_order_relaxed); }
  // Moves the events that arrived into `out` (appending), waiting up to `timeout` for the first.
  // Returns false when none arrived in time.
  bool wait_events(std::vector<EngineEvent>& out, std::chrono::milliseconds timeout);
  // True once the `done` event was delivered to wait_events.
  bool finished() const { return finished_; }

  // Engine side: adds an event and wakes the waiter.
  void push(EngineEvent&& event);

 private:
  uint64_t id_;
  std::atomic<bool> cancelled_{false};
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<EngineEvent> events_;
  bool finished_ = false;  // waiter side only
};

}  // namespace moerun
