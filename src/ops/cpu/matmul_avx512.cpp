// AVX-512 path (F, BW, VL, VNNI): 16-wide FMAs for float formats; vpdpbusd / vpdpwssd for
// quantized formats, two 32-blocks or one 64-weight chunk of a 256-block per instruction.
#include <immintrin.h>

#include "core/blocks.h"
#include "ops/cpu/matmul_internal.h"
#include "ops/cpu/matmul_row_driver.h"

// GCC 12's AVX-512 intrinsics initialise their "undefined" operands from themselves, which
// -Wuninitialized reports at every inlined use; the warning is spurious in this file.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace moerun::cpu_matmul {
namespace {

float half(uint16_t h) {
  return _cvtsh_ss(h);
}

// [lo, hi] as one 512-bit register.
__m512i join(__m256i lo, __m256i hi) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

// Loads 16 (or 1) weights of the float formats as f32.
struct LoadF32 {
  static __m512 load16(const uint8_t* row, int64_t j) {
    return _mm512_loadu_ps(reinterpret_cast<const float*>(row) + j);
  }
  static float load1(const uint8_t* row, int64_t j) {
    return reinterpret_cast<const float*>(row)[j];
  }
};
struct LoadF16 {
  static __m512 load16(const uint8_t* row, int64_t j) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 2 * j)));
  }
  static float load1(const uint8_t* row, int64_t j) {
    uint16_t h;
    __builtin_memcpy(&h, row + 2 * j, 2);
    return half(h);
  }
};
struct LoadBF16 {
  static __m512 load16(const uint8_t* row, int64_t j) {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 2 * j));
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
  static float load1(const uint8_t* row, int64_t j) {
    uint16_t h;
    __builtin_memcpy(&h, row + 2 * j, 2);
    const uint32_t bits = static_cast<uint32_t>(h) << 16;
    float f;
    __builtin_memcpy(&f, &bits, 4);
    return f;
  }
};

// Dot products of one float-format row with NT f32 activation rows.
template <typename Load>
struct FloatDot {
  template <int NT>
  static void run(const uint8_t* row, const KernelArgs& a, int64_t t0, float* out) {
    const int64_t cols = a.w.cols;
    const float* x[NT];
    __m512 acc0[NT], acc1[NT];
    for (int t = 0; t < NT; ++t) {
      x[t] = a.x + (t0 + t) * cols;
      acc0[t] = _mm512_setzero_ps();
      acc1[t] = _mm512_setzero_ps();
    }
    int64_t j = 0;
    for (; j + 32 <= cols; j += 32) {
      const __m512 w0 = Load::load16(row, j);
      const __m512 w1 = Load::load16(row, j + 16);
      for (int t = 0; t < NT; ++t) {
        acc0[t] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x[t] + j), acc0[t]);
        acc1[t] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(x[t] + j + 16), acc1[t]);
      }
    }
    for (; j + 16 <= cols; j += 16) {
      const __m512 w0 = Load::load16(row, j);
      for (int t = 0; t < NT; ++t)
        acc0[t] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x[t] + j), acc0[t]);
    }
    for (int t = 0; t < NT; ++t) {
      float s = _mm512_reduce_add_ps(_mm512_add_ps(acc0[t], acc1[t]));
      for (int64_t k = j; k < cols; ++k) s += Load::load1(row, k) * x[t][k];
      out[t] = s;
    }
  }
};

// Two Q8_0 blocks as signed bytes (the second zero when absent).
struct PairQ8_0 {
  using Block = BlockQ8_0;
  static __m512i load(const Block* b, bool two) {
    const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[0].qs));
    const __m256i hi = two ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[1].qs))
                           : _mm256_setzero_si256();
    return join(lo, hi);
  }
};

// Two Q4_0 blocks as signed bytes nibble - 8 (the second zero when absent).
struct PairQ4_0 {
  using Block = BlockQ4_0;
  static __m512i load(const Block* b, bool two) {
    const __m128i q0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[0].qs));
    const __m128i q1 = two ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[1].qs))
                           : _mm_set1_epi8(static_cast<char>(0x88));  // nibbles 8 -> weight 0
    // [q0, q0, q1, q1] per 128-bit lane, then low nibbles in lanes 0, 2 and high in 1, 3.
    const __m512i z = _mm512_permutexvar_epi64(_mm512_setr_epi64(0, 1, 0, 1, 2, 3, 2, 3),
                                               _mm512_castsi256_si512(_mm256_set_m128i(q1, q0)));
    const __m512i nib = _mm512_and_si512(_mm512_mask_blend_epi64(0xcc, z, _mm512_srli_epi16(z, 4)),
                                         _mm512_set1_epi8(0x0f));
    return _mm512_sub_epi8(nib, _mm512_set1_epi8(8));
  }
};

