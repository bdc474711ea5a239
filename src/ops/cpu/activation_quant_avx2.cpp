// AVX2 version of the activation quantization; results are bitwise those of the scalar one.
#include <immintrin.h>

#include "core/error.h"
#include "ops/cpu/matmul_internal.h"

namespace moerun::cpu_matmul {
namespace {

// Quantizes 32 values with the multiplier id; stores 32 int8 and the two sums of 16.
void quantize32(const float* x, __m256 id, int8_t* q, int16_t* sums) {
  const __m256i lim_hi = _mm256_set1_epi32(127), lim_lo = _mm256_set1_epi32(-127);
  __m256i i[4];
  for (int k = 0; k < 4; ++k) {
    // Round to nearest even (the default mode), as std::nearbyint in the scalar version.
    const __m256i v = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 8 * k), id));
    i[k] = _mm256_max_epi32(lim_lo, _mm256_min_epi32(lim_hi, v));
  }
  for (int h = 0; h < 2; ++h) {
    const __m256i s = _mm256_add_epi32(i[2 * h], i[2 * h + 1]);
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    s4 = _mm_hadd_epi32(s4, s4);
    s4 = _mm_hadd_epi32(s4, s4);
    sums[h] = static_cast<int16_t>(_mm_cvtsi128_si32(s4));
  }
  const __m256i p =
      _mm256_packs_epi16(_mm256_packs_epi32(i[0], i[1]), _mm256_packs_epi32(i[2], i[3]));
  const __m256i ordered = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(q), ordered);
}

}  // namespace

void quantize_blocks_avx2(const float* x, int64_t cols, int64_t block, int64_t t_begin,
                          int64_t t_end, int8_t* q, float* d, int16_t* sums) {
  MOERUN_CHECK(block > 0 && block % 32 == 0 && cols % block == 0);
  const int64_t n_blocks = cols / block;
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  for (int64_t i = t_begin * n_blocks; i < t_end * n_blocks; ++i) {
    const float* xb = x + i * block;
    __m256 m = _mm256_setzero_ps();
    for (int64_t j = 0; j < block; j += 8) {
      m = _mm256_max_ps(m, _mm256_and_ps(_mm256_loadu_ps(xb + j), abs_mask));
    }
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float dv = _mm_cvtss_f32(m4) / 127.0f;
    const float id = dv > 0.0f ? 1.0f / dv : 0.0f;
    d[i] = dv;
    for (int64_t j = 0; j < block; j += 32) {
      quantize32(xb + j, _mm256_set1_ps(id), q + i * block + j, sums + (i * block + j) / kSumGroup);
    }
  }
}

QuantizedActivations quantize_activations_avx2(const float* x, int64_t n_tokens, int64_t cols,
                                               int64_t block, ActivationBuffer& buf) {
  MOERUN_CHECK(block > 0 && block % 32 == 0 && cols % block == 0);
  const size_t n_q = static_cast<size_t>(n_tokens * cols);
  if (buf.q.size() < n_q) buf.q.resize(n_q);
  if (buf.d.size() < n_q / static_cast<size_t>(block)) buf.d.resize(n_q / block);
  if (buf.sums.size() < n_q / kSumGroup) buf.sums.resize(n_q / kSumGroup);
  quantize_blocks_avx2(x, cols, block, 0, n_tokens, buf.q.data(), buf.d.data(), buf.sums.data());
  return QuantizedActivations{block,   buf.q.data(), buf.d.data(), buf.sums.data(), nullptr,
                              nullptr, cols,         cols / block, cols / kSumGroup};
}

}  // namespace moerun::cpu_matmul
