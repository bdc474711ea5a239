// Row driver of the AVX-512 kernels: rows in groups of 4, tokens in groups of up to 8 per pass over
// a row (the row stays in L1), one horizontal reduction per 4 rows and token.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "ops/cpu/matmul_internal.h"

namespace moerun::cpu_matmul {

// Tokens per pass over a weight row: each kernel keeps one accumulator per token in a register.
inline constexpr int kTokenGroup512 = 8;

// The sums of the 16 lanes of a, b, c and d as [a, b, c, d]. Each output only adds its own
// vector's lanes in a fixed order, so a row's result does not depend on its neighbours.
inline __m128 reduce4(__m512 a, __m512 b, __m512 c, __m512 d) {
  const __m512 ab =
      _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x44), _mm512_shuffle_f32x4(a, b, 0xee));
  const __m512 cd =
      _mm512_add_ps(_mm512_shuffle_f32x4(c, d, 0x44), _mm512_shuffle_f32x4(c, d, 0xee));
  const __m512 s =
      _mm512_add_ps(_mm512_shuffle_f32x4(ab, cd, 0x88), _mm512_shuffle_f32x4(ab, cd, 0xdd));
  const __m512 s2 = _mm512_add_ps(s, _mm512_permute_ps(s, 0x4e));
  const __m512 s4 = _mm512_add_ps(s2, _mm512_permute_ps(s2, 0xb1));
  return _mm512_castps512_ps128(_mm512_permutexvar_ps(
      _mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), s4));
}

// Calls Dot::run<nt> for a runtime nt in 1..kTokenGroup512.
template <typename Dot>
void run_tokens(int nt, const uint8_t* row, const KernelArgs& a, int64_t t0, __m512* out) {
  switch (nt) {
    case 1:
      return Dot::template run<1>(row, a, t0, out);
    case 2:
      return Dot::template run<2>(row, a, t0, out);
    case 3:
      return Dot::template run<3>(row, a, t0, out);
    case 4:
      return Dot::template run<4>(row, a, t0, out);
    case 5:
      return Dot::template run<5>(row, a, t0, out);
    case 6:
      return Dot::template run<6>(row, a, t0, out);
    case 7:
      return Dot::template run<7>(row, a, t0, out);
    default:
      return Dot::template run<8>(row, a, t0, out);
  }
}

// Runs Dot::run<NT>(row, args, t0, out[NT]) (16 partial sums per token) for every row in
// [row_begin, row_end) and group of tokens; writes y[t * rows + r].
template <typename Dot>
void run_rows_avx512(const KernelArgs& a, int64_t row_begin, int64_t row_end) {
  const auto* base = static_cast<const uint8_t*>(a.w.data);
  const int64_t rows = a.w.rows, stride = a.w.row_stride;
  __m512 part[4][kTokenGroup512];
  const __m512 zero = _mm512_setzero_ps();
  for (int64_t r = row_begin; r < row_end; r += 4) {
    const int nr = static_cast<int>(std::min<int64_t>(4, row_end - r));
    for (int64_t t0 = 0; t0 < a.n_tokens; t0 += kTokenGroup512) {
      const int nt = static_cast<int>(std::min<int64_t>(kTokenGroup512, a.n_tokens - t0));
      for (int i = 0; i < nr; ++i) run_tokens<Dot>(nt, base + (r + i) * stride, a, t0, part[i]);
      for (int t = 0; t < nt; ++t) {
        float* y = a.y + (t0 + t) * rows + r;
        const __m128 s = reduce4(part[0][t], nr > 1 ? part[1][t] : zero, nr > 2 ? part[2][t] : zero,
                                 nr > 3 ? part[3][t] : zero);
        if (nr == 4) {
          _mm_storeu_ps(y, s);
        } else {
          alignas(16) float tmp[4];
          _mm_store_ps(tmp, s);
          for (int i = 0; i < nr; ++i) y[i] = tmp[i];
        }
      }
    }
  }
}

}  // namespace moerun::cpu_matmul
