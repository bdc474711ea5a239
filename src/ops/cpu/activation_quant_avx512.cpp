// AVX-512 quantization of f32 activations into the layouts of the AVX-512 kernels; the 8-bit
// values and scales are bitwise those of the scalar blocks quantizer (round to nearest even).
// GCC 12's AVX-512 intrinsics initialise their "undefined" operands from themselves, which
// -Wuninitialized reports at every inlined use; the warning is spurious in this file.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <immintrin.h>

#include <cstring>

#include "core/error.h"
#include "ops/cpu/matmul_internal.h"

namespace moerun::cpu_matmul {
namespace {

// Quantizes the 16 values at x with multiplier id; stores quants 0-7 at q + pos(j) and 8-15 at
// q + pos(j + 8); returns their sum.
template <typename Pos>
int quantize16(const float* x, __m512 id, int8_t* q, int64_t j, Pos pos) {
  const __m512i v = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x), id));
  const __m512i c =
      _mm512_max_epi32(_mm512_set1_epi32(-127), _mm512_min_epi32(_mm512_set1_epi32(127), v));
  const __m128i b = _mm512_cvtepi32_epi8(c);
  _mm_storel_epi64(reinterpret_cast<__m128i*>(q + pos(j)), b);
  _mm_storel_epi64(reinterpret_cast<__m128i*>(q + pos(j + 8)), _mm_unpackhi_epi64(b, b));
  return _mm512_reduce_add_epi32(c);
}

// Scale of the `n` values at x (a multiple of 16): max |x| / 127, as the scalar quantizer.
float block_scale(const float* x, int64_t n) {
  __m512 m = _mm512_setzero_ps();
  for (int64_t j = 0; j < n; j += 16) m = _mm512_max_ps(m, _mm512_abs_ps(_mm512_loadu_ps(x + j)));
  return _mm512_reduce_max_ps(m) / 127.0f;
}

// Position of quant j (8 consecutive values stay together) in each layout.
// k_perm: in a 256-block, qword i of sub-block s (32 values) goes to qword 8 * i + s.
int64_t k_perm_pos(int64_t j) {
  const int64_t e = j % 256, s = e / 32, i = (e % 32) / 8;
  return j - e + i * 64 + s * 8 + j % 8;
}
// k6_perm: in a 256-block, qword h of sub-block s (16 values) goes to qword 8 * (2 * (s / 8) + h)
// + s % 8.
int64_t k6_perm_pos(int64_t j) {
  const int64_t e = j % 256, s = e / 16, h = (e % 16) / 8;
  return j - e + (2 * (s / 8) + h) * 64 + (s % 8) * 8 + j % 8;
}
// q4_0x4: per 128 values, halves of the four 32-blocks interleaved: b0 lo, b1 lo, .., b0 hi, ..
int64_t q4_0x4_pos(int64_t j) {
  const int64_t g = j / 128, k = (j % 128) / 32, h = (j % 32) / 16;
  return g * 128 + h * 64 + k * 16 + j % 16;
}
int64_t natural_pos(int64_t j) {
  return j;
}

}  // namespace

void quantize_avx512(ActLayout layout, const float* x, int64_t cols, int64_t t_begin, int64_t t_end,
                     const ActStorage& s) {
  const ActSizes z = act_sizes(layout, cols);
  const bool k_layout = layout == ActLayout::k_perm || layout == ActLayout::k6_perm;
  MOERUN_CHECK(k_layout || layout == ActLayout::q8_0x2 || layout == ActLayout::q4_0x4);
  const int64_t block = k_layout ? 256 : 32;
  MOERUN_CHECK(cols % block == 0);
  for (int64_t t = t_begin; t < t_end; ++t) {
    const float* xt = x + t * cols;
    int8_t* q = s.q + t * z.q;
    float* d = s.d + t * z.d;
    if (k_layout) {
      float* fs = static_cast<float*>(s.aux) + t * z.aux;
      for (int64_t b = 0; b < cols / 256; ++b) {
        const float dv = block_scale(xt + 256 * b, 256);
        const __m512 id = _mm512_set1_ps(dv > 0.0f ? 1.0f / dv : 0.0f);
        d[b] = dv;
        for (int64_t j = 256 * b; j < 256 * (b + 1); j += 16) {
          const int sum = layout == ActLayout::k_perm ? quantize16(xt + j, id, q, j, k_perm_pos)
                                                      : quantize16(xt + j, id, q, j, k6_perm_pos);
          fs[j / 16] = dv * static_cast<float>(sum);
        }
      }
      continue;
    }
    // Q8_0 / Q4_0: padding (quants, scales, corrections) is zero.
    int32_t* init = static_cast<int32_t*>(s.aux) + t * z.aux;
    std::memset(q + cols, 0, static_cast<size_t>(z.q - cols));
    std::memset(d, 0, static_cast<size_t>(z.d) * sizeof(float));
    std::memset(init, 0, static_cast<size_t>(z.aux) * sizeof(int32_t));
    const bool q8 = layout == ActLayout::q8_0x2;
    const int lanes = q8 ? 8 : 4;  // int32 lanes of the kernel's accumulator per block
    for (int64_t k = 0; k < cols / 32; ++k) {
      const float dv = block_scale(xt + 32 * k, 32);
      const __m512 id = _mm512_set1_ps(dv > 0.0f ? 1.0f / dv : 0.0f);
      int sum = 0;
      for (int64_t j = 32 * k; j < 32 * k + 32; j += 16) {
        sum += q8 ? quantize16(xt + j, id, q, j, natural_pos)
                  : quantize16(xt + j, id, q, j, q4_0x4_pos);
      }
      const int64_t lane0 = k * lanes;  // blocks fill 16-lane groups in order
      for (int i = 0; i < lanes; ++i) d[lane0 + i] = dv;
      init[lane0] = q8 ? -128 * sum : -8 * sum;
    }
  }
}

}  // namespace moerun::cpu_matmul
