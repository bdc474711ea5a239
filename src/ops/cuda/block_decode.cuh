// Device decoding of the block formats, one group of 32 weights at a time, in integer form
// (shared by the dequantisation kernels, the GEMV and the expert kernels).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "core/blocks.h"
#include "core/dtype.h"

namespace moerun::cuda {

// f32 value of an IEEE half bit pattern.
__device__ inline float half_bits_to_float(uint16_t h) {
  return __half2float(__ushort_as_half(h));
}

// f32 value of a bfloat16 bit pattern.
__device__ inline float bf16_bits_to_float(uint16_t b) {
  return __uint_as_float(static_cast<uint32_t>(b) << 16);
}

// Four bytes at an address that is only 2-byte aligned.
__device__ inline uint32_t load_u32_a2(const uint8_t* p) {
  const auto* h = reinterpret_cast<const uint16_t*>(p);
  return static_cast<uint32_t>(h[0]) | (static_cast<uint32_t>(h[1]) << 16);
}

// Four bytes at a 4-byte aligned address.
__device__ inline uint32_t load_u32_a4(const uint8_t* p) {
  return *reinterpret_cast<const uint32_t*>(p);
}

// A group of 32 weights in integer form: weight l is (l < 16 ? s_lo : s_hi) * q_l - m, where q_l
// is the signed byte l % 4 of q[l / 4] (little endian).
struct Group32 {
  int q[8];  // [8] four signed 8-bit quants each
  float s_lo;
  float s_hi;
  float m;
};

// Block geometry of a block format (kElems weights in kBytes bytes).
template <DType T>
struct BlockFormat;
template <>
struct BlockFormat<DType::Q8_0> {
  static constexpr int kElems = 32, kBytes = 34;
};
template <>
struct BlockFormat<DType::Q4_0> {
  static constexpr int kElems = 32, kBytes = 18;
};
template <>
struct BlockFormat<DType::Q4_K> {
  static constexpr int kElems = 256, kBytes = 144;
};
template <>
struct BlockFormat<DType::Q5_K> {
  static constexpr int kElems = 256, kBytes = 176;
};
template <>
struct BlockFormat<DType::Q6_K> {
  static constexpr int kElems = 256, kBytes = 210;
};

// Decodes group `sub` (0 .. kElems / 32 - 1) of the block at `blk` into *g. Blocks need 2-byte
// alignment; Q4_K and Q5_K blocks need 4-byte alignment.
template <DType T>
__device__ void decode_group32(const uint8_t* blk, int sub, Group32* g);

// Q8_0: w = d * q.
template <>
__device__ inline void decode_group32<DType::Q8_0>(const uint8_t* blk, int /*sub*/, Group32* g) {
  const float d = half_bits_to_float(*reinterpret_cast<const uint16_t*>(blk));
#pragma unroll
  for (int i = 0; i < 8; ++i) g->q[i] = static_cast<int>(load_u32_a2(blk + 2 + 4 * i));
  g->s_lo = d;
  g->s_hi = d;
  g->m = 0.0f;
}

// Q4_0: w = d * (nibble - 8); weights 0..15 are the low nibbles of qs, 16..31 the high ones.
template <>
__device__ inline void decode_group32<DType::Q4_0>(const uint8_t* blk, int /*sub*/, Group32* g) {
  const float d = half_bits_to_float(*reinterpret_cast<const uint16_t*>(blk));
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const uint32_t w = load_u32_a2(blk + 2 + 4 * i);
    g->q[i] = static_cast<int>(__vsub4(w & 0x0F0F0F0Fu, 0x08080808u));
    g->q[4 + i] = static_cast<int>(__vsub4((w >> 4) & 0x0F0F0F0Fu, 0x08080808u));
  }
  g->s_lo = d;
  g->s_hi = d;
  g->m = 0.0f;
}

