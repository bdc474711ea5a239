// The sparse MoE feed-forward block: router (softmax, top-k, renormalise), routed experts through
// a MoeDispatcher, and an optional shared expert scaled by a sigmoid gate (Qwen3-Next).
#pragma once

#include <cstdint>
#include <vector>

#include "ops/cpu/matmul.h"

namespace moerun {

class MoeDispatcher;
struct RoutingHooks;
class StageClock;
class ThreadPool;

// Shape of the MoE blocks of a model.
struct MoeConfig {
  int64_t hidden = 0;
  int64_t n_experts = 0;
  int64_t top_k = 0;
  bool normalize_top_k = true;  // norm_topk_prob
  int64_t shared_ffn = 0;       // 0: no shared expert
};

// Weights of one MoE block other than the routed experts (those belong to the dispatcher).
struct MoeWeights {
  WeightMatrix router;        // [n_experts, hidden]
  WeightMatrix shared_gate;   // [shared_ffn, hidden] (when shared_ffn > 0)
  WeightMatrix shared_up;     // [shared_ffn, hidden]
  WeightMatrix shared_down;   // [hidden, shared_ffn]
  WeightMatrix shared_scale;  // [1, hidden]: sigmoid(x . w) scales the shared expert
};

// Working buffers of moe_block, grown on demand and kept.
struct MoeScratch {
  std::vector<float> logits;    // [n, n_experts]
  std::vector<float> probs;     // [n_experts]
  std::vector<int32_t> ids;     // [n, top_k]
  std::vector<float> weights;   // [n, top_k]
  std::vector<float> gate, up;  // [n, shared_ffn]
  std::vector<float> shared;    // [n, hidden]
  std::vector<float> scale;     // [n]
  std::vector<MatmulJob> jobs;  // router and shared-expert inputs
  MatmulWorkspace workspace;
};

// x [n, hidden] f32 (normalised input) -> out [n, hidden] f32 (overwritten). `layer` is passed to
// the dispatcher, which computes the routed experts. The dispatcher's time goes to `clock`'s
// experts stage (clock may be null). `hooks` (may be null) may replace the router's choice and
// observe the final one.
void moe_block(const MoeConfig& config, const MoeWeights& w, int64_t layer, const float* x,
               int64_t n, MoeDispatcher& experts, ThreadPool& pool, MoeScratch& s, float* out,
               StageClock* clock = nullptr, const RoutingHooks* hooks = nullptr);

}  // namespace moerun
