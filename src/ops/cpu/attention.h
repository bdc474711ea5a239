// Causal softmax attention of new query tokens over a KV cache, with grouped KV heads (GQA).
#pragma once

#include <cstdint>

namespace moerun {

class ThreadPool;

// Geometry of multi-head attention: query head h reads KV head h / (n_heads / n_kv_heads).
struct AttentionDims {
  int64_t n_heads = 0;
  int64_t n_kv_heads = 0;
  int64_t head_dim = 0;
};

// For every query token t and head h:
//   out[t, h] = sum_j softmax_j(scale * q[t, h] . K_t[j, kvh]) V_t[j, kvh], j in [0, n_keys[t]),
// with the softmax in f32 and scale = 1/sqrt(head_dim). q and out are [n_q, n_heads, head_dim];
// keys[t] and values[t] point at that token's cache [>= n_keys[t], n_kv_heads, head_dim] (causality
// is the caller's choice of n_keys: position + 1). scores is scratch [threads, scores_stride] with
// scores_stride >= max n_keys and threads = pool size (1 without a pool). Tasks are (token, head),
// or (token, 2 or 4 heads of one KV group) on the AVX-512 path while scores_stride >= that many
// times max n_keys and there are still at least as many tasks as threads (K and V read once for
// all of them).
// With a gate [n_q, n_heads, head_dim], out *= sigmoid(gate) afterwards (Qwen3-Next's output
// gate).
void causal_attention(const AttentionDims& dims, const float* q, int64_t n_q,
                      const float* const* keys, const float* const* values, const int64_t* n_keys,
                      float* out, float* scores, int64_t scores_stride, ThreadPool* pool,
                      const float* gate = nullptr);

}  // namespace moerun
