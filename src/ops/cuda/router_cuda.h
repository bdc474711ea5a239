// MoE routing on the GPU: softmax over all experts, top-k, optional renormalisation.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

namespace moerun {

// For each of n tokens (device buffers): p = softmax(logits[t]) in f32; ids[t] = the top_k
// experts by p, largest first (ties: lower index first); weights[t] = their p, divided by their
// sum when `normalize`. logits [n, n_experts] f32, ids [n, top_k] i32, weights [n, top_k] f32.
// Same meaning as the CPU softmax_top_k.
void softmax_top_k_cuda(const float* logits, int64_t n, int64_t n_experts, int64_t top_k,
                        bool normalize, int32_t* ids, float* weights, cudaStream_t stream);

}  // namespace moerun