// Q8_0 / Q4_0 x Q8 (blocks of 32), two blocks per step: vpdpbusd(|w|, x with w's sign).
template <typename Pair>
struct Dot32 {
  template <int NT>
  static void run(const uint8_t* row, const KernelArgs& a, int64_t t0, float* out) {
    const int64_t cols = a.w.cols, nb = cols / 32;
    const auto* blk = reinterpret_cast<const typename Pair::Block*>(row);
    const __m512i zero = _mm512_setzero_si512();
    __m512 acc[NT];
    for (int t = 0; t < NT; ++t) acc[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b += 2) {
      const bool two = b + 1 < nb;
      const __m512i w = Pair::load(blk + b, two);
      const __m512i aw = _mm512_abs_epi8(w);
      const __mmask64 neg = _mm512_movepi8_mask(w);
      const float dw0 = half(blk[b].d);
      const float dw1 = two ? half(blk[b + 1].d) : 0.0f;
      const __mmask64 xmask = two ? ~0ull : 0xffffffffull;
      for (int t = 0; t < NT; ++t) {
        const int64_t xt = t0 + t;
        const __m512i xq = _mm512_maskz_loadu_epi8(xmask, a.xq.q + xt * cols + b * 32);
        const __m512i p = _mm512_dpbusd_epi32(zero, aw, _mm512_mask_sub_epi8(xq, neg, zero, xq));
        const float* dx = a.xq.d + xt * nb + b;
        const __m512 s = _mm512_mask_blend_ps(0xff00, _mm512_set1_ps(dw0 * dx[0]),
                                              _mm512_set1_ps(two ? dw1 * dx[1] : 0.0f));
        acc[t] = _mm512_fmadd_ps(s, _mm512_cvtepi32_ps(p), acc[t]);
      }
    }
    for (int t = 0; t < NT; ++t) out[t] = _mm512_reduce_add_ps(acc[t]);
  }
};

// Q4_K / Q5_K x Q8 (blocks of 256): one 64-weight chunk per step, maddubs then vpdpwssd with the
// two sub-block scales; mins via the per-16 sums.
template <bool kFifthBit>
struct DotQ45_K {
  using Block = std::conditional_t<kFifthBit, BlockQ5_K, BlockQ4_K>;
  template <int NT>
  static void run(const uint8_t* row, const KernelArgs& a, int64_t t0, float* out) {
    const int64_t cols = a.w.cols, nb = cols / 256, ns = cols / kSumGroup;
    const auto* blk = reinterpret_cast<const Block*>(row);
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const __m256i one8 = _mm256_set1_epi8(1);
    __m512 acc[NT];
    for (int t = 0; t < NT; ++t) acc[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      const Block& k = blk[b];
      uint8_t sc[8], m[8];
      for (int j = 0; j < 8; ++j) unpack_scale_min_k4(j, k.scales, &sc[j], &m[j]);
      const __m256i mins16 = _mm256_setr_epi16(m[0], m[0], m[1], m[1], m[2], m[2], m[3], m[3], m[4],
                                               m[4], m[5], m[5], m[6], m[6], m[7], m[7]);
      const float d = half(k.d), dmin = half(k.dmin);
      __m512i isum[NT];
      for (int t = 0; t < NT; ++t) isum[t] = _mm512_setzero_si512();
      __m256i hbits = _mm256_setzero_si256();
      if constexpr (kFifthBit) {
        hbits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(k.qh));
      }
      for (int c = 0; c < 4; ++c) {
        const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(k.qs + 32 * c));
        __m256i lo = _mm256_and_si256(q, m4);
        __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
        if constexpr (kFifthBit) {
          lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(hbits, one8), 4));
          hi = _mm256_or_si256(
              hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hbits, 1), one8), 4));
          hbits = _mm256_srli_epi16(hbits, 2);
        }
        const __m512i w = join(lo, hi);  // weights 64c .. 64c+63
        const __m512i s = join(_mm256_set1_epi16(sc[2 * c]), _mm256_set1_epi16(sc[2 * c + 1]));
        for (int t = 0; t < NT; ++t) {
          const __m512i x = _mm512_loadu_si512(a.xq.q + (t0 + t) * cols + b * 256 + 64 * c);
          isum[t] = _mm512_dpwssd_epi32(isum[t], _mm512_maddubs_epi16(w, x), s);
        }
      }
      for (int t = 0; t < NT; ++t) {
        const int64_t xt = t0 + t;
        const float dx = a.xq.d[xt * nb + b];
        const __m256i bs =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.xq.sums + xt * ns + 16 * b));
        const __m512i mins = _mm512_zextsi256_si512(_mm256_madd_epi16(bs, mins16));
        acc[t] = _mm512_fmadd_ps(_mm512_set1_ps(d * dx), _mm512_cvtepi32_ps(isum[t]), acc[t]);
        acc[t] = _mm512_fnmadd_ps(_mm512_set1_ps(dmin * dx), _mm512_cvtepi32_ps(mins), acc[t]);
      }
    }
    for (int t = 0; t < NT; ++t) out[t] = _mm512_reduce_add_ps(acc[t]);
  }
};

