// Warp-level dot products of a few weight rows with a few activation rows, streaming each row once
// (the decode GEMV and the expert kernels share it).
//
// Block formats: a warp takes 1024 columns at a time: the bytes of its rows' chunk are copied to
// shared memory with coalesced 16-byte loads, then lane l decodes group l (32 weights) of each row
// in registers and takes int8 dot products (dp4a) with the int8 activations of every token.
// Float formats: lane l reads 4 consecutive weights at 128-column strides straight from global
// memory and multiplies them in f32.
#pragma once

#include <cstdint>

#include "ops/cuda/block_decode.cuh"
#include "ops/cuda/launch_plan.h"

namespace moerun::cuda {

// One token's activation row: f32 for float formats; int8 plus per-32 (d, d * sum q) for blocks.
struct ActRow {
  const float* f;   // [cols] f32
  const int8_t* q;  // [cols] int8
  const float2* d;  // [cols / 32]
};

// Whether T is read as plain floats (F32, F16, BF16) rather than blocks (usable in device code).
template <DType T>
inline constexpr bool kFloatFormat = T == DType::F32 || T == DType::F16 || T == DType::BF16;

// Bytes of one 1024-column chunk of a row of block format T (16 for float formats, unused).
template <DType T>
struct StageBytes {
  static constexpr int bytes = 1024 / BlockFormat<T>::kElems * BlockFormat<T>::kBytes;
  // Rounded up to 16 so that every staged row starts 16-byte aligned (Q6_K: 840 -> 848).
  static constexpr int value = (bytes + 15) / 16 * 16;
};
template <>
struct StageBytes<DType::F32> {
  static constexpr int value = 16;
};
template <>
struct StageBytes<DType::F16> {
  static constexpr int value = 16;
};
template <>
struct StageBytes<DType::BF16> {
  static constexpr int value = 16;
};

// Copies the first n / sizeof(V) * sizeof(V) bytes of [off, off + n) of each non-null row to
// buf + r * kStride with loads of V (the sources aligned to V); all loads are issued before the
// stores. Returns the bytes copied.
template <typename V, int kStride, int R>
__device__ inline int stage_rows_vec(uint8_t* buf, const uint8_t* const (&rows)[R], int64_t off,
                                     int n, int lane) {
  constexpr int kPer = (kStride / static_cast<int>(sizeof(V)) + 31) / 32;  // loads per lane
  const int nv = n / static_cast<int>(sizeof(V));
  V v[R][kPer];
#pragma unroll
  for (int r = 0; r < R; ++r) {
    if (rows[r] == nullptr) continue;
    const auto* src = reinterpret_cast<const V*>(rows[r] + off);
#pragma unroll
    for (int k = 0; k < kPer; ++k) {
      const int i = lane + 32 * k;
      if (i < nv) v[r][k] = __ldg(src + i);
    }
  }
#pragma unroll
  for (int r = 0; r < R; ++r) {
    if (rows[r] == nullptr) continue;
    auto* dst = reinterpret_cast<V*>(buf + r * kStride);
#pragma unroll
    for (int k = 0; k < kPer; ++k) {
      const int i = lane + 32 * k;
      if (i < nv) dst[i] = v[r][k];
    }
  }
  return nv * static_cast<int>(sizeof(V));
}

// Copies bytes [off, off + n) of each non-null row to buf + r * StageBytes<T>::value (shared,
// 16-byte aligned) with the whole warp: 16-byte loads when every row's source is 16-byte aligned,
// else 8-byte loads when 8-byte aligned, then 2-byte loads for the rest. n is even.
template <DType T, int R>
__device__ inline void stage_rows(uint8_t* buf, const uint8_t* const (&rows)[R], int64_t off, int n,
                                  int lane) {
  constexpr int kStride = StageBytes<T>::value;  // between staged rows
  uintptr_t bits = 0;                            // OR of the source addresses
#pragma unroll
  for (int r = 0; r < R; ++r) {
    if (rows[r] != nullptr) bits |= reinterpret_cast<uintptr_t>(rows[r] + off);
  }
  int done = 0;  // bytes copied by a vector path
  if ((bits & 15) == 0) {
    done = stage_rows_vec<int4, kStride, R>(buf, rows, off, n, lane);
  } else if ((bits & 7) == 0) {
    done = stage_rows_vec<uint2, kStride, R>(buf, rows, off, n, lane);
  }
#pragma unroll
  for (int r = 0; r < R; ++r) {
    if (rows[r] == nullptr) continue;
    const auto* src = reinterpret_cast<const unsigned short*>(rows[r] + off);
    auto* dst = reinterpret_cast<uint16_t*>(buf + r * kStride);
    for (int i = done / 2 + lane; i < n / 2; i += 32) dst[i] = __ldg(src + i);
  }
}

// acc[r][t] += row r . activation t over the chunks k0, k0 + kstep, ... of a block-format row of
// `cols` weights; tokens t >= nt_valid are skipped; null rows are skipped. buf: this warp's
// shared staging area of R * StageBytes<T>::value bytes (16-byte aligned).
template <DType T, int NT, int R>
__device__ inline void gemv_warp_blocks(const uint8_t* const (&rows)[R], int64_t cols, int64_t k0,
                                        int64_t kstep, int nt_valid, const ActRow (&x)[NT],
                                        uint8_t* buf, float (&acc)[R][NT]) {
  constexpr int kBytes = StageBytes<T>::value;       // stride between staged rows
  constexpr int kChunkBytes = StageBytes<T>::bytes;  // bytes of 1024 columns
  constexpr int kGroupsPerBlock = BlockFormat<T>::kElems / 32;
  const int lane = static_cast<int>(threadIdx.x % 32);
  const int64_t row_bytes = cols / BlockFormat<T>::kElems * BlockFormat<T>::kBytes;
  const int64_t n_chunks = (cols + 1023) / 1024;
  const int64_t n_groups = cols / 32;
  for (int64_t c = k0; c < n_chunks; c += kstep) {
    const int64_t off = c * kChunkBytes;
    const int n = static_cast<int>(row_bytes - off < kChunkBytes ? row_bytes - off : kChunkBytes);
    stage_rows<T, R>(buf, rows, off, n, lane);
    __syncwarp();
    const int64_t g = c * 32 + lane;  // this lane's group of 32 weights in the row
    if (g < n_groups) {
      Group32 w[R];
#pragma unroll
      for (int r = 0; r < R; ++r) {
        decode_group32<T>(buf + r * kBytes + (lane / kGroupsPerBlock) * BlockFormat<T>::kBytes,
                          lane % kGroupsPerBlock, &w[r]);
      }
#pragma unroll
      for (int t = 0; t < NT; ++t) {
        if (t >= nt_valid) break;
        const auto* xq = reinterpret_cast<const int4*>(x[t].q + g * 32);
        const int4 a = __ldg(xq);
        const int4 b = __ldg(xq + 1);
        const float2 xd = __ldg(x[t].d + g);
#pragma unroll
        for (int r = 0; r < R; ++r) {
          if (rows[r] == nullptr) continue;
          int lo = __dp4a(w[r].q[0], a.x, 0);
          lo = __dp4a(w[r].q[1], a.y, lo);
          lo = __dp4a(w[r].q[2], a.z, lo);
          lo = __dp4a(w[r].q[3], a.w, lo);
          int hi = __dp4a(w[r].q[4], b.x, 0);
          hi = __dp4a(w[r].q[5], b.y, hi);
          hi = __dp4a(w[r].q[6], b.z, hi);
          hi = __dp4a(w[r].q[7], b.w, hi);
          const float dot = w[r].s_lo * static_cast<float>(lo) + w[r].s_hi * static_cast<float>(hi);
          acc[r][t] += xd.x * dot - w[r].m * xd.y;
        }
      }
    }
    __syncwarp();
  }
}

// Four weights of a float-format row starting at column i (16-byte aligned for F32, 8 for F16 and
// BF16).
template <DType T>
__device__ inline void load_float4_weights(const uint8_t* row, int64_t i, float (&w)[4]) {
  if constexpr (T == DType::F32) {
    const float4 v = __ldg(reinterpret_cast<const float4*>(row) + i / 4);
    w[0] = v.x;
    w[1] = v.y;
    w[2] = v.z;
    w[3] = v.w;
  } else {
    const uint2 v = __ldg(reinterpret_cast<const uint2*>(row) + i / 4);
    const uint16_t h[4] = {static_cast<uint16_t>(v.x), static_cast<uint16_t>(v.x >> 16),
                           static_cast<uint16_t>(v.y), static_cast<uint16_t>(v.y >> 16)};
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      w[k] = T == DType::F16 ? half_bits_to_float(h[k]) : bf16_bits_to_float(h[k]);
    }
  }
}

