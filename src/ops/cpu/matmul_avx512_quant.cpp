// AVX-512 VNNI kernels of the quantized formats against 8-bit activations prepared in the layouts
// of ActLayout. Per block the weights, scales and mins are unpacked once into registers and then
// used for every token of the pass; integer sums stay exact, one float update per block and token.
// GCC 12's AVX-512 intrinsics initialise their "undefined" operands from themselves, which
// -Wuninitialized reports at every inlined use; the warning is spurious in this file.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <immintrin.h>

#include <cstring>

#include "core/blocks.h"
#include "ops/cpu/matmul_avx512_rows.h"
#include "ops/cpu/matmul_internal.h"

namespace moerun::cpu_matmul {
namespace {

__m512i load512(const void* p) {
  return _mm512_loadu_si512(p);
}

// Q8_0 (two blocks per step): vpdpbusd(w + 128, x) started from -128 * sum(x) per block.
struct DotQ8_0 {
  // Adds blocks b[0], b[1] (64 weights at activation offset 64 * g) into acc.
  template <int NT>
  [[gnu::always_inline]] static inline void step(const BlockQ8_0* b, const KernelArgs& a,
                                                 int64_t t0, int64_t g, __m512* acc) {
    const __m512i z = _mm512_inserti64x4(
        _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[0].qs))),
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[1].qs)), 1);
    const __m512i wu = _mm512_xor_si512(z, _mm512_set1_epi8(static_cast<char>(0x80)));
    // fp16 scales at words 0 and 17 of the two blocks, 8 lanes each.
    const __m512i dsel =
        _mm512_permutexvar_epi16(_mm512_setr_epi32(0, 0, 0, 0, 0x00110011, 0x00110011, 0x00110011,
                                                   0x00110011, 0, 0, 0, 0, 0, 0, 0, 0),
                                 load512(b));
    const __m512 dw = _mm512_cvtph_ps(_mm512_castsi512_si256(dsel));
    const QuantizedActivations xq = a.xq;  // a copy: stores to acc cannot alias it
    for (int t = 0; t < NT; ++t) {
      const int64_t xt = t0 + t;
      const __m512i p = _mm512_dpbusd_epi32(load512(xq.init + xt * xq.aux_stride + 16 * g), wu,
                                            load512(xq.q + xt * xq.q_stride + 64 * g));
      const __m512 s = _mm512_mul_ps(dw, _mm512_loadu_ps(xq.d + xt * xq.d_stride + 16 * g));
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), s, acc[t]);
    }
  }
  template <int NT>
  static void run(const uint8_t* row, const KernelArgs& a, int64_t t0, __m512* out) {
    const int64_t nb = a.w.cols / 32;
    const auto* blk = reinterpret_cast<const BlockQ8_0*>(row);
    __m512 acc[NT];
    for (int t = 0; t < NT; ++t) acc[t] = _mm512_setzero_ps();
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) step<NT>(blk + b, a, t0, b / 2, acc);
    if (b < nb) {  // last block alone: pad with a zero block (scale 0, activations 0)
      BlockQ8_0 tail[2] = {};
      std::memcpy(&tail[0], blk + b, sizeof(BlockQ8_0));
      step<NT>(tail, a, t0, b / 2, acc);
    }
    for (int t = 0; t < NT; ++t) out[t] = acc[t];
  }
};

