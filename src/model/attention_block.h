// One attention layer over a batch: projections, per-head q/k RMSNorm, RoPE, KV cache, causal GQA
// attention, optional sigmoid output gate (Qwen3-Next), output projection. Shared by Qwen3-Next's
// gated attention and Qwen3-MoE's plain attention.
#pragma once

#include <cstdint>
#include <vector>

#include "ops/cpu/attention.h"
#include "ops/cpu/matmul.h"

namespace moerun {

class ThreadPool;
struct BatchPlan;

// Shape and numerics of the attention layers of a model.
struct AttentionConfig {
  AttentionDims dims;
  int64_t hidden = 0;
  int64_t rope_dims = 0;        // rotated dims at the start of each head (head_dim: full RoPE)
  float rms_eps = 1e-6f;        // of q_norm / k_norm
  bool output_gate = false;     // q projection holds [query | gate] per head; out *= sigmoid(gate)
  std::vector<float> inv_freq;  // [rope_dims / 2] RoPE inverse frequencies

  // Floats per token of the K (and of the V) cache.
  int64_t kv_width() const { return dims.n_kv_heads * dims.head_dim; }
  // Width of the attention output (input of the output projection).
  int64_t q_width() const { return dims.n_heads * dims.head_dim; }
};

// Weights of one attention layer.
struct AttentionWeights {
  WeightMatrix q;             // [q_width * (output_gate ? 2 : 1), hidden]
  WeightMatrix k;             // [kv_width, hidden]
  WeightMatrix v;             // [kv_width, hidden]
  WeightMatrix o;             // [hidden, q_width]
  std::vector<float> q_norm;  // [head_dim]
  std::vector<float> k_norm;  // [head_dim]
};

// Working buffers of attention_layer, grown on demand and kept.
struct AttentionScratch {
  std::vector<float> q_proj;               // [n, q rows]
  std::vector<float> q;                    // [n, n_heads, head_dim]
  std::vector<float> gate;                 // [n, n_heads, head_dim]
  std::vector<float> k;                    // [n, kv_width]
  std::vector<float> v;                    // [n, kv_width]
  std::vector<float> att;                  // [n, q_width]
  std::vector<float> scores;               // [threads, 4 x longest context]
  std::vector<const float*> keys, values;  // [n] each token's cache
  std::vector<int64_t> n_keys;             // [n] position + 1
  std::vector<MatmulJob> jobs;             // q, k, v projections
  MatmulWorkspace workspace;
};

// x [n, hidden] f32 (normalised input) -> out [n, hidden] f32 for the batch in `plan`; writes the
// new tokens' K and V into attention cache `kv_layer` of each sequence at their positions.
void attention_layer(const AttentionConfig& config, const AttentionWeights& w, int64_t kv_layer,
                     const float* x, const BatchPlan& plan, ThreadPool& pool, AttentionScratch& s,
                     float* out);

}  // namespace moerun
