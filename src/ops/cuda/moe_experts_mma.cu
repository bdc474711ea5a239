// Tensor-core expert kernels. A block takes one group (up to 64 assignments of one expert) and
// 128 weight rows (gate/up: 64 gate rows and the same 64 up rows; down: 128 rows). It walks the
// columns 256 at a time: the 128 x 256 weights are decoded once into int8 in shared memory with a
// scale (and min) per row and 32 columns (block_decode's decode_group32), then each warp takes two
// 16-row tiles against the group's int8 activations (read from global memory, shared through L1)
// with mma.sync m16n8k32 (Q6_K: two m16n8k16, one per 16-column scale), and scales each 32-column
// int32 product into its f32 sums exactly as the dp4a kernels do:
//   acc += dx * (s * dot) - m * (dx * sum q).
// Every output is written by one thread after a fixed summation order: deterministic.
#include "ops/cuda/moe_experts_mma.h"

#include "core/error.h"
#include "ops/cuda/block_decode.cuh"
#include "ops/cuda/cuda_check.cuh"

namespace moerun {
namespace {

using cuda::BlockFormat;
using cuda::Group32;

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kTileRows = 128;                     // weight rows decoded per block
constexpr int kStageGroups = 8;                    // groups of 32 columns per stage
constexpr int kRowBytes = kStageGroups * 32 + 16;  // padded: a fragment's 8 rows hit distinct banks
constexpr int kTokens = kMmaGroupTokens;
constexpr int kNTiles = kTokens / 8;  // n8 tiles of a full group
static_assert(kTokens % 8 == 0 && kTokens <= kThreads, "one thread per token fills the tables");
static_assert((kTileRows * kStageGroups) % (4 * kThreads) == 0, "decode loop takes 4 per thread");

// Whether expert e has all three matrices on the device.
__device__ inline bool resident(const DeviceExpertTable& table, int64_t e) {
  return table.gate[e] != nullptr && table.up[e] != nullptr && table.down[e] != nullptr;
}

// Four bytes of shared or global memory at a 4-byte aligned address.
__device__ inline uint32_t ld_b32(const int8_t* p) {
  return *reinterpret_cast<const uint32_t*>(p);
}

// d[0..3] = A (16 x 32, row) * B (32 x 8, col) in int32 (PTX fragment layouts, groupID = lane / 4,
// tig = lane % 4): a0 = A[g][4 tig..], a1 = A[g + 8][4 tig..], a2 = A[g][16 + 4 tig..],
// a3 = A[g + 8][16 + 4 tig..]; b0 = B[4 tig..][g], b1 = B[16 + 4 tig..][g]; d = C[g][2 tig],
// C[g][2 tig + 1], C[g + 8][2 tig], C[g + 8][2 tig + 1].
__device__ inline void mma_k32(int (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%10,%10,%10,%10};\n"
      : "=r"(d[0]), "=r"(d[1]), "=r"(d[2]), "=r"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1), "r"(0));
}

// d[0..3] = A (16 x 16) * B (16 x 8) in int32: the first (or second) half of mma_k32's layout,
// a0 = A[g][4 tig..], a1 = A[g + 8][4 tig..], b0 = B[4 tig..][g]; d as in mma_k32.
__device__ inline void mma_k16(int (&d)[4], uint32_t a0, uint32_t a1, uint32_t b0) {
  asm("mma.sync.aligned.m16n8k16.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5}, {%6}, "
      "{%7,%7,%7,%7};\n"
      : "=r"(d[0]), "=r"(d[1]), "=r"(d[2]), "=r"(d[3])
      : "r"(a0), "r"(a1), "r"(b0), "r"(0));
}

