// Attention on the GPU: per-head q/k RMSNorm, partial NeoX RoPE and the KV cache write, then causal
// softmax attention of each new token over its sequence's cache (split over keys), with the
// optional sigmoid output gate of Qwen3-Next.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

#include "ops/cuda/device_batch.h"

namespace moerun {

// Geometry and numerics of the attention layers (as the CPU AttentionConfig).
struct AttentionShape {
  int64_t n_heads = 0;
  int64_t n_kv_heads = 0;
  int64_t head_dim = 0;  // at most 256
  int64_t rope_dims = 0;
  float rms_eps = 1e-6f;
  bool output_gate = false;  // q_proj holds [query | gate] per head
};

// From the projections q_proj [n, n_heads * head_dim * (gate ? 2 : 1)], k, v [n, n_kv_heads *
// head_dim]: q [n, n_heads, head_dim] = rope(rms_norm(query) * q_norm), gate [n, n_heads,
// head_dim] (when output_gate), and rope(rms_norm(k) * k_norm) and v written into attention cache
// `kv_layer` of each token's sequence at its position. inv_freq [rope_dims / 2].
void attention_prepare_cuda(const AttentionShape& shape, const DeviceBatch& batch, int64_t kv_layer,
                            const float* q_proj, const float* k, const float* v,
                            const float* q_norm, const float* k_norm, const float* inv_freq,
                            float* q, float* gate, cudaStream_t stream);

// Floats of workspace attention_cuda needs for n tokens split `splits` ways.
int64_t attention_workspace_floats(const AttentionShape& shape, int64_t n, int64_t splits);

// out [n, n_heads, head_dim] = softmax(q k^T / sqrt(head_dim)) v over keys [0, position] of each
// token's sequence in cache `kv_layer`, then * sigmoid(gate) when gate is not null. Keys are split
// `splits` ways (1..64) and merged; workspace holds attention_workspace_floats floats.
void attention_cuda(const AttentionShape& shape, const DeviceBatch& batch, int64_t kv_layer,
                    const float* q, const float* gate, int64_t splits, float* workspace, float* out,
                    cudaStream_t stream);

}  // namespace moerun
