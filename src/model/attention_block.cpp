#include "model/attention_block.h"

#include <algorithm>
#include <cstring>

#include "core/thread_pool.h"
#include "model/batch_plan.h"
#include "model/scratch.h"
#include "ops/cpu/activations.h"
#include "ops/cpu/norms.h"
#include "ops/cpu/rope.h"

namespace moerun {

void attention_layer(const AttentionConfig& c, const AttentionWeights& w, int64_t kv_layer,
                     const float* x, const BatchPlan& plan, ThreadPool& pool, AttentionScratch& s,
                     float* out) {
  const int64_t n = static_cast<int64_t>(plan.positions.size());
  const int64_t hd = c.dims.head_dim;
  const int64_t n_heads = c.dims.n_heads;
  const int64_t qw = c.q_width();
  const int64_t kvw = c.kv_width();
  const auto un = static_cast<size_t>(n);

  float* q = grow(s.q, un * qw);
  float* k = grow(s.k, un * kvw);
  float* v = grow(s.v, un * kvw);
  // q, k, v in one batched matmul (x quantized once). With the output gate, q_proj holds per
  // head [query(head_dim) | gate(head_dim)].
  float* q_out = c.output_gate ? grow(s.q_proj, un * 2 * qw) : q;
  s.jobs.clear();
  s.jobs.push_back(MatmulJob{w.q, x, n, q_out});
  s.jobs.push_back(MatmulJob{w.k, x, n, k});
  s.jobs.push_back(MatmulJob{w.v, x, n, v});
  matmul_batch(s.jobs, &pool, s.workspace);
  float* gate = nullptr;
  if (c.output_gate) {
    gate = grow(s.gate, un * qw);
    for (int64_t t = 0; t < n; ++t) {
      for (int64_t h = 0; h < n_heads; ++h) {
        const float* src = q_out + (t * n_heads + h) * 2 * hd;
        std::memcpy(q + (t * n_heads + h) * hd, src, static_cast<size_t>(hd) * sizeof(float));
        std::memcpy(gate + (t * n_heads + h) * hd, src + hd,
                    static_cast<size_t>(hd) * sizeof(float));
      }
    }
  }

  // Per-head RMSNorm before RoPE.
  rms_norm(q, w.q_norm.data(), n * n_heads, hd, c.rms_eps, q);
  rms_norm(k, w.k_norm.data(), n * c.dims.n_kv_heads, hd, c.rms_eps, k);
  rope_neox(q, n, n_heads, hd, c.rope_dims, plan.positions.data(), c.inv_freq.data());
  rope_neox(k, n, c.dims.n_kv_heads, hd, c.rope_dims, plan.positions.data(), c.inv_freq.data());

  // Append the new K and V to each sequence's cache; each token sees its sequence up to itself.
  const float** keys = grow(s.keys, un);
  const float** values = grow(s.values, un);
  int64_t* n_keys = grow(s.n_keys, un);
  int64_t longest = 0;
  for (int64_t t = 0; t < n; ++t) {
    CacheSequenceState* state = plan.runs[plan.run_of[t]].state;
    const int64_t pos = plan.positions[t];
    float* kc = state->keys(kv_layer);
    float* vc = state->values(kv_layer);
    const size_t bytes = static_cast<size_t>(kvw) * sizeof(float);
    std::memcpy(kc + pos * kvw, k + t * kvw, bytes);
    std::memcpy(vc + pos * kvw, v + t * kvw, bytes);
    keys[t] = kc;
    values[t] = vc;
    n_keys[t] = pos + 1;
    longest = std::max(longest, pos + 1);
  }
  // Scores scratch grows geometrically so decoding does not reallocate every token; room for four
  // heads per task (causal_attention groups query heads of one KV head when threads are few).
  const int threads = pool.size();
  int64_t stride = static_cast<int64_t>(s.scores.size()) / threads;
  if (stride < 4 * longest) {
    stride = std::max<int64_t>({4 * longest, 2 * stride, 4096});
    s.scores.resize(static_cast<size_t>(stride * threads));
  }
  float* att = grow(s.att, un * qw);
  causal_attention(c.dims, q, n, keys, values, n_keys, att, s.scores.data(), stride, &pool, gate);
  matmul(w.o, att, n, out, &pool);
}

}  // namespace moerun