// Grid (group bound, row tiles). See the file comment.
template <DType T, bool kGateUp>
__global__ void __launch_bounds__(kThreads, 3)
    expert_mma_kernel(const __grid_constant__ MmaExpertPass p) {
  constexpr bool kSplit = T == DType::Q6_K;                    // two scales per 32 columns
  constexpr bool kMin = T == DType::Q4_K || T == DType::Q5_K;  // a min term per 32 columns
  constexpr int kGpb = BlockFormat<T>::kElems / 32;            // groups of 32 per block
  constexpr int kBlockBytes = BlockFormat<T>::kBytes;
  constexpr int kOutRows = kGateUp ? kTileRows / 2 : kTileRows;  // output rows per block
  __shared__ __align__(16) int8_t wq[kTileRows * kRowBytes];     // [128 rows, 256 (+16)] int8
  __shared__ float ws_lo[kTileRows * kStageGroups];              // [128, 8] scale (weights 0..15)
  __shared__ float ws_hi[kTileRows * kStageGroups];              // [128, 8] scale (16..31)
  __shared__ float ws_m[kTileRows * kStageGroups];               // [128, 8] min
  __shared__ int src_row[kTokens];                               // [64] input row of each slot
  __shared__ int assign[kTokens];                                // [64] assignment of each slot

  if (static_cast<int>(blockIdx.x) >= *p.n_groups) return;  // uniform over the block
  const int4 gr = p.groups[blockIdx.x];
  const int e = gr.x;
  if (!resident(p.table, e)) return;  // uniform: computed elsewhere (hybrid mode)
  const int start = gr.y;
  const int cnt = gr.z;  // 1 .. kTokens
  const int tid = static_cast<int>(threadIdx.x);
  const int warp = tid / 32;
  const int lane = tid % 32;
  const int gq = lane / 4;  // groupID
  const int tq = lane % 4;  // threadID_in_group
  const int64_t r0 = static_cast<int64_t>(blockIdx.y) * kOutRows;
  const auto* base0 = static_cast<const uint8_t*>(p.w0[e]);
  const auto* base1 = kGateUp ? static_cast<const uint8_t*>(p.w1[e]) : base0;
  if (tid < kTokens) {
    // Slots past the group repeat its last assignment: valid loads, results never stored.
    const int a = p.perm[start + min(tid, cnt - 1)];
    assign[tid] = a;
    src_row[tid] = p.per_assignment ? a : static_cast<int>(a / p.top_k);
  }
  const int64_t cols = p.cols;
  const int64_t n_groups = cols / 32;
  const int n_tiles = (cnt + 7) / 8;  // n8 tiles holding the group's assignments

  // acc[j][nt][i]: tile j of this warp (rows tile_row(j) + gq + 8 * (i / 2)), tokens
  // 8 nt + 2 tq + i % 2.
  float acc[2][kNTiles][4] = {};
  // First shared row of tile j of this warp: gate/up: the gate tile and its up tile.
  auto tile_row = [&](int j) { return kGateUp ? 16 * warp + kOutRows * j : 32 * warp + 16 * j; };

  for (int64_t g0 = 0; g0 < n_groups; g0 += kStageGroups) {
    const int ng = static_cast<int>(n_groups - g0 < kStageGroups ? n_groups - g0 : kStageGroups);
    // Decode 128 rows x ng groups; rows past the matrix and groups past the row become zeros.
    for (int it0 = 0; it0 < kTileRows * kStageGroups; it0 += 4 * kThreads) {
      Group32 w[4];
      bool ok[4];
#pragma unroll
      for (int u = 0; u < 4; ++u) {
        const int it = it0 + u * kThreads + tid;
        const int i = it / kStageGroups;  // shared row
        const int k = it % kStageGroups;  // group within the stage
        const int64_t row = r0 + (kGateUp ? i % kOutRows : i);
        ok[u] = k < ng && row < p.rows;
        if (ok[u]) {
          const uint8_t* rp = (kGateUp && i >= kOutRows ? base1 : base0) + row * p.stride;
          const int64_t g = g0 + k;
          cuda::decode_group32<T>(rp + (g / kGpb) * kBlockBytes, static_cast<int>(g % kGpb), &w[u]);
        }
      }
#pragma unroll
      for (int u = 0; u < 4; ++u) {
        const int it = it0 + u * kThreads + tid;
        const int i = it / kStageGroups;
        const int k = it % kStageGroups;
        auto* dst = reinterpret_cast<int4*>(wq + i * kRowBytes + k * 32);
        if (ok[u]) {
          dst[0] = make_int4(w[u].q[0], w[u].q[1], w[u].q[2], w[u].q[3]);
          dst[1] = make_int4(w[u].q[4], w[u].q[5], w[u].q[6], w[u].q[7]);
          ws_lo[i * kStageGroups + k] = w[u].s_lo;
          ws_hi[i * kStageGroups + k] = w[u].s_hi;
          ws_m[i * kStageGroups + k] = w[u].m;
        } else {
          dst[0] = make_int4(0, 0, 0, 0);
          dst[1] = make_int4(0, 0, 0, 0);
          ws_lo[i * kStageGroups + k] = 0.0f;
          ws_hi[i * kStageGroups + k] = 0.0f;
          ws_m[i * kStageGroups + k] = 0.0f;
        }
      }
    }
    __syncthreads();  // the stage's weights (and, first time, the slot tables) are in place

    for (int k = 0; k < ng; ++k) {
      uint32_t a[2][4];
      float s_lo[2][2], s_hi[2][2], mn[2][2];  // [tile][row gq, row gq + 8]
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        const int rr = tile_row(j) + gq;
        const int8_t* src = wq + rr * kRowBytes + k * 32 + 4 * tq;
        a[j][0] = ld_b32(src);
        a[j][1] = ld_b32(src + 8 * kRowBytes);
        a[j][2] = ld_b32(src + 16);
        a[j][3] = ld_b32(src + 8 * kRowBytes + 16);
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int si = (rr + 8 * h) * kStageGroups + k;
          s_lo[j][h] = ws_lo[si];
          s_hi[j][h] = ws_hi[si];
          mn[j][h] = ws_m[si];
        }
      }
      const int64_t g = g0 + k;
#pragma unroll
      for (int nt = 0; nt < kNTiles; ++nt) {
        if (nt >= n_tiles) break;  // uniform over the warp
        const int8_t* xb =
            p.xq + static_cast<int64_t>(src_row[8 * nt + gq]) * cols + g * 32 + 4 * tq;
        const uint32_t b0 = __ldg(reinterpret_cast<const unsigned int*>(xb));
        const uint32_t b1 = __ldg(reinterpret_cast<const unsigned int*>(xb + 16));
        float2 xd[2];
#pragma unroll
        for (int c = 0; c < 2; ++c) {
          xd[c] = __ldg(p.xd + static_cast<int64_t>(src_row[8 * nt + 2 * tq + c]) * n_groups + g);
        }
#pragma unroll
        for (int j = 0; j < 2; ++j) {
          if constexpr (kSplit) {
            int lo[4], hi[4];
            mma_k16(lo, a[j][0], a[j][1], b0);
            mma_k16(hi, a[j][2], a[j][3], b1);
#pragma unroll
            for (int i = 0; i < 4; ++i) {
              const float dot = s_lo[j][i / 2] * static_cast<float>(lo[i]) +
                                s_hi[j][i / 2] * static_cast<float>(hi[i]);
              acc[j][nt][i] += xd[i % 2].x * dot;
            }
          } else {
            int d[4];
            mma_k32(d, a[j], b0, b1);
#pragma unroll
            for (int i = 0; i < 4; ++i) {
              const float dot = s_lo[j][i / 2] * static_cast<float>(d[i]);
              if constexpr (kMin) {
                acc[j][nt][i] += xd[i % 2].x * dot - mn[j][i / 2] * xd[i % 2].y;
              } else {
                acc[j][nt][i] += xd[i % 2].x * dot;
              }
            }
          }
        }
      }
    }
    __syncthreads();  // every warp is done with the stage before it is overwritten
  }

  // Each thread stores its own fragment elements.
