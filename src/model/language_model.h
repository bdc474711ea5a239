// What the engine needs from any architecture: sequence state, and a forward pass over a batch.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "moe/cache_policy.h"
#include "moe/cost_model.h"

namespace moerun {

class GgufFile;
class ThreadPool;
class MoeDispatcher;
class StageClock;
class ExpertStats;
class RoutingOverride;
class RoutingObserver;

// Facts about a loaded model that front ends and the engine use.
struct ModelInfo {
  std::string architecture;  // "qwen3next" or "qwen3moe"
  std::string name;          // general.name, or the file name
  int64_t vocab = 0;         // rows of the output matrix (logits per token)
  int64_t context_length = 0;
  int64_t n_layers = 0;
  int64_t n_experts = 0;
  int64_t n_experts_used = 0;
};

// One conversation's model state: KV caches, conv and recurrent states, and its position.
class SequenceState {
 public:
  virtual ~SequenceState() = default;
  // Tokens processed so far (the position of the next token).
  virtual int64_t position() const = 0;
  // Most tokens this state can hold.
  virtual int64_t capacity() const = 0;
  // Forgets everything (position 0), keeping the allocation.
  virtual void reset() = 0;
  // Bytes of memory the state holds.
  virtual int64_t bytes() const = 0;
};

// Tokens of one or more sequences processed together. The tokens of one sequence are contiguous
// and in order; each is placed at its sequence's next position.
struct Batch {
  std::vector<int32_t> tokens;       // [n] token ids
  std::vector<int32_t> sequence;     // [n] index into the `states` span given to forward()
  std::vector<uint8_t> want_logits;  // [n] 1 where logits are wanted (e.g. each sequence's last)

  // Appends `count` tokens of sequence `seq`, asking logits for the last one only when `logits`.
  void add(std::span<const int32_t> ids, int32_t seq, bool logits_for_last);
  // Number of tokens.
  int64_t size() const { return static_cast<int64_t>(tokens.size()); }
  // Empties the batch, keeping its memory (no allocation when it is refilled).
  void clear() {
    tokens.clear();
    sequence.clear();
    want_logits.clear();
  }
};

// VRAM use of a model on the GPU, as its accountant counts it.
struct GpuMemoryUse {
  uint64_t budget = 0;
  uint64_t used = 0;
  uint64_t peak = 0;
  std::vector<std::pair<std::string, uint64_t>> categories;  // (name, bytes)
};

// Candidates per row that sampling asks forward_top() for (models on the GPU select this many per
// row there and copy only them back).
constexpr int64_t kTopCandidates = 64;

// A loaded model. forward() is not thread-safe: one engine thread drives it.
class LanguageModel {
 public:
  virtual ~LanguageModel() = default;
  // Architecture, vocabulary and context facts.
  virtual const ModelInfo& info() const = 0;
  // A fresh state for up to `max_tokens` tokens (at most the model's context length).
  virtual std::unique_ptr<SequenceState> new_sequence(int64_t max_tokens) const = 0;
  // Runs the batch, advancing each state; writes logits [n_wanted, vocab] f32, one row per token
  // with want_logits set, in batch order. Throws Error (state unchanged) when a sequence would
  // exceed its capacity or a token id is out of range.
  virtual void forward(const Batch& batch, std::span<SequenceState* const> states,
                       float* logits) = 0;
  // As forward(), but writes only the k largest logits of each wanted row (1 <= k <= vocab):
  // top_logits [n_wanted, k] f32, largest first, equal values by lower id (top_k_rows' order, so
  // the first is forward()'s argmax), and their ids top_ids [n_wanted, k] i32. The default runs
  // forward() and selects on the host; a GPU model selects on the GPU (fastest for
  // k <= kTopCandidates) and copies only the candidates back.
  virtual void forward_top(const Batch& batch, std::span<SequenceState* const> states, int64_t k,
                           float* top_logits, int32_t* top_ids);
  // Per-stage wall time of forward() (disabled until enabled), or null when not measured.
  virtual StageClock* stage_clock() { return nullptr; }
  // Routed-expert counters of the model's dispatcher, or null when it keeps none.
  virtual ExpertStats* expert_stats() { return nullptr; }
  // VRAM of a model on the GPU: its budget, what is in use by category, and the peak; nullopt on
  // the CPU.
  virtual std::optional<GpuMemoryUse> gpu_memory() const { return std::nullopt; }
  // Where the model's parts live (one line, e.g. the GPU plan), for the user.
  virtual std::string describe_placement() const { return "everything on the CPU"; }

 private:
  std::vector<float> top_scratch_;  // [n_wanted, vocab] full logits of the default forward_top
};

// How a model uses the GPU: a VRAM budget and the batch and context sizes to plan it for.
struct GpuOptions {
  bool enabled = false;            // false: everything on the CPU
  uint64_t budget = 0;             // bytes of VRAM at most; 0: free VRAM minus a safety margin
  int64_t max_batch_tokens = 512;  // most tokens one forward() call may carry
  int64_t max_sequences = 16;      // most sequences one forward() call may carry
  bool graphs = true;              // replay decode steps as CUDA graphs
  bool hybrid = false;             // keep routed experts in host memory even when they would fit
  int64_t plan_sequences = 1;      // sequences whose state is reserved before expert slots
  int64_t plan_context = 4096;     // tokens per planned sequence
  CachePolicyKind cache_policy = CachePolicyKind::adaptive;  // expert cache replacement
  std::vector<std::vector<uint64_t>> profile_counts;  // [layers][experts] warm start (optional)
  int64_t max_admissions = 8;     // experts copied into the cache per layer and decode step
  double copy_share = 0.5;        // share of a decode step's misses copied in (the rest: CPU)
  int64_t max_prefetch = 0;       // predicted next-layer experts copied ahead per decode step
  int64_t max_expert_slots = -1;  // hybrid: at most this many cached experts (< 0: what fits)
  int64_t staging_experts = 16;   // hybrid prefill: experts per staging buffer (0: no streaming)
  Calibration calibration;        // the machine's constants for the prefill split (may be empty)
};

// How a model runs: the CPU thread pool and, optionally, who computes the routed experts.
struct ModelOptions {
  ThreadPool* pool = nullptr;        // required
  MoeDispatcher* experts = nullptr;  // null: the model's own CPU dispatcher
  GpuOptions gpu;                    // gpu.enabled: run on the GPU (CUDA builds)

  // Routing hooks (moe/routing_override.h); null: the router decides and nobody observes.
  RoutingOverride* routing_override = nullptr;  // replaces the router's choice (benchmark modes)
  RoutingObserver* routing_observer = nullptr;  // sees each layer's final routing (profiling)
};

// Loads the architecture `file` declares (qwen3next, qwen3moe), on the CPU or (options.gpu) the
// GPU; throws Error naming what is unsupported, missing, mis-shaped or does not fit. The file must
// outlive the model (weights are views into it).
std::unique_ptr<LanguageModel> load_language_model(const GgufFile& file,
                                                   const ModelOptions& options);

}  // namespace moerun
