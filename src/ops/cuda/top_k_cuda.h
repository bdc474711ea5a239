// The k largest logits of each row on the GPU, so that only candidates (not whole rows of the
// vocabulary) go back to the host.
#pragma once

#include <cstddef>
#include <cstdint>

#include <cuda_runtime_api.h>

namespace moerun {

// Most candidates per row top_k_cuda() selects.
constexpr int64_t kMaxTopKCuda = 64;

// Bytes of device workspace top_k_cuda() needs for any number of rows in [1, max_rows].
size_t top_k_cuda_workspace_bytes(int64_t max_rows, int64_t vocab, int64_t k);

// For each of `rows` rows of logits [rows, vocab] f32 (device): the k largest as values [rows, k]
// f32 and ids [rows, k] i32 (device), largest first, equal values by lower id first (-0 equals
// +0; NaN ranks below -inf). 1 <= k <= min(kMaxTopKCuda, vocab). The values are the row's own
// bits. Same meaning as the CPU top_k_rows. Graph-capturable (no allocation, no host sync).
void top_k_cuda(const float* logits, int64_t rows, int64_t vocab, int64_t k, void* workspace,
                float* values, int32_t* ids, cudaStream_t stream);

}  // namespace moerun
