// AVX2 + FMA + F16C path: f32 FMAs for the float formats, 8-bit maddubs/madd for quantized ones.
#include <immintrin.h>

#include "core/blocks.h"
#include "ops/cpu/matmul_internal.h"
#include "ops/cpu/matmul_row_driver.h"

namespace moerun::cpu_matmul {
namespace {

float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

float half(uint16_t h) {
  return _cvtsh_ss(h);
}

// Loads 8 (or 1) weights of the float formats as f32.
struct LoadF32 {
  static __m256 load8(const uint8_t* row, int64_t j) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(row) + j);
  }
  static float load1(const uint8_t* row, int64_t j) {
    return reinterpret_cast<const float*>(row)[j];
  }
};
struct LoadF16 {
  static __m256 load8(const uint8_t* row, int64_t j) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * j)));
  }
  static float load1(const uint8_t* row, int64_t j) {
    uint16_t h;
    __builtin_memcpy(&h, row + 2 * j, 2);
    return half(h);
  }
};
struct LoadBF16 {
  static __m256 load8(const uint8_t* row, int64_t j) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * j));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
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
    __m256 acc0[NT], acc1[NT];
    for (int t = 0; t < NT; ++t) {
      x[t] = a.x + (t0 + t) * cols;
      acc0[t] = _mm256_setzero_ps();
      acc1[t] = _mm256_setzero_ps();
    }
    int64_t j = 0;
    for (; j + 16 <= cols; j += 16) {
      const __m256 w0 = Load::load8(row, j);
      const __m256 w1 = Load::load8(row, j + 8);
      for (int t = 0; t < NT; ++t) {
        acc0[t] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x[t] + j), acc0[t]);
        acc1[t] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x[t] + j + 8), acc1[t]);
      }
    }
    for (; j + 8 <= cols; j += 8) {
      const __m256 w0 = Load::load8(row, j);
      for (int t = 0; t < NT; ++t)
        acc0[t] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x[t] + j), acc0[t]);
    }
    for (int t = 0; t < NT; ++t) {
      float s = hsum(_mm256_add_ps(acc0[t], acc1[t]));
      for (int64_t k = j; k < cols; ++k) s += Load::load1(row, k) * x[t][k];
      out[t] = s;
    }
  }
};

// Q8_0 x Q8 (blocks of 32): |w| times x with w's sign, so maddubs sees an unsigned operand.
struct DotQ8_0 {
  template <int NT>
  static void run(const uint8_t* row, const KernelArgs& a, int64_t t0, float* out) {
    const int64_t cols = a.w.cols, nb = cols / 32;
    const auto* blk = reinterpret_cast<const BlockQ8_0*>(row);
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[NT];
    for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk[b].qs));
      const __m256i aw = _mm256_abs_epi8(w);
      const float dw = half(blk[b].d);
      for (int t = 0; t < NT; ++t) {
        const int64_t xt = t0 + t;
        const __m256i xq =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.xq.q + xt * cols + b * 32));
        const __m256i p =
            _mm256_madd_epi16(_mm256_maddubs_epi16(aw, _mm256_sign_epi8(xq, w)), ones);
        acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(dw * a.xq.d[xt * nb + b]), _mm256_cvtepi32_ps(p),
                                 acc[t]);
      }
    }
    for (int t = 0; t < NT; ++t) out[t] = hsum(acc[t]);
  }
};

// Q4_0 x Q8 (blocks of 32): unsigned nibbles times x, minus 8 * sum(x) from the per-16 sums.
struct DotQ4_0 {
  template <int NT>
  static void run(const uint8_t* row, const KernelArgs& a, int64_t t0, float* out) {
    const int64_t cols = a.w.cols, nb = cols / 32, ns = cols / kSumGroup;
    const auto* blk = reinterpret_cast<const BlockQ4_0*>(row);
    const __m256i ones = _mm256_set1_epi16(1);
    const __m128i m4 = _mm_set1_epi8(0x0f);
    __m256 acc[NT];
    float corr[NT];
    for (int t = 0; t < NT; ++t) {
      acc[t] = _mm256_setzero_ps();
      corr[t] = 0.0f;
    }
    for (int64_t b = 0; b < nb; ++b) {
      const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk[b].qs));
      const __m256i w =
          _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(q, 4), m4), _mm_and_si128(q, m4));
      const float dw = half(blk[b].d);
      for (int t = 0; t < NT; ++t) {
        const int64_t xt = t0 + t;
        const __m256i xq =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.xq.q + xt * cols + b * 32));
        const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(w, xq), ones);
        const float s = dw * a.xq.d[xt * nb + b];
        const int16_t* sums = a.xq.sums + xt * ns + 2 * b;
        acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(s), _mm256_cvtepi32_ps(p), acc[t]);
        corr[t] += s * static_cast<float>(8 * (sums[0] + sums[1]));
      }
    }
    for (int t = 0; t < NT; ++t) out[t] = hsum(acc[t]) - corr[t];
  }
};

