// The engine: one scheduler thread that owns the model's forward pass and serves every active
// sequence together (continuous batching), fed by a bounded queue of requests from front ends.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "engine/engine_request.h"
#include "model/language_model.h"

namespace moerun {

class Tokenizer;
class ExpertStats;

// How the scheduler runs.
struct EngineOptions {
  int64_t max_sequences = 8;          // sequences decoded together at most
  int64_t context = 4096;             // tokens per sequence (prompt + output)
  int64_t max_queue = 64;             // requests waiting for a sequence at most
  int64_t prefill_chunk = 256;        // prompt tokens of one sequence per step
  int64_t step_prefill_tokens = 512;  // prompt tokens of all sequences per step (at least a chunk)
};

// Why submit() refused a request.
enum class SubmitStatus { accepted, queue_full, shutting_down, invalid };

// The result of submit(): a handle when accepted, else why not.
struct Submission {
  SubmitStatus status = SubmitStatus::accepted;
  std::shared_ptr<RequestHandle> handle;  // null unless accepted
  std::string error;                      // what is wrong (invalid)
};

// Counters for monitoring (/metrics); a consistent-enough copy taken from any thread.
struct EngineCounters {
  uint64_t requests_submitted = 0;
  uint64_t requests_rejected = 0;  // queue full or shutting down
  uint64_t requests_finished = 0;  // by any reason, including cancelled and failed
  uint64_t requests_cancelled = 0;
  uint64_t requests_timed_out = 0;
  uint64_t requests_failed = 0;
  uint64_t prompt_tokens = 0;     // prompt tokens processed
  uint64_t generated_tokens = 0;  // tokens sampled
  uint64_t steps = 0;             // forward passes
  int64_t queue_depth = 0;
  int64_t active_sequences = 0;
  int64_t max_sequences = 0;
  int64_t max_queue = 0;
  double tokens_per_second = 0;  // generated tokens per second over the last few seconds
  double busy_seconds = 0;       // time spent in forward passes
};

// Owns the scheduler thread; `model` and `tokenizer` (may be null) must outlive the engine.
class Engine {
 public:
  // Makes the sequence states (max_sequences of `context` tokens) and starts the thread; throws
  // Error on bad options.
  Engine(LanguageModel& model, const Tokenizer* tokenizer, const EngineOptions& options);
  // Cancels everything and joins the thread.
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Queues a request (thread-safe). Invalid requests (empty prompt, prompt longer than the
  // context, ids outside the vocabulary, bad sampling values) are refused here, never queued.
  Submission submit(EngineRequest request);
  // Stops admitting requests; waits up to `grace` for those in flight to finish, then cancels
  // what is left and joins the thread. Idempotent.
  void shutdown(std::chrono::milliseconds grace);
  // Counters (thread-safe).
  EngineCounters counters() const;
  // The options in use.
  const EngineOptions& options() const { return options_; }
  // The model's routed-expert statistics, or null.
  ExpertStats* expert_stats() const { return model_.expert_stats(); }
  // Bytes held by the sequence states.
  int64_t sequence_state_bytes() const { return state_bytes_; }

 private:
  struct Slot;
  void run();
  bool admit();  // returns false when the thread should exit
  void build_batch();
  bool batch_can_use_top() const;
  void after_forward();
  void finish(Slot& slot, FinishReason reason, const std::string& error = {});
  void fail_batch(const std::string& error);

  LanguageModel& model_;
  const Tokenizer* tokenizer_;
  const EngineOptions options_;
  const int64_t vocab_;
  int64_t state_bytes_ = 0;

  mutable std::mutex mutex_;  // guards queue_, stopping_, cancel_all_
  std::condition_variable cv_;
  std::deque<std::pair<std::shared_ptr<RequestHandle>, EngineRequest>> queue_;
  std::deque<std::chrono::steady_clock::time_point> queued_at_;
  bool stopping_ = false;    // no new requests
  bool cancel_all_ = false;  // cancel everything in flight and exit
  uint64_t next_id_ = 1;

  // Scheduler thread state (touched by that thread only).
  std::vector<std::unique_ptr<Slot>> slots_;            // [max_sequences]
  std::vector<std::unique_ptr<SequenceState>> states_;  // [max_sequences], made once
  std::vector<SequenceState*> state_ptrs_;              // [max_sequences]
  std::vector<int64_t> admission_order_;                // slots being prefilled, oldest first
  Batch batch_;
  std::vector<int32_t> logit_slot_;  // [rows] slot of each logits row of the current batch
  std::vector<float> logits_;        // [max_sequences, vocab] f32
  // Steps whose every sequence can sample from the largest logits get only those (forward_top).
  int64_t n_top_ = 0;              // candidates per row: min(kTopCandidates, vocab)
  bool top_step_ = false;          // the current step used forward_top
  std::vector<float> top_logits_;  // [max_sequences, n_top_] f32
  std::vector<int32_t> top_ids_;   // [max_sequences, n_top_]
  std::vector<std::pair<float, int32_t>> top_scratch_;

  // Counters written by the scheduler thread (and submit), read by counters().
  std::atomic<uint64_t> submitted_{0}, rejected_{0}, finished_{0}, cancelled_{0}, timed_out_{0},
      failed_{0}, prompt_tokens_{0}, generated_tokens_{0}, steps_{0};
  std::atomic<int64_t> active_{0};
  std::atomic<double> tokens_per_second_{0}, busy_seconds_{0};
  std::chrono::steady_clock::time_point rate_since_;
  uint64_t rate_tokens_ = 0;

  std::thread thread_;
};

}  // namespace moerun