// Q4_0 (four blocks per step): low nibbles of the four blocks, then high nibbles, each one
// vpdpbusd against activations laid out to match, started from -8 * sum(x) per block.
struct DotQ4_0 {
  template <int NT>
  [[gnu::always_inline]] static inline void step(const BlockQ4_0* b, const KernelArgs& a,
                                                 int64_t t0, int64_t g, __m512* acc) {
    __m512i z = _mm512_castsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b[0].qs)));
    z = _mm512_inserti32x4(z, _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[1].qs)), 1);
    z = _mm512_inserti32x4(z, _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[2].qs)), 2);
    z = _mm512_inserti32x4(z, _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[3].qs)), 3);
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    const __m512i lo = _mm512_and_si512(z, m4);
    const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(z, 4), m4);
    // fp16 scales at words 0, 9, 18, 27 of the four blocks, 4 lanes each.
    const __m512i dsel = _mm512_permutexvar_epi16(
        _mm512_setr_epi32(0, 0, 0x00090009, 0x00090009, 0x00120012, 0x00120012, 0x001b001b,
                          0x001b001b, 0, 0, 0, 0, 0, 0, 0, 0),
        load512(b));
    const __m512 dw = _mm512_cvtph_ps(_mm512_castsi512_si256(dsel));
    const QuantizedActivations xq = a.xq;  // a copy: stores to acc cannot alias it
    for (int t = 0; t < NT; ++t) {
      const int64_t xt = t0 + t;
      const int8_t* x = xq.q + xt * xq.q_stride + 128 * g;
      __m512i p =
          _mm512_dpbusd_epi32(load512(xq.init + xt * xq.aux_stride + 16 * g), lo, load512(x));
      p = _mm512_dpbusd_epi32(p, hi, load512(x + 64));
      const __m512 s = _mm512_mul_ps(dw, _mm512_loadu_ps(xq.d + xt * xq.d_stride + 16 * g));
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), s, acc[t]);
    }
  }
  template <int NT>
  static void run(const uint8_t* row, const KernelArgs& a, int64_t t0, __m512* out) {
    const int64_t nb = a.w.cols / 32;
    const auto* blk = reinterpret_cast<const BlockQ4_0*>(row);
    __m512 acc[NT];
    for (int t = 0; t < NT; ++t) acc[t] = _mm512_setzero_ps();
    int64_t b = 0;
    for (; b + 4 <= nb; b += 4) step<NT>(blk + b, a, t0, b / 4, acc);
    if (b < nb) {  // 1-3 blocks left: pad with zero blocks (scale 0, activations 0)
      BlockQ4_0 tail[4] = {};
      std::memcpy(tail, blk + b, static_cast<size_t>(nb - b) * sizeof(BlockQ4_0));
      step<NT>(tail, a, t0, b / 4, acc);
    }
    for (int t = 0; t < NT; ++t) out[t] = acc[t];
  }
};

// Eight 6-bit scales (bytes 0-7) and mins (bytes 8-15) of a Q4_K/Q5_K block from its 12 bytes.
__m128i unpack_scales_k4(const uint8_t* scales) {
  // Read 16 bytes: the 4 after the scales are quants of the same block.
  const __m128i s = _mm_loadu_si128(reinterpret_cast<const __m128i*>(scales));
  // Low bits: sc0-3 = s0-3 & 63, sc4-7 = s8-11 & 15, m0-3 = s4-7 & 63, m4-7 = s8-11 >> 4.
  const __m128i a =
      _mm_shuffle_epi8(s, _mm_setr_epi8(0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 8, 9, 10, 11));
  const __m128i lo = _mm_or_si128(
      _mm_and_si128(a, _mm_setr_epi8(63, 63, 63, 63, 15, 15, 15, 15, 63, 63, 63, 63, 0, 0, 0, 0)),
      _mm_and_si128(_mm_srli_epi16(a, 4),
                    _mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 15, 15, 15, 15)));
  // High bits 4-5 of sc4-7 and m4-7: the top two bits of s0-3 and s4-7.
  const __m128i b =
      _mm_shuffle_epi8(s, _mm_setr_epi8(-1, -1, -1, -1, 0, 1, 2, 3, -1, -1, -1, -1, 4, 5, 6, 7));
  return _mm_or_si128(lo, _mm_and_si128(_mm_srli_epi16(b, 2), _mm_set1_epi8(0x30)));
}

