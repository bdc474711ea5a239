// Dequantisation of weight rows to f32 or bf16 on the GPU (prefill multiplies dequantised tiles on
// tensor cores).
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

#include "core/dtype.h"
#include "core/weight_matrix.h"

namespace moerun {

// dst [n] f32 (device) = the n weights of `type` at src (device, 4-byte aligned); n a multiple of
// the block size.
// Supports F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K; asynchronous on `stream`.
void dequantize_cuda(DType type, const void* src, float* dst, int64_t n, cudaStream_t stream);

// dst [row_count, w.cols] bf16 bits (device, rows packed) = rows [row_begin, row_begin +
// row_count) of w (device data), each weight rounded to nearest-even bf16; asynchronous.
void dequantize_rows_bf16_cuda(const WeightMatrix& w, int64_t row_begin, int64_t row_count,
                               uint16_t* dst, cudaStream_t stream);

// dst [n] bf16 bits = src [n] f32 rounded to nearest-even (device buffers); asynchronous.
void convert_f32_to_bf16_cuda(const float* src, uint16_t* dst, int64_t n, cudaStream_t stream);

}  // namespace moerun
