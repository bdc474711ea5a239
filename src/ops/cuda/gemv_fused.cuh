// Building blocks of the fused decode GEMV and the decode expert kernels (block formats): the
// activations are quantised to int8 in shared memory by the block itself, and each warp streams
// its rows chunk by chunk with the next chunk's 16-byte loads in flight while it multiplies the
// current one (software pipelining through registers, then a warp-private shared staging area).
#pragma once

#include <cstdint>

#include "ops/cuda/activation_q8.cuh"
#include "ops/cuda/gemv_core.cuh"

namespace moerun::cuda {

// 16-byte load slots per lane that cover one staged chunk of format T.
template <DType T>
inline constexpr int kChunkSlots = (StageBytes<T>::value / 16 + 31) / 32;

// Loads bytes [0, n) of `src` (null: nothing) into slots: lane's slot k holds bytes
// [16 (lane + 32 k), + 16). `align` (16, 8, 4 or 2) divides the source address; the last partial
// slot is read 2 bytes at a time and never past n (n even). Slots past n are left as they are.
template <int kSlots>
__device__ inline void load_slots(const uint8_t* src, int n, int align, int lane,
                                  int4 (&v)[kSlots]) {
  if (src == nullptr) return;
#pragma unroll
  for (int k = 0; k < kSlots; ++k) {
    const int off = 16 * (lane + 32 * k);
    if (off + 16 <= n) {
      if (align >= 16) {
        v[k] = __ldg(reinterpret_cast<const int4*>(src + off));
      } else if (align >= 8) {
        const uint2 a = __ldg(reinterpret_cast<const uint2*>(src + off));
        const uint2 b = __ldg(reinterpret_cast<const uint2*>(src + off + 8));
        v[k] = make_int4(static_cast<int>(a.x), static_cast<int>(a.y), static_cast<int>(b.x),
                         static_cast<int>(b.y));
      } else if (align >= 4) {
        const auto* p = reinterpret_cast<const int*>(src + off);
        v[k] = make_int4(__ldg(p), __ldg(p + 1), __ldg(p + 2), __ldg(p + 3));
      } else {
        const auto* p = reinterpret_cast<const unsigned short*>(src + off);
        int w[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          w[i] = static_cast<int>(static_cast<uint32_t>(__ldg(p + 2 * i)) |
                                  (static_cast<uint32_t>(__ldg(p + 2 * i + 1)) << 16));
        }
        v[k] = make_int4(w[0], w[1], w[2], w[3]);
      }
    } else if (off < n) {
      const auto* p = reinterpret_cast<const unsigned short*>(src + off);
      uint32_t w[4] = {0, 0, 0, 0};
      for (int i = 0; off + 2 * i < n; ++i) {
        w[i / 2] |= static_cast<uint32_t>(__ldg(p + i)) << (16 * (i % 2));
      }
      v[k] = make_int4(static_cast<int>(w[0]), static_cast<int>(w[1]), static_cast<int>(w[2]),
                       static_cast<int>(w[3]));
    }
  }
}

// Stores the slots of a chunk to the warp's staging row `dst` (16-byte aligned shared memory of
// kStride bytes); slots that start at or past n are not stored.
template <int kSlots, int kStride>
__device__ inline void store_slots(uint8_t* dst, int n, int lane, const int4 (&v)[kSlots]) {
#pragma unroll
  for (int k = 0; k < kSlots; ++k) {
    const int off = 16 * (lane + 32 * k);
    if (off < n && off + 16 <= kStride) *reinterpret_cast<int4*>(dst + off) = v[k];
  }
}

// Quantises x [n_rows, cols] (global f32, cols a multiple of 32) into q [n_rows * cols] int8 and
// ds [n_rows * cols / 32] scale pairs in shared memory with all n_warps warps of the block (loads
// issued eight groups at a time). The caller synchronises the block afterwards.
__device__ inline void quantize_rows_to_shared(const float* x, int64_t n_rows, int64_t cols,
                                               int8_t* q, float2* ds, int warp, int n_warps,
                                               int lane) {
  constexpr int kUnroll = 8;
  const int64_t groups = n_rows * cols / 32;
  for (int64_t g0 = warp; g0 < groups; g0 += int64_t{kUnroll} * n_warps) {
    float v[kUnroll];
#pragma unroll
    for (int i = 0; i < kUnroll; ++i) {
      const int64_t g = g0 + int64_t{i} * n_warps;
      v[i] = g < groups ? __ldg(x + g * 32 + lane) : 0.0f;
    }
#pragma unroll
    for (int i = 0; i < kUnroll; ++i) {
      const int64_t g = g0 + int64_t{i} * n_warps;
      if (g < groups) quantize_group32_q8(v[i], lane, q + g * 32, ds + g);
    }
  }
}

// acc[t] += the dot product of the decoded group w with token t's int8 activations at group gi
// (xq [NT, cols] and xd [NT, cols / 32] in shared memory); tokens t >= nt are skipped.
template <int NT>
__device__ inline void dot_group_tokens(const Group32& w, const int8_t* xq, const float2* xd,
                                        int64_t cols, int64_t gi, int nt, float (&acc)[NT]) {
#pragma unroll
  for (int t = 0; t < NT; ++t) {
    if (t >= nt) break;
    const auto* p = reinterpret_cast<const int4*>(xq + t * cols + gi * 32);
    const int4 a = p[0];
    const int4 b = p[1];
    const float2 d = xd[t * (cols / 32) + gi];
    int lo = __dp4a(w.q[0], a.x, 0);
    lo = __dp4a(w.q[1], a.y, lo);
    lo = __dp4a(w.q[2], a.z, lo);
    lo = __dp4a(w.q[3], a.w, lo);
    int hi = __dp4a(w.q[4], b.x, 0);
    hi = __dp4a(w.q[5], b.y, hi);
    hi = __dp4a(w.q[6], b.z, hi);
    hi = __dp4a(w.q[7], b.w, hi);
    const float dot = w.s_lo * static_cast<float>(lo) + w.s_hi * static_cast<float>(hi);
    acc[t] += d.x * dot - w.m * d.y;
  }
}

// Sums v over the `seg` consecutive lanes of each segment (seg a power of two <= 32; xor
// butterfly, the same order every run); every lane of the segment gets the sum.
__device__ inline float segment_sum(float v, int seg) {
  for (int off = seg / 2; off > 0; off /= 2) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

// The largest of 16, 8, 4 and 2 that divides the address p.
__device__ inline int address_align(const void* p) {
  const auto bits = reinterpret_cast<uintptr_t>(p);
  return (bits & 15) == 0 ? 16 : (bits & 7) == 0 ? 8 : (bits & 3) == 0 ? 4 : 2;
}

// Runs units u = first, first + step, ... < n_units of a warp, R at a time, each one virtual row
// (S rows of `cols` weights when S > 1, else one row) through its chunks of 1024 columns with the
// next step's loads in flight while the current one is multiplied. source(u, c, src, n, valid)
// gives chunk c of unit u (src null: the unit adds nothing; valid: rows of the virtual row that
// exist), act(u, xq, xd) its int8 activation row and scale pairs (shared or global memory), and
// finish(u, row_in, sum, writer) receives each row's sum on every lane of the row's segment
// (writer: the one lane that should store it). stage: this warp's R * StageBytes<T>::value bytes.
// Sources need only the 2-byte alignment of the block formats; loads are as wide as each
// source's address allows.
template <DType T, int R, class Source, class Act, class Finish>
__device__ inline void run_units(int64_t first, int64_t step, int64_t n_units, int64_t cols, int S,
                                 uint8_t* stage, int lane, Source source, Act act, Finish finish) {
  constexpr int kStride = StageBytes<T>::value;
  constexpr int kSlots = kChunkSlots<T>;
  constexpr int kGroupsPerBlock = BlockFormat<T>::kElems / 32;
  const int seg = 32 / S;
  const int64_t n_chunks = S > 1 ? 1 : (cols + 1023) / 1024;
  const int64_t n_groups = cols / 32;
  const int64_t stride = step * R;
  int64_t u0 = first * R;  // first unit of the current step
  int64_t c = 0;
  const uint8_t* src[R] = {};
  int n[R] = {};
  int valid[R] = {};
  int4 v[R][kSlots] = {};
  auto issue = [&](int64_t base, int64_t chunk) {
#pragma unroll
    for (int r = 0; r < R; ++r) {
      src[r] = nullptr;
      n[r] = 0;
      valid[r] = 0;
      if (base + r < n_units) source(base + r, chunk, src[r], n[r], valid[r]);
      load_slots<kSlots>(src[r], n[r], address_align(src[r]), lane, v[r]);
    }
  };
  if (u0 < n_units) issue(u0, 0);
  float acc[R] = {};
  while (u0 < n_units) {
    const int64_t cu0 = u0;
    const int64_t cc = c;
    bool ok[R];
    int cvalid[R];
#pragma unroll
    for (int r = 0; r < R; ++r) {
      ok[r] = src[r] != nullptr;
      cvalid[r] = valid[r];
      store_slots<kSlots, kStride>(stage + r * kStride, n[r], lane, v[r]);
    }
    __syncwarp();
    if (++c == n_chunks) {
      c = 0;
      u0 += stride;
    }
    if (u0 < n_units) issue(u0, c);
    const int row_in = lane / seg;
    const int64_t gi = S > 1 ? lane % seg : cc * 32 + lane;
    if (gi < n_groups) {
#pragma unroll
      for (int r = 0; r < R; ++r) {
        if (!ok[r] || row_in >= cvalid[r]) continue;
        Group32 g;
        decode_group32<T>(stage + r * kStride + (lane / kGroupsPerBlock) * BlockFormat<T>::kBytes,
                          lane % kGroupsPerBlock, &g);
        const int8_t* xq = nullptr;
        const float2* xd = nullptr;
        act(cu0 + r, xq, xd);
        float a[1] = {acc[r]};
        dot_group_tokens<1>(g, xq, xd, cols, gi, 1, a);
        acc[r] = a[0];
      }
    }
    if (cc == n_chunks - 1) {
#pragma unroll
      for (int r = 0; r < R; ++r) {
        const float s = segment_sum(acc[r], seg);
        acc[r] = 0.0f;
        if (cu0 + r < n_units) finish(cu0 + r, row_in, s, lane % seg == 0 && row_in < cvalid[r]);
      }
    }
    __syncwarp();
  }
}

}  // namespace moerun::cuda
