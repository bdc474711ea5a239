// Dequantisation of weight rows to f32 on the GPU (prefill multiplies dequantised tiles on tensor
// cores).
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

#include "core/dtype.h"

namespace moerun {

// dst [n] f32 (device) = the n weights of `type` at src (device); n a multiple of the block size.
// Supports F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K; asynchronous on `stream`.
void dequantize_cuda(DType type, const void* src, float* dst, int64_t n, cudaStream_t stream);

}  // namespace moerun