// Word-permutation indices: word k takes word base + k / 4 (one qword per sub-block).
__m512i spread_qwords(int base) {
  alignas(64) int16_t idx[32];
  for (int k = 0; k < 32; ++k) idx[k] = static_cast<int16_t>(base + k / 4);
  return _mm512_load_si512(idx);
}

// Per token (Q6_K): isum = madd(sum of maddubs(v[0..1], x), s[0]) + madd(sum of maddubs(v[2..3]),
// s[1]), then acc += isum * d * dx minus mins . fsums. The weights v are ordered so that word k of
// every v[i] has the same scale.
template <int NT>
[[gnu::always_inline]] inline void k_block_tokens(const __m512i* v, const __m512i* s, __m512 d,
                                                  __m512 mins, const KernelArgs& a, int64_t t0,
                                                  int64_t b, __m512* acc) {
  const QuantizedActivations xq = a.xq;  // a copy: stores to acc cannot alias it
  for (int t = 0; t < NT; ++t) {
    const int64_t xt = t0 + t;
    const int8_t* x = xq.q + xt * xq.q_stride + 256 * b;
    const __m512i p01 = _mm512_add_epi16(_mm512_maddubs_epi16(v[0], load512(x)),
                                         _mm512_maddubs_epi16(v[1], load512(x + 64)));
    const __m512i p23 = _mm512_add_epi16(_mm512_maddubs_epi16(v[2], load512(x + 128)),
                                         _mm512_maddubs_epi16(v[3], load512(x + 192)));
    const __m512i i = _mm512_dpwssd_epi32(_mm512_madd_epi16(p01, s[0]), p23, s[1]);
    const __m512 dd = _mm512_mul_ps(d, _mm512_set1_ps(xq.d[xt * xq.d_stride + b]));
    acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i), dd, acc[t]);
    acc[t] =
        _mm512_fnmadd_ps(mins, _mm512_loadu_ps(xq.fsums + xt * xq.aux_stride + 16 * b), acc[t]);
  }
}

// Per token: isum = vpdpbusd of the four unsigned weight vectors v with the token's quants (dword
// lanes 2s, 2s+1 belong to sub-block s in the k_perm order), then acc += isum * dsc * dx minus
// mins . fsums (dsc: d * scale of each lane's sub-block).
template <int NT>
[[gnu::always_inline]] inline void k_block_tokens_vnni(const __m512i* v, __m512 dsc, __m512 mins,
                                                       const KernelArgs& a, int64_t t0, int64_t b,
                                                       __m512* acc) {
  const QuantizedActivations xq = a.xq;  // a copy: stores to acc cannot alias it
  for (int t = 0; t < NT; ++t) {
    const int64_t xt = t0 + t;
    const int8_t* x = xq.q + xt * xq.q_stride + 256 * b;
    __m512i i = _mm512_dpbusd_epi32(_mm512_setzero_si512(), v[0], load512(x));
    i = _mm512_dpbusd_epi32(i, v[1], load512(x + 64));
    i = _mm512_dpbusd_epi32(i, v[2], load512(x + 128));
    i = _mm512_dpbusd_epi32(i, v[3], load512(x + 192));
    const __m512 f =
        _mm512_mul_ps(_mm512_cvtepi32_ps(i), _mm512_set1_ps(xq.d[xt * xq.d_stride + b]));
    acc[t] = _mm512_fmadd_ps(f, dsc, acc[t]);
    acc[t] =
        _mm512_fnmadd_ps(mins, _mm512_loadu_ps(xq.fsums + xt * xq.aux_stride + 16 * b), acc[t]);
  }
}

