// AVX-512 path (F, BW, VL, VNNI): 16-wide FMAs for the float formats here; the quantized formats
// are in matmul_avx512_quant.cpp.
// GCC 12's AVX-512 intrinsics initialise their "undefined" operands from themselves, which
// -Wuninitialized reports at every inlined use; the warning is spurious in this file.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <immintrin.h>

#include "ops/cpu/matmul_avx512_rows.h"
#include "ops/cpu/matmul_internal.h"

namespace moerun::cpu_matmul {
namespace {

// Loads 16 weights of the float formats as f32 (masked: lanes outside `m` are zero).
struct LoadF32 {
  static __m512 load16(const uint8_t* row, int64_t j) {
    return _mm512_loadu_ps(reinterpret_cast<const float*>(row) + j);
  }
  static __m512 load16(const uint8_t* row, int64_t j, __mmask16 m) {
    return _mm512_maskz_loadu_ps(m, reinterpret_cast<const float*>(row) + j);
  }
};
struct LoadF16 {
  static __m512 load16(const uint8_t* row, int64_t j) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 2 * j)));
  }
  static __m512 load16(const uint8_t* row, int64_t j, __mmask16 m) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, row + 2 * j));
  }
};
struct LoadBF16 {
  static __m512 widen(__m256i h) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
  static __m512 load16(const uint8_t* row, int64_t j) {
    return widen(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 2 * j)));
  }
  static __m512 load16(const uint8_t* row, int64_t j, __mmask16 m) {
    return widen(_mm256_maskz_loadu_epi16(m, row + 2 * j));
  }
};

// Partial dot products (16 lanes) of one float-format row with NT f32 activation rows.
template <typename Load>
struct FloatDot {
  template <int NT>
  static void run(const uint8_t* row, const KernelArgs& a, int64_t t0, __m512* out) {
    const int64_t cols = a.w.cols;
    const float* x = a.x + t0 * cols;  // [NT, cols]
    __m512 acc[NT];
    for (int t = 0; t < NT; ++t) acc[t] = _mm512_setzero_ps();
    int64_t j = 0;
    for (; j + 16 <= cols; j += 16) {
      const __m512 w = Load::load16(row, j);
      for (int t = 0; t < NT; ++t)
        acc[t] = _mm512_fmadd_ps(w, _mm512_loadu_ps(x + t * cols + j), acc[t]);
    }
    if (j < cols) {
      const __mmask16 m = static_cast<__mmask16>((1u << (cols - j)) - 1);
      const __m512 w = Load::load16(row, j, m);
      for (int t = 0; t < NT; ++t)
        acc[t] = _mm512_fmadd_ps(w, _mm512_maskz_loadu_ps(m, x + t * cols + j), acc[t]);
    }
    for (int t = 0; t < NT; ++t) out[t] = acc[t];
  }
};

}  // namespace

RowsKernel avx512_kernel(DType type) {
  switch (type) {
    case DType::F32:
      return run_rows_avx512<FloatDot<LoadF32>>;
    case DType::F16:
      return run_rows_avx512<FloatDot<LoadF16>>;
    case DType::BF16:
      return run_rows_avx512<FloatDot<LoadBF16>>;
    default:
      return avx512_quant_kernel(type);
  }
}

}  // namespace moerun::cpu_matmul