// As gemv_warp_blocks for F32, F16 and BF16 rows, with f32 activations: chunk c covers columns
// [512 c, 512 c + 512), lane l the columns 512 c + 128 j + 4 l + (0..3), j = 0..3.
template <DType T, int NT, int R>
__device__ inline void gemv_warp_floats(const uint8_t* const (&rows)[R], int64_t cols, int64_t k0,
                                        int64_t kstep, int nt_valid, const ActRow (&x)[NT],
                                        float (&acc)[R][NT]) {
  constexpr int kElemBytes = T == DType::F32 ? 4 : 2;
  const int lane = static_cast<int>(threadIdx.x % 32);
  // Vector loads need every row and activation row aligned to 4 elements.
  bool vec = cols % 4 == 0;
#pragma unroll
  for (int r = 0; r < R; ++r) {
    if (rows[r] != nullptr && (reinterpret_cast<uintptr_t>(rows[r]) % (4 * kElemBytes)) != 0) {
      vec = false;
    }
  }
#pragma unroll
  for (int t = 0; t < NT; ++t) {
    if (t < nt_valid && (reinterpret_cast<uintptr_t>(x[t].f) % 16) != 0) vec = false;
  }
  const int64_t n_chunks = (cols + 511) / 512;
  for (int64_t c = k0; c < n_chunks; c += kstep) {
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t i = c * 512 + 128 * j + 4 * lane;
      if (i >= cols) break;
      const bool full = vec && i + 4 <= cols;
      float w[R][4];
#pragma unroll
      for (int r = 0; r < R; ++r) {
        if (rows[r] == nullptr) continue;
        if (full) {
          load_float4_weights<T>(rows[r], i, w[r]);
        } else {
#pragma unroll
          for (int k = 0; k < 4; ++k) {
            w[r][k] = i + k < cols ? load_float_elem<T>(rows[r], i + k) : 0.0f;
          }
        }
      }
#pragma unroll
      for (int t = 0; t < NT; ++t) {
        if (t >= nt_valid) break;
        float xv[4];
        if (full) {
          const float4 v = __ldg(reinterpret_cast<const float4*>(x[t].f + i));
          xv[0] = v.x;
          xv[1] = v.y;
          xv[2] = v.z;
          xv[3] = v.w;
        } else {
#pragma unroll
          for (int k = 0; k < 4; ++k) xv[k] = i + k < cols ? __ldg(x[t].f + i + k) : 0.0f;
        }
#pragma unroll
        for (int r = 0; r < R; ++r) {
          if (rows[r] == nullptr) continue;
#pragma unroll
          for (int k = 0; k < 4; ++k) acc[r][t] += w[r][k] * xv[k];
        }
      }
    }
  }
}