// Q4_K / Q5_K: 64 bytes of quants give sub-blocks [0|2] (low nibbles) and [1|3] (high), the next
// 64 [4|6] and [5|7]; two qword permutes and a lane shuffle per pair regroup them so that qword s
// of every vector belongs to sub-block s (the k_perm activation order). The four vpdpbusd of a
// token then add up in one int32 vector whose lanes each belong to one sub-block.
template <bool kFifthBit>
struct DotQ45_K {
  using Block = std::conditional_t<kFifthBit, BlockQ5_K, BlockQ4_K>;
  template <int NT>
  static void run(const uint8_t* row, const KernelArgs& a, int64_t t0, __m512* out) {
    const int64_t nb = a.w.cols / 256;
    const auto* blk = reinterpret_cast<const Block*>(row);
    __m512 acc[NT];
    for (int t = 0; t < NT; ++t) acc[t] = _mm512_setzero_ps();
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    const __m512i idx_a = _mm512_setr_epi64(0, 8, 4, 12, 1, 9, 5, 13);
    const __m512i idx_b = _mm512_setr_epi64(2, 10, 6, 14, 3, 11, 7, 15);
    for (int64_t b = 0; b < nb; ++b) {
      const Block& k = blk[b];
      const __m128i sm = unpack_scales_k4(k.scales);
      // Scales per dword lane: sc0 sc0 sc1 sc1 ... sc7 sc7, times d; mins per 16 quants likewise.
      const __m512i s16 = _mm512_cvtepu8_epi32(
          _mm_shuffle_epi8(sm, _mm_setr_epi8(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7)));
      const __m512 dsc = _mm512_mul_ps(_mm512_cvtepi32_ps(s16), _mm512_set1_ps(_cvtsh_ss(k.d)));
      const __m512i m16 = _mm512_cvtepu8_epi32(_mm_shuffle_epi8(
          sm, _mm_setr_epi8(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15)));
      const __m512 mins = _mm512_mul_ps(_mm512_cvtepi32_ps(m16), _mm512_set1_ps(_cvtsh_ss(k.dmin)));
      const __m512i q0 = load512(k.qs), q1 = load512(k.qs + 64);
      __m512i w[4] = {_mm512_and_si512(q0, m4), _mm512_and_si512(_mm512_srli_epi16(q0, 4), m4),
                      _mm512_and_si512(q1, m4), _mm512_and_si512(_mm512_srli_epi16(q1, 4), m4)};
      if constexpr (kFifthBit) {
        // Sub-block j takes bit j of qh[l]: bits [0|2] for w[0], [1|3], [4|6], [5|7].
        const __m512i h = _mm512_srlv_epi16(
            _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(k.qh))),
            _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1));
        const __m512i h4 = _mm512_srli_epi16(h, 4);
        const __m512i bit = _mm512_set1_epi8(0x10);
        // w | (shifted & 0x10): ternary-logic A | (B & C).
        w[0] = _mm512_ternarylogic_epi32(w[0], _mm512_slli_epi16(h, 4), bit, 0xf8);
        w[1] = _mm512_ternarylogic_epi32(w[1], _mm512_slli_epi16(h, 3), bit, 0xf8);
        w[2] = _mm512_ternarylogic_epi32(w[2], _mm512_slli_epi16(h4, 4), bit, 0xf8);
        w[3] = _mm512_ternarylogic_epi32(w[3], _mm512_slli_epi16(h4, 3), bit, 0xf8);
      }
      // x0 = qword 0 of sub-blocks 0-3 and qword 1 of them; y0 qwords 2, 3; x1, y1 for 4-7.
      const __m512i x0 = _mm512_permutex2var_epi64(w[0], idx_a, w[1]);
      const __m512i y0 = _mm512_permutex2var_epi64(w[0], idx_b, w[1]);
      const __m512i x1 = _mm512_permutex2var_epi64(w[2], idx_a, w[3]);
      const __m512i y1 = _mm512_permutex2var_epi64(w[2], idx_b, w[3]);
      const __m512i v[4] = {_mm512_shuffle_i64x2(x0, x1, 0x44), _mm512_shuffle_i64x2(x0, x1, 0xee),
                            _mm512_shuffle_i64x2(y0, y1, 0x44), _mm512_shuffle_i64x2(y0, y1, 0xee)};
      k_block_tokens_vnni<NT>(v, dsc, mins, a, t0, b, acc);
    }
    for (int t = 0; t < NT; ++t) out[t] = acc[t];
  }
};