// Q6_K x Q8 (blocks of 256): 64 unsigned 6-bit quants per step, maddubs then vpdpwssd with four
// sub-block scales; minus 32 * sum(x) per sub-block.
struct DotQ6_K {
  template <int NT>
  static void run(const uint8_t* row, const KernelArgs& a, int64_t t0, float* out) {
    const int64_t cols = a.w.cols, nb = cols / 256, ns = cols / kSumGroup;
    const auto* blk = reinterpret_cast<const BlockQ6_K*>(row);
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const __m256i m2 = _mm256_set1_epi8(0x03);
    __m512 acc[NT];
    for (int t = 0; t < NT; ++t) acc[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      const BlockQ6_K& k = blk[b];
      const __m256i sc16 =
          _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(k.scales)));
      __m512i isum[NT];
      for (int t = 0; t < NT; ++t) isum[t] = _mm512_setzero_si512();
      for (int h = 0; h < 2; ++h) {
        const __m256i l0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(k.ql + 64 * h));
        const __m256i l1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(k.ql + 64 * h + 32));
        const __m256i hh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(k.qh + 32 * h));
        const __m256i q0 = _mm256_or_si256(_mm256_and_si256(l0, m4),
                                           _mm256_slli_epi16(_mm256_and_si256(hh, m2), 4));
        const __m256i q1 =
            _mm256_or_si256(_mm256_and_si256(l1, m4),
                            _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hh, 2), m2), 4));
        const __m256i q2 =
            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                            _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hh, 4), m2), 4));
        const __m256i q3 =
            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                            _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hh, 6), m2), 4));
        for (int pair = 0; pair < 2; ++pair) {
          const __m512i w = pair == 0 ? join(q0, q1) : join(q2, q3);
          // 16-bit lane i of maddubs covers quants 2i, 2i+1: scale index (128h + 64pair + 2i)/16.
          const int s0 = 8 * h + 4 * pair;
          const __m512i s = join(
              _mm256_set_m128i(_mm_set1_epi16(k.scales[s0 + 1]), _mm_set1_epi16(k.scales[s0])),
              _mm256_set_m128i(_mm_set1_epi16(k.scales[s0 + 3]), _mm_set1_epi16(k.scales[s0 + 2])));
          for (int t = 0; t < NT; ++t) {
            const __m512i x =
                _mm512_loadu_si512(a.xq.q + (t0 + t) * cols + b * 256 + 128 * h + 64 * pair);
            isum[t] = _mm512_dpwssd_epi32(isum[t], _mm512_maddubs_epi16(w, x), s);
          }
        }
      }
      const float d = half(k.d);
      for (int t = 0; t < NT; ++t) {
        const int64_t xt = t0 + t;
        const __m256i bs =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.xq.sums + xt * ns + 16 * b));
        const __m512i corr =
            _mm512_zextsi256_si512(_mm256_slli_epi32(_mm256_madd_epi16(bs, sc16), 5));
        acc[t] = _mm512_fmadd_ps(_mm512_set1_ps(d * a.xq.d[xt * nb + b]),
                                 _mm512_cvtepi32_ps(_mm512_sub_epi32(isum[t], corr)), acc[t]);
      }
    }
    for (int t = 0; t < NT; ++t) out[t] = _mm512_reduce_add_ps(acc[t]);
  }
};

}  // namespace

RowsKernel avx512_kernel(DType type) {
  switch (type) {
    case DType::F32:
      return run_rows<FloatDot<LoadF32>>;
    case DType::F16:
      return run_rows<FloatDot<LoadF16>>;
    case DType::BF16:
      return run_rows<FloatDot<LoadBF16>>;
    case DType::Q8_0:
      return run_rows<Dot32<PairQ8_0>>;
    case DType::Q4_0:
      return run_rows<Dot32<PairQ4_0>>;
    case DType::Q4_K:
      return run_rows<DotQ45_K<false>>;
    case DType::Q5_K:
      return run_rows<DotQ45_K<true>>;
    case DType::Q6_K:
      return run_rows<DotQ6_K>;
    default:
      return nullptr;
  }
}

}  // namespace moerun::cpu_matmul