// Q4_K sub-block `sub`: w = d * sc * nibble - dmin * m; chunk sub / 2 of qs, low or high nibbles.
template <>
__device__ inline void decode_group32<DType::Q4_K>(const uint8_t* blk, int sub, Group32* g) {
  const auto* h = reinterpret_cast<const uint16_t*>(blk);
  uint8_t sc, mn;
  unpack_scale_min_k4(sub, blk + 4, &sc, &mn);
  const uint8_t* qs = blk + 16 + 32 * (sub / 2);
  const int shift = 4 * (sub % 2);
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    g->q[i] = static_cast<int>((load_u32_a4(qs + 4 * i) >> shift) & 0x0F0F0F0Fu);
  }
  g->s_lo = half_bits_to_float(h[0]) * static_cast<float>(sc);
  g->s_hi = g->s_lo;
  g->m = half_bits_to_float(h[1]) * static_cast<float>(mn);
}

// Q5_K sub-block `sub`: as Q4_K with bit `sub` of qh[l] as the fifth bit of weight l.
template <>
__device__ inline void decode_group32<DType::Q5_K>(const uint8_t* blk, int sub, Group32* g) {
  const auto* h = reinterpret_cast<const uint16_t*>(blk);
  uint8_t sc, mn;
  unpack_scale_min_k4(sub, blk + 4, &sc, &mn);
  const uint8_t* qh = blk + 16;
  const uint8_t* qs = blk + 48 + 32 * (sub / 2);
  const int shift = 4 * (sub % 2);
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const uint32_t low = (load_u32_a4(qs + 4 * i) >> shift) & 0x0F0F0F0Fu;
    const uint32_t high = ((load_u32_a4(qh + 4 * i) >> sub) & 0x01010101u) << 4;
    g->q[i] = static_cast<int>(low | high);
  }
  g->s_lo = half_bits_to_float(h[0]) * static_cast<float>(sc);
  g->s_hi = g->s_lo;
  g->m = half_bits_to_float(h[1]) * static_cast<float>(mn);
}

// Q6_K group `sub` = weights 32 * sub .. + 31 of the super-block: half sub / 4, quarter sub % 4
// (weights l + 32 * quarter of the half, l = 0..31), two sub-blocks of 16 with their own scales.
template <>
__device__ inline void decode_group32<DType::Q6_K>(const uint8_t* blk, int sub, Group32* g) {
  const int half = sub / 4;
  const int quarter = sub % 4;
  const uint8_t* ql = blk + 64 * half + 32 * (quarter % 2);
  const uint8_t* qh = blk + 128 + 32 * half;
  const int shift_l = 4 * (quarter / 2);
  const int shift_h = 2 * quarter;
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const uint32_t low = (load_u32_a2(ql + 4 * i) >> shift_l) & 0x0F0F0F0Fu;
    const uint32_t high = ((load_u32_a2(qh + 4 * i) >> shift_h) & 0x03030303u) << 4;
    g->q[i] = static_cast<int>(__vsub4(low | high, 0x20202020u));
  }
  const float d = half_bits_to_float(*reinterpret_cast<const uint16_t*>(blk + 208));
  const auto* scales = reinterpret_cast<const int8_t*>(blk + 192 + 8 * half + 2 * quarter);
  g->s_lo = d * static_cast<float>(scales[0]);
  g->s_hi = d * static_cast<float>(scales[1]);
  g->m = 0.0f;
}

// Signed quant l (0..31) of a decoded group.
__device__ inline int group_quant(const Group32& g, int l) {
  return static_cast<int8_t>(static_cast<uint32_t>(g.q[l / 4]) >> (8 * (l % 4)));
}

// Weight l (0..31) of a decoded group in f32.
__device__ inline float group_weight(const Group32& g, int l) {
  return (l < 16 ? g.s_lo : g.s_hi) * static_cast<float>(group_quant(g, l)) - g.m;
}

// Element i of a row of a float format (F32, F16, BF16) in f32.
template <DType T>
__device__ inline float load_float_elem(const uint8_t* row, int64_t i) {
  if constexpr (T == DType::F32) {
    return __ldg(reinterpret_cast<const float*>(row) + i);
  } else if constexpr (T == DType::F16) {
    return half_bits_to_float(__ldg(reinterpret_cast<const unsigned short*>(row) + i));
  } else {
    return bf16_bits_to_float(__ldg(reinterpret_cast<const unsigned short*>(row) + i));
  }
}

}  // namespace moerun::cuda