#pragma unroll
  for (int nt = 0; nt < kNTiles; ++nt) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int n = 8 * nt + 2 * tq + i % 2;
      if (n >= cnt) continue;
      const int64_t a = assign[n];
      if constexpr (kGateUp) {
        const int64_t row = r0 + 16 * warp + gq + 8 * (i / 2);
        if (row >= p.rows) continue;
        const float s0 = acc[0][nt][i];
        p.out[a * p.rows + row] = s0 / (1.0f + expf(-s0)) * acc[1][nt][i];
      } else {
#pragma unroll
        for (int j = 0; j < 2; ++j) {
          const int64_t row = r0 + tile_row(j) + gq + 8 * (i / 2);
          if (row < p.rows) p.out[a * p.rows + row] = acc[j][nt][i];
        }
      }
    }
  }
}

template <DType T>
void launch_typed(bool gate_up, const MmaExpertPass& p, int64_t group_bound, cudaStream_t stream) {
  const int64_t out_rows = gate_up ? kTileRows / 2 : kTileRows;
  const dim3 grid(static_cast<unsigned>(group_bound),
                  static_cast<unsigned>((p.rows + out_rows - 1) / out_rows));
  if (gate_up) {
    expert_mma_kernel<T, true><<<grid, kThreads, 0, stream>>>(p);
  } else {
    expert_mma_kernel<T, false><<<grid, kThreads, 0, stream>>>(p);
  }
}

}  // namespace

bool mma_experts_support(DType type) {
  return type == DType::Q8_0 || type == DType::Q4_0 || type == DType::Q4_K || type == DType::Q5_K ||
         type == DType::Q6_K;
}

void launch_expert_mma(DType type, bool gate_up, const MmaExpertPass& p, int64_t group_bound,
                       cudaStream_t stream) {
  MOERUN_CHECK(p.cols % 32 == 0 && p.rows > 0 && group_bound > 0);
  if (p.rows > int64_t{65535} * kTileRows / 2)
    fail("launch_expert_mma: {} rows is too many", p.rows);
  switch (type) {
    case DType::Q8_0:
      return launch_typed<DType::Q8_0>(gate_up, p, group_bound, stream);
    case DType::Q4_0:
      return launch_typed<DType::Q4_0>(gate_up, p, group_bound, stream);
    case DType::Q4_K:
      return launch_typed<DType::Q4_K>(gate_up, p, group_bound, stream);
    case DType::Q5_K:
      return launch_typed<DType::Q5_K>(gate_up, p, group_bound, stream);
    case DType::Q6_K:
      return launch_typed<DType::Q6_K>(gate_up, p, group_bound, stream);
    default:
      MOERUN_CHECK(mma_experts_support(type));
  }
}

}  // namespace moerun
