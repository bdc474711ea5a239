// Tiled causal attention for prefill on the GPU (flash-attention style, f32): each block loads a
// tile of one KV head's keys and values into shared memory once and uses it for every query head
// of the GQA group and every query token of its tile, with an online softmax.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

#include "ops/cuda/attention_cuda.h"
#include "ops/cuda/device_batch.h"

namespace moerun {

// out [n, n_heads, head_dim] = softmax(q k^T / sqrt(head_dim)) v over keys [0, position] of each
// token's sequence in cache `kv_layer`, then * sigmoid(gate) when gate is not null; q and gate
// [n, n_heads, head_dim]. Same meaning as attention_cuda (the batch's keys and values already
// written by attention_prepare_cuda), faster for runs of many tokens; needs no workspace.
void attention_prefill_cuda(const AttentionShape& shape, const DeviceBatch& batch, int64_t kv_layer,
                            const float* q, const float* gate, float* out, cudaStream_t stream);

}  // namespace moerun
