// Row-wise conversion between f32 and every supported block format (the scalar reference).
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace moerun {

// Dequantises n weights of `type` (n a multiple of the block size) from src into dst [n] f32.
void dequantize_row(DType type, const void* src, float* dst, int64_t n);

// Quantises src [n] f32 into blocks of `type` at dst (row_bytes(type, n) bytes); not for hot paths.
void quantize_row(DType type, const float* src, void* dst, int64_t n);

}  // namespace moerun
