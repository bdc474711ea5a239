// Per-format scalar reference conversions behind quantize_row/dequantize_row (internal to core).
#pragma once

#include <cstdint>

#include "core/blocks.h"

namespace moerun {

// Dequantises n_blocks Q8_0 blocks at src (any alignment) into dst [n_blocks * 32] f32.
void dequantize_q8_0(const void* src, float* dst, int64_t n_blocks);
// Quantises src [n_blocks * 32] f32 into n_blocks Q8_0 blocks at dst (any alignment).
void quantize_q8_0(const float* src, void* dst, int64_t n_blocks);

// Dequantises n_blocks Q4_0 blocks at src into dst [n_blocks * 32] f32.
void dequantize_q4_0(const void* src, float* dst, int64_t n_blocks);
// Quantises src [n_blocks * 32] f32 into n_blocks Q4_0 blocks at dst.
void quantize_q4_0(const float* src, void* dst, int64_t n_blocks);

// Dequantises n_blocks Q4_K super-blocks at src into dst [n_blocks * 256] f32.
void dequantize_q4_k(const void* src, float* dst, int64_t n_blocks);
// Quantises src [n_blocks * 256] f32 into n_blocks Q4_K super-blocks at dst.
void quantize_q4_k(const float* src, void* dst, int64_t n_blocks);

// Dequantises n_blocks Q5_K super-blocks at src into dst [n_blocks * 256] f32.
void dequantize_q5_k(const void* src, float* dst, int64_t n_blocks);
// Quantises src [n_blocks * 256] f32 into n_blocks Q5_K super-blocks at dst.
void quantize_q5_k(const float* src, void* dst, int64_t n_blocks);

// Dequantises n_blocks Q6_K super-blocks at src into dst [n_blocks * 256] f32.
void dequantize_q6_k(const void* src, float* dst, int64_t n_blocks);
// Quantises src [n_blocks * 256] f32 into n_blocks Q6_K super-blocks at dst.
void quantize_q6_k(const float* src, void* dst, int64_t n_blocks);

}  // namespace moerun
