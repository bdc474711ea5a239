// The routed-expert part of a MoE layer, behind one interface: the model says what is computed,
// the dispatcher decides where (CPU here; the hybrid CPU/GPU dispatcher implements the same).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/tensor.h"
#include "moe/expert_stats.h"

namespace moerun {

class ThreadPool;

// One layer's stacked routed experts, as GGUF stores them: gate and up [hidden, ffn, n_experts],
// down [ffn, hidden, n_experts] (ne order; ne[0] contiguous).
struct LayerExperts {
  Tensor gate;
  Tensor up;
  Tensor down;
};

// Computes out[t] = sum_k weights[t, k] * down_e(silu(gate_e(x[t])) * up_e(x[t])), e = ids[t, k].
class MoeDispatcher {
 public:
  virtual ~MoeDispatcher() = default;
  // x [n_tokens, hidden] f32, ids and weights [n_tokens, top_k], out [n_tokens, hidden] f32
  // (overwritten).
  virtual void run(int64_t layer, const float* x, int64_t n_tokens, const int32_t* ids,
                   const float* weights, int64_t top_k, float* out) = 0;
  // Live routing and placement counters, or null when the dispatcher keeps none.
  virtual ExpertStats* stats() { return nullptr; }
};

// Runs every routed expert on the CPU thread pool, tokens grouped by expert.
class CpuMoeDispatcher : public MoeDispatcher {
 public:
  // `layers` are views into the model file; `pool` must outlive the dispatcher.
  CpuMoeDispatcher(std::vector<LayerExperts> layers, ThreadPool& pool);
  ~CpuMoeDispatcher() override;
  void run(int64_t layer, const float* x, int64_t n_tokens, const int32_t* ids,
           const float* weights, int64_t top_k, float* out) override;
  ExpertStats* stats() override { return &stats_; }
  // run() over the assignments with on_cpu[t * top_k + k] set only (all when on_cpu is null);
  // the others contribute nothing to out. Routing is recorded in stats only when on_cpu is null
  // (a caller that splits the work records it).
  void run_masked(int64_t layer, const float* x, int64_t n_tokens, const int32_t* ids,
                  const float* weights, int64_t top_k, const uint8_t* on_cpu, float* out);

 private:
  struct Scratch;
  std::vector<LayerExperts> layers_;
  ExpertStats stats_;
  ThreadPool& pool_;
  std::unique_ptr<Scratch> scratch_;
};

}  // namespace moerun