// Q4_K / Q5_K x Q8 (blocks of 256): per sub-block scales via madd, mins via the per-16 sums.
template <bool kFifthBit>
struct DotQ45_K {
  using Block = std::conditional_t<kFifthBit, BlockQ5_K, BlockQ4_K>;
  template <int NT>
  static void run(const uint8_t* row, const KernelArgs& a, int64_t t0, float* out) {
    const int64_t cols = a.w.cols, nb = cols / 256, ns = cols / kSumGroup;
    const auto* blk = reinterpret_cast<const Block*>(row);
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const __m256i one8 = _mm256_set1_epi8(1);
    __m256 acc[NT];
    for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      const Block& k = blk[b];
      uint8_t sc[8], m[8];
      for (int j = 0; j < 8; ++j) unpack_scale_min_k4(j, k.scales, &sc[j], &m[j]);
      const __m256i mins16 = _mm256_setr_epi16(m[0], m[0], m[1], m[1], m[2], m[2], m[3], m[3], m[4],
                                               m[4], m[5], m[5], m[6], m[6], m[7], m[7]);
      const float d = half(k.d), dmin = half(k.dmin);
      __m256i isum[NT];
      for (int t = 0; t < NT; ++t) isum[t] = _mm256_setzero_si256();
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
        const __m256i s_lo = _mm256_set1_epi16(sc[2 * c]);
        const __m256i s_hi = _mm256_set1_epi16(sc[2 * c + 1]);
        for (int t = 0; t < NT; ++t) {
          const int8_t* xq = a.xq.q + (t0 + t) * cols + b * 256 + 64 * c;
          const __m256i x0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq));
          const __m256i x1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + 32));
          const __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, x0), s_lo);
          const __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, x1), s_hi);
          isum[t] = _mm256_add_epi32(isum[t], _mm256_add_epi32(p0, p1));
        }
      }
      for (int t = 0; t < NT; ++t) {
        const int64_t xt = t0 + t;
        const float dx = a.xq.d[xt * nb + b];
        const __m256i bs =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.xq.sums + xt * ns + 16 * b));
        acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * dx), _mm256_cvtepi32_ps(isum[t]), acc[t]);
        acc[t] = _mm256_fnmadd_ps(_mm256_set1_ps(dmin * dx),
                                  _mm256_cvtepi32_ps(_mm256_madd_epi16(bs, mins16)), acc[t]);
      }
    }
    for (int t = 0; t < NT; ++t) out[t] = hsum(acc[t]);
  }
};

// Q6_K x Q8 (blocks of 256): unsigned 6-bit quants times x, minus 32 * sum(x) per sub-block.
struct DotQ6_K {
  template <int NT>
  static void run(const uint8_t* row, const KernelArgs& a, int64_t t0, float* out) {
    const int64_t cols = a.w.cols, nb = cols / 256, ns = cols / kSumGroup;
    const auto* blk = reinterpret_cast<const BlockQ6_K*>(row);
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const __m256i m2 = _mm256_set1_epi8(0x03);
    __m256 acc[NT];
    for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      const BlockQ6_K& k = blk[b];
      __m256i isum[NT];
      for (int t = 0; t < NT; ++t) isum[t] = _mm256_setzero_si256();
      for (int h = 0; h < 2; ++h) {
        const __m256i l0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(k.ql + 64 * h));
        const __m256i l1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(k.ql + 64 * h + 32));
        const __m256i hh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(k.qh + 32 * h));
        for (int quarter = 0; quarter < 4; ++quarter) {
          const __m256i l = quarter & 1 ? l1 : l0;
          const __m256i low =
              quarter < 2 ? _mm256_and_si256(l, m4) : _mm256_and_si256(_mm256_srli_epi16(l, 4), m4);
          // Bits 2*quarter..2*quarter+1 of qh become bits 4..5 of the quant.
          __m256i high;
          switch (quarter) {
            case 0:
              high = _mm256_slli_epi16(_mm256_and_si256(hh, m2), 4);
              break;
            case 1:
              high = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hh, 2), m2), 4);
              break;
            case 2:
              high = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hh, 4), m2), 4);
              break;
            default:
              high = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hh, 6), m2), 4);
              break;
          }
          const __m256i q = _mm256_or_si256(low, high);
          const int s = 8 * h + 2 * quarter;
          const __m256i sc =
              _mm256_set_m128i(_mm_set1_epi16(k.scales[s + 1]), _mm_set1_epi16(k.scales[s]));
          for (int t = 0; t < NT; ++t) {
            const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(
                a.xq.q + (t0 + t) * cols + b * 256 + 128 * h + 32 * quarter));
            isum[t] = _mm256_add_epi32(isum[t], _mm256_madd_epi16(_mm256_maddubs_epi16(q, x), sc));
          }
        }
      }
      const float d = half(k.d);
      const __m256i sc16 =
          _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(k.scales)));
      for (int t = 0; t < NT; ++t) {
        const int64_t xt = t0 + t;
        const __m256i bs =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.xq.sums + xt * ns + 16 * b));
        const __m256i corr = _mm256_slli_epi32(_mm256_madd_epi16(bs, sc16), 5);
        acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * a.xq.d[xt * nb + b]),
                                 _mm256_cvtepi32_ps(_mm256_sub_epi32(isum[t], corr)), acc[t]);
      }
    }
    for (int t = 0; t < NT; ++t) out[t] = hsum(acc[t]);
  }
};

}  // namespace

RowsKernel avx2_kernel(DType type) {
  switch (type) {
    case DType::F32:
      return run_rows<FloatDot<LoadF32>>;
    case DType::F16:
      return run_rows<FloatDot<LoadF16>>;
    case DType::BF16:
      return run_rows<FloatDot<LoadBF16>>;
    case DType::Q8_0:
      return run_rows<DotQ8_0>;
    case DType::Q4_0:
      return run_rows<DotQ4_0>;
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