// Q6_K: 64 bytes of ql and 32 of qh give weights 128h..128h+63 and 128h+64..128h+127; qword
// permutes regroup them (k6_perm order) so that qword s of the first two vectors is sub-block s
// (of 16) and of the last two sub-block 8 + s: pairs add up in 16 bits (2 * 2 * 63 * 127 < 2^15).
// Unsigned 6-bit quants, minus 32 * scale * sum(x) per 16 through the float sums.
struct DotQ6_K {
  template <int NT>
  static void run(const uint8_t* row, const KernelArgs& a, int64_t t0, __m512* out) {
    const int64_t nb = a.w.cols / 256;
    const auto* blk = reinterpret_cast<const BlockQ6_K*>(row);
    __m512 acc[NT];
    for (int t = 0; t < NT; ++t) acc[t] = _mm512_setzero_ps();
    const __m512i m4 = _mm512_set1_epi8(0x0f), m30 = _mm512_set1_epi8(0x30);
    const __m512i shift = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);
    const __m512i even = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14);
    const __m512i odd = _mm512_setr_epi64(1, 3, 5, 7, 9, 11, 13, 15);
    const __m512i spread_lo = spread_qwords(0), spread_hi = spread_qwords(8);
    for (int64_t b = 0; b < nb; ++b) {
      const BlockQ6_K& k = blk[b];
      const __m128i sc8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(k.scales));
      const __m512i s16 = _mm512_castsi256_si512(_mm256_cvtepi8_epi16(sc8));
      const __m512i s[2] = {_mm512_permutexvar_epi16(spread_lo, s16),
                            _mm512_permutexvar_epi16(spread_hi, s16)};
      const float d = _cvtsh_ss(k.d);
      const __m512 corr =
          _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(sc8)), _mm512_set1_ps(32.0f * d));
      __m512i w[4];
      for (int h = 0; h < 2; ++h) {
        const __m512i l = load512(k.ql + 64 * h);
        const __m512i hh = _mm512_srlv_epi16(_mm512_broadcast_i64x4(_mm256_loadu_si256(
                                                 reinterpret_cast<const __m256i*>(k.qh + 32 * h))),
                                             shift);
        w[2 * h] = _mm512_or_si512(_mm512_and_si512(l, m4),
                                   _mm512_and_si512(_mm512_slli_epi16(hh, 4), m30));
        w[2 * h + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l, 4), m4),
                                       _mm512_and_si512(hh, m30));
      }
      const __m512i v[4] = {
          _mm512_permutex2var_epi64(w[0], even, w[1]), _mm512_permutex2var_epi64(w[0], odd, w[1]),
          _mm512_permutex2var_epi64(w[2], even, w[3]), _mm512_permutex2var_epi64(w[2], odd, w[3])};
      k_block_tokens<NT>(v, s, _mm512_set1_ps(d), corr, a, t0, b, acc);
    }
    for (int t = 0; t < NT; ++t) out[t] = acc[t];
  }
};

}  // namespace

RowsKernel avx512_quant_kernel(DType type) {
  switch (type) {
    case DType::Q8_0:
      return run_rows_avx512<DotQ8_0>;
    case DType::Q4_0:
      return run_rows_avx512<DotQ4_0>;
    case DType::Q4_K:
      return run_rows_avx512<DotQ45_K<false>>;
    case DType::Q5_K:
      return run_rows_avx512<DotQ45_K<true>>;
    case DType::Q6_K:
      return run_rows_avx512<DotQ6_K>;
    default:
      return nullptr;
  }
}

}  // namespace moerun::cpu_matmul