// Dispatches to the block-format or float-format warp loop.
template <DType T, int NT, int R>
__device__ inline void gemv_warp(const uint8_t* const (&rows)[R], int64_t cols, int64_t k0,
                                 int64_t kstep, int nt_valid, const ActRow (&x)[NT], uint8_t* buf,
                                 float (&acc)[R][NT]) {
  if constexpr (kFloatFormat<T>) {
    gemv_warp_floats<T, NT, R>(rows, cols, k0, kstep, nt_valid, x, acc);
  } else {
    gemv_warp_blocks<T, NT, R>(rows, cols, k0, kstep, nt_valid, x, buf, acc);
  }
}

// Sums each acc[r][t] over the warp's lanes (xor butterfly: same order every run) and stores it
// in red[(warp * R + r) * NT + t] from lane 0.
template <int R, int NT>
__device__ inline void warp_sums_to_shared(const float (&acc)[R][NT], float* red, int warp,
                                           int lane) {
#pragma unroll
  for (int r = 0; r < R; ++r) {
#pragma unroll
    for (int t = 0; t < NT; ++t) {
      float v = acc[r][t];
#pragma unroll
      for (int off = 16; off > 0; off /= 2) v += __shfl_xor_sync(0xffffffffu, v, off);
      if (lane == 0) red[(warp * R + r) * NT + t] = v;
    }
  }
}

// The full dot product of row r of row group rg with token t, summing the split_k warps' partial
// sums in warp order (deterministic).
template <int R, int NT>
__device__ inline float split_sum(const float* red, int rg, int r, int t, int split_k) {
  float s = 0.0f;
  for (int k = 0; k < split_k; ++k) s += red[((rg * split_k + k) * R + r) * NT + t];
  return s;
}

}  // namespace moerun::cuda
