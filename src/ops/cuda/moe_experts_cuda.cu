// moe_experts_cuda. Few assignments (decode): no grouping; a gate/up kernel per (assignment, 32
// rows) that quantises x and the SiLU products itself, and a down kernel fused with each token's
// weighted sum over its choices in order. Otherwise: assignments grouped by expert on the device
// (counting sort), gate and up of each group in one pass over the expert's rows (SiLU product
// fused), the SiLU products quantised, down of each group, then each token's weighted sum over its
// choices in order. The grouped path uses the int8 tensor-core kernels (moe_experts_mma.cu, groups
// of up to 64) when both weight types are block formats, else the dp4a/f32 kernels (groups of up
// to 8).
#include "ops/cuda/moe_experts_cuda.h"

#include "core/error.h"
#include "ops/cuda/activation_q8.h"
#include "ops/cuda/cuda_check.cuh"
#include "ops/cuda/device_buffer.h"
#include "ops/cuda/gemv_core.cuh"
#include "ops/cuda/gemv_fused.cuh"
#include "ops/cuda/moe_experts_mma.h"

namespace moerun {
namespace {

using cuda::ActRow;
using cuda_plan::kGemvWarps;

// Most experts of one layer (two int tables of this size live in shared memory while grouping).
constexpr int64_t kMaxExperts = 6144;
constexpr int kGroupThreads = 1024;

// Whether expert e has all three matrices on the device.
__device__ inline bool expert_resident(const DeviceExpertTable& table, int64_t e) {
  return table.gate[e] != nullptr && table.up[e] != nullptr && table.down[e] != nullptr;
}

// One block: counts the assignments of each expert, lays them out by ascending expert (each
// expert's assignments in ascending order), and cuts each expert's run into groups of at most
// `group`: groups[i] = (expert, first index into perm, count, 0); *n_groups = how many. Ids
// outside [0, n_experts) are left out.
__global__ void __launch_bounds__(kGroupThreads)
    group_by_expert(const int32_t* ids, int n_assign, int n_experts, int group, int32_t* perm,
                    int4* groups, int32_t* n_groups) {
  extern __shared__ int tables[];
  int* counts = tables;              // [n_experts]
  int* cursor = tables + n_experts;  // [n_experts] next free slot, then end of run
  __shared__ int warp_c[32];
  __shared__ int warp_g[32];
  const int tid = static_cast<int>(threadIdx.x);
  const int nt = static_cast<int>(blockDim.x);
  const int lane = tid % 32;
  const int warp = tid / 32;
  const int n_warps = nt / 32;
  for (int e = tid; e < n_experts; e += nt) counts[e] = 0;
  __syncthreads();
  for (int i = tid; i < n_assign; i += nt) {
    const int e = ids[i];
    if (e >= 0 && e < n_experts) atomicAdd(&counts[e], 1);
  }
  __syncthreads();
  // Thread tid owns experts [e0, e1); exclusive scan of (assignments, groups) over threads.
  const int per = (n_experts + nt - 1) / nt;
  const int e0 = min(n_experts, tid * per);
  const int e1 = min(n_experts, e0 + per);
  int lc = 0;
  int lg = 0;
  for (int e = e0; e < e1; ++e) {
    lc += counts[e];
    lg += (counts[e] + group - 1) / group;
  }
  int ic = lc;
  int ig = lg;
  for (int off = 1; off < 32; off *= 2) {
    const int oc = __shfl_up_sync(0xffffffffu, ic, off);
    const int og = __shfl_up_sync(0xffffffffu, ig, off);
    if (lane >= off) {
      ic += oc;
      ig += og;
    }
  }
  if (lane == 31) {
    warp_c[warp] = ic;
    warp_g[warp] = ig;
  }
  __syncthreads();
  if (warp == 0) {
    const int vc = lane < n_warps ? warp_c[lane] : 0;
    const int vg = lane < n_warps ? warp_g[lane] : 0;
    int sc = vc;
    int sg = vg;
    for (int off = 1; off < 32; off *= 2) {
      const int oc = __shfl_up_sync(0xffffffffu, sc, off);
      const int og = __shfl_up_sync(0xffffffffu, sg, off);
      if (lane >= off) {
        sc += oc;
        sg += og;
      }
    }
    if (lane < n_warps) {
      warp_c[lane] = sc - vc;
      warp_g[lane] = sg - vg;
    }
  }
  __syncthreads();
  int base_c = warp_c[warp] + ic - lc;
  int base_g = warp_g[warp] + ig - lg;
  for (int e = e0; e < e1; ++e) {
    const int c = counts[e];
    cursor[e] = base_c;
    for (int s = 0; s < c; s += group)
      groups[base_g++] = make_int4(e, base_c + s, min(group, c - s), 0);
    base_c += c;
  }
  if (tid == nt - 1) *n_groups = base_g;
  __syncthreads();
  for (int i = tid; i < n_assign; i += nt) {
    const int e = ids[i];
    if (e >= 0 && e < n_experts) perm[atomicAdd(&cursor[e], 1)] = i;
  }
  __syncthreads();
  // The atomics placed each run in arbitrary order: sort each run ascending (runs are short).
  for (int e = tid; e < n_experts; e += nt) {
    const int end = cursor[e];
    const int begin = end - counts[e];
    for (int i = begin + 1; i < end; ++i) {
      const int v = perm[i];
      int j = i - 1;
      while (j >= begin && perm[j] > v) {
        perm[j + 1] = perm[j];
        --j;
      }
      perm[j + 1] = v;
    }
  }
}

// One pass over the experts: gate and up (rows = ffn, cols = hidden, input per token) or down
// (rows = hidden, cols = ffn, input per assignment).
struct ExpertPass {
  const void* const* w0;  // [n_experts] gate or down matrices
  const void* const* w1;  // [n_experts] up matrices (gate/up pass only)
  DeviceExpertTable table;
  int64_t rows;
  int64_t cols;
  int64_t stride;           // bytes between rows
  const int4* groups;       // [<= n_assign] (expert, first, count, 0)
  const int32_t* n_groups;  // [1]
  const int32_t* perm;      // [n_assign] assignments by expert
  int64_t top_k;
  const float* xf;      // [n_tokens or n_assign, cols] f32
  const int8_t* xq;     // [same, cols] int8 (block formats)
  const float2* xd;     // [same, cols / 32] scale pairs (block formats)
  bool per_assignment;  // inputs indexed by assignment (down) or by token (gate/up)
  float* out;           // [n_assign, rows]: silu(gate) * up, or down
  int split_k;
};

// Grid (group bound, row blocks): block (g, b) multiplies rows of block b of group g's expert with
// the group's inputs. Gate/up: a warp's first R/2 rows are gate rows, the others the same up rows.
template <DType T, int G, int R, bool kGateUp>
__global__ void __launch_bounds__(kGemvWarps * 32) expert_rows_kernel(ExpertPass p) {
  constexpr int RR = kGateUp ? R / 2 : R;  // distinct output rows per warp
  __shared__ __align__(16) uint8_t buf[kGemvWarps][R * cuda::StageBytes<T>::value];
  __shared__ float red[kGemvWarps * R * G];
  if (static_cast<int>(blockIdx.x) >= *p.n_groups) return;  // uniform over the block
  const int4 gr = p.groups[blockIdx.x];
  const int e = gr.x;
  if (!expert_resident(p.table, e)) return;
  const int start = gr.y;
  const int cnt = gr.z;
  const int warp = static_cast<int>(threadIdx.x / 32);
  const int lane = static_cast<int>(threadIdx.x % 32);
  const int row_groups = kGemvWarps / p.split_k;
  const int rg = warp / p.split_k;
  const int64_t r0 = (static_cast<int64_t>(blockIdx.y) * row_groups + rg) * RR;
  const auto* base0 = static_cast<const uint8_t*>(p.w0[e]);
  const auto* base1 = kGateUp ? static_cast<const uint8_t*>(p.w1[e]) : nullptr;
  const uint8_t* rows[R];
#pragma unroll
  for (int r = 0; r < RR; ++r) {
    const int64_t row = r0 + r;
    rows[r] = row < p.rows ? base0 + row * p.stride : nullptr;
    if constexpr (kGateUp) rows[RR + r] = row < p.rows ? base1 + row * p.stride : nullptr;
  }
  ActRow act[G];
#pragma unroll
  for (int j = 0; j < G; ++j) {
    const int64_t a = p.perm[start + min(j, cnt - 1)];
    const int64_t src = p.per_assignment ? a : a / p.top_k;
    act[j] = ActRow{p.xf + src * p.cols, p.xq == nullptr ? nullptr : p.xq + src * p.cols,
                    p.xd == nullptr ? nullptr : p.xd + src * (p.cols / 32)};
  }
  float acc[R][G] = {};
  cuda::gemv_warp<T, G, R>(rows, p.cols, warp % p.split_k, p.split_k, cnt, act, buf[warp], acc);
  cuda::warp_sums_to_shared<R, G>(acc, red, warp, lane);
  __syncthreads();
  for (int i = static_cast<int>(threadIdx.x); i < row_groups * RR * G; i += kGemvWarps * 32) {
    const int g = i / (RR * G);
    const int r = (i / G) % RR;
    const int j = i % G;
    const int64_t row = (static_cast<int64_t>(blockIdx.y) * row_groups + g) * RR + r;
    if (j >= cnt || row >= p.rows) continue;
    const int64_t a = p.perm[start + j];
    const float s0 = cuda::split_sum<R, G>(red, g, r, j, p.split_k);
    if constexpr (kGateUp) {
      const float s1 = cuda::split_sum<R, G>(red, g, RR + r, j, p.split_k);
      p.out[a * p.rows + row] = s0 / (1.0f + expf(-s0)) * s1;
    } else {
      p.out[a * p.rows + row] = s0;
    }
  }
}

// out[t, h] = sum over k in order of weights[t, k] * down_rows[t * top_k + k, h], resident
// experts only; one thread per output.
__global__ void combine_choices(const float* down_rows, const int32_t* ids, const float* weights,
                                int64_t n_tokens, int64_t top_k, int64_t hidden, int64_t n_experts,
                                DeviceExpertTable table, float* out) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n_tokens * hidden) return;
  const int64_t t = i / hidden;
  const int64_t h = i % hidden;
  float o = 0.0f;
  for (int64_t k = 0; k < top_k; ++k) {
    const int64_t a = t * top_k + k;
    const int32_t e = ids[a];
    if (e >= 0 && e < n_experts && expert_resident(table, e)) {
      o += weights[a] * down_rows[a * hidden + h];
    }
  }
  out[i] = o;
}

// ---- Decode path (few assignments): no grouping pass; x and the SiLU products are quantised
// inside the kernels; down is fused with each token's weighted sum over its choices.

// Warps per block of the decode expert kernels.
constexpr int kDecodeWarps = 8;
// Gate/up rows (each with its up row) per warp step of the decode gate/up kernel.
constexpr int kDecodeGateUpRows = 4;
// Virtual rows of down per block of the decode down kernel.
constexpr int kDecodeDownVrows = 2;
// Most assignments (tokens x top_k) the decode path takes.
constexpr int64_t kMaxDecodeAssignments = 64;

// Arguments of the decode expert kernels.
struct DecodeParams {
  DeviceExpertTable table;
  const int32_t* ids;    // [n_assign]
  const float* weights;  // [n_assign]
  const float* x;        // [n_tokens, hidden] f32
  int64_t n_experts;
  int64_t top_k;
  int64_t hidden;
  int64_t ffn;
  int64_t gate_row_bytes;  // packed bytes of a gate/up row (hidden weights)
  int64_t down_row_bytes;  // packed bytes of a down row (ffn weights)
  int gate_seg;            // rows per virtual row of gate/up and of down
  int down_seg;
  int8_t* act_q;  // [n_assign, ffn] int8 silu(gate) * up
  float2* act_d;  // [n_assign, ffn / 32] their scale pairs
  float* out;     // [n_tokens, hidden]
};

// The expert of assignment a when it is in range and resident, else -1.
__device__ inline int decode_expert(const DecodeParams& p, int64_t a) {
  const int e = p.ids[a];
  if (e < 0 || e >= p.n_experts || !expert_resident(p.table, e)) return -1;
  return e;
}

// Grid (assignments, ffn / 32): block (a, b) computes gate and up rows [32 b, 32 b + 32) of
// assignment a's expert with its token's x (quantised by the block), then one warp takes
// silu(gate) * up of the 32 rows (one group) and stores it quantised to int8.
template <DType T>
__global__ void __launch_bounds__(kDecodeWarps * 32)
    decode_gate_up_kernel(const __grid_constant__ DecodeParams p) {
  constexpr int kStride = cuda::StageBytes<T>::value;
  constexpr int kChunkBytes = cuda::StageBytes<T>::bytes;
  __shared__ __align__(16) uint8_t stage[kDecodeWarps][kDecodeGateUpRows * kStride];
  __shared__ float red[2][32];                   // gate, up sums of the block's rows
  extern __shared__ __align__(16) uint8_t xs[];  // [hidden] int8, then [hidden / 32] float2
  const int64_t a = blockIdx.x;
  const int e = decode_expert(p, a);
  if (e < 0) return;  // uniform over the block
  const int warp = static_cast<int>(threadIdx.x / 32);
  const int lane = static_cast<int>(threadIdx.x % 32);
  const int64_t hidden = p.hidden;
  auto* xq = reinterpret_cast<int8_t*>(xs);
  auto* xd = reinterpret_cast<float2*>(xs + hidden);
  const int64_t r0 = static_cast<int64_t>(blockIdx.y) * 32;
  const int S = p.gate_seg;
  const int64_t vrows = 32 / S;  // virtual rows per matrix
  const auto* gate = static_cast<const uint8_t*>(p.table.gate[e]);
  const auto* up = static_cast<const uint8_t*>(p.table.up[e]);
  const int64_t rb = p.gate_row_bytes;
  cuda::quantize_rows_to_shared(p.x + (a / p.top_k) * hidden, 1, hidden, xq, xd, warp, kDecodeWarps,
                                lane);
  __syncthreads();
  // Units: gate virtual rows 0 .. vrows - 1, then the up ones.
  auto source = [&](int64_t u, int64_t c, const uint8_t*& src, int& n, int& valid) {
    const uint8_t* base = u < vrows ? gate : up;
    const int64_t first = r0 + (u % vrows) * S;
    if (S > 1) {
      src = base + first * rb;
      n = static_cast<int>(S * rb);
      valid = S;
    } else {
      const int64_t left = rb - c * kChunkBytes;
      src = base + first * rb + c * kChunkBytes;
      n = static_cast<int>(left < kChunkBytes ? left : kChunkBytes);
      valid = 1;
    }
  };
  auto act = [&](int64_t, const int8_t*& q, const float2*& d) {
    q = xq;
    d = xd;
  };
  auto finish = [&](int64_t u, int row_in, float sum, bool writer) {
    if (writer) red[u < vrows ? 0 : 1][(u % vrows) * S + row_in] = sum;
  };
  cuda::run_units<T, kDecodeGateUpRows>(warp, kDecodeWarps, 2 * vrows, hidden, S, stage[warp], lane,
                                        source, act, finish);
  __syncthreads();
  if (warp == 0) {
    const float g = red[0][lane];
    const float v = g / (1.0f + expf(-g)) * red[1][lane];
    cuda::quantize_group32_q8(v, lane, p.act_q + a * p.ffn + r0,
                              p.act_d + a * (p.ffn / 32) + r0 / 32);
  }
}

// Grid (tokens, ceil(hidden / (kDecodeDownVrows * S))): block (t, b) computes its down rows for
// each of token t's top_k choices (units (k, virtual row) spread over the warps), then adds
// weights[t, k] times each choice's row in k order (resident experts only): the same sum, in the
// same order, as the grouped path's combine.
template <DType T>
__global__ void __launch_bounds__(kDecodeWarps * 32)
    decode_down_kernel(const __grid_constant__ DecodeParams p) {
  constexpr int kStride = cuda::StageBytes<T>::value;
  constexpr int kChunkBytes = cuda::StageBytes<T>::bytes;
  __shared__ __align__(16) uint8_t stage[kDecodeWarps][kStride];
  extern __shared__ float part[];  // [top_k, rows of the block] each choice's down rows
  const int64_t t = blockIdx.x;
  const int warp = static_cast<int>(threadIdx.x / 32);
  const int lane = static_cast<int>(threadIdx.x % 32);
  const int S = p.down_seg;
  const int64_t block_rows = int64_t{kDecodeDownVrows} * S;
  const int64_t h0 = static_cast<int64_t>(blockIdx.y) * block_rows;
  const int64_t rb = p.down_row_bytes;
  const int64_t hidden = p.hidden;
  const int64_t ffn = p.ffn;
  auto source = [&](int64_t u, int64_t c, const uint8_t*& src, int& n, int& valid) {
    const int64_t k = u / kDecodeDownVrows;
    const int64_t first = h0 + (u % kDecodeDownVrows) * S;
    const int64_t left_rows = hidden - first;
    valid = first >= hidden ? 0 : static_cast<int>(left_rows < S ? left_rows : S);
    const int e = decode_expert(p, t * p.top_k + k);
    if (e < 0 || valid == 0) return;
    const auto* base = static_cast<const uint8_t*>(p.table.down[e]);
    if (S > 1) {
      src = base + first * rb;
      n = static_cast<int>(valid * rb);
    } else {
      const int64_t left = rb - c * kChunkBytes;
      src = base + first * rb + c * kChunkBytes;
      n = static_cast<int>(left < kChunkBytes ? left : kChunkBytes);
    }
  };
  auto act = [&](int64_t u, const int8_t*& q, const float2*& d) {
    const int64_t a = t * p.top_k + u / kDecodeDownVrows;
    q = p.act_q + a * ffn;
    d = p.act_d + a * (ffn / 32);
  };
  auto finish = [&](int64_t u, int row_in, float sum, bool writer) {
    if (writer)
      part[(u / kDecodeDownVrows) * block_rows + (u % kDecodeDownVrows) * S + row_in] = sum;
  };
  cuda::run_units<T, 1>(warp, kDecodeWarps, p.top_k * kDecodeDownVrows, ffn, S, stage[warp], lane,
                        source, act, finish);
  __syncthreads();
  for (int64_t i = threadIdx.x; i < block_rows; i += kDecodeWarps * 32) {
    const int64_t h = h0 + i;
    if (h >= hidden) continue;
    float o = 0.0f;
    for (int64_t k = 0; k < p.top_k; ++k) {
      const int64_t a = t * p.top_k + k;
      if (decode_expert(p, a) >= 0) o += p.weights[a] * part[k * block_rows + i];
    }
    p.out[t * hidden + h] = o;
  }
}

template <DType T>
void launch_decode_gate_up(const DecodeParams& p, int64_t n_assign, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(n_assign), static_cast<unsigned>(p.ffn / 32));
  const auto smem = static_cast<size_t>(cuda_plan::fused_x_smem(1, p.hidden));
  decode_gate_up_kernel<T><<<grid, kDecodeWarps * 32, smem, stream>>>(p);
}

template <DType T>
void launch_decode_down(const DecodeParams& p, int64_t n_tokens, cudaStream_t stream) {
  const int64_t block_rows = int64_t{kDecodeDownVrows} * p.down_seg;
  const dim3 grid(static_cast<unsigned>(n_tokens),
                  static_cast<unsigned>((p.hidden + block_rows - 1) / block_rows));
  const auto smem = static_cast<size_t>(p.top_k * block_rows) * sizeof(float);
  decode_down_kernel<T><<<grid, kDecodeWarps * 32, smem, stream>>>(p);
}

// Launches the decode gate/up kernel for block format `type`.
void decode_gate_up(DType type, const DecodeParams& p, int64_t n_assign, cudaStream_t stream) {
  switch (type) {
    case DType::Q8_0:
      return launch_decode_gate_up<DType::Q8_0>(p, n_assign, stream);
    case DType::Q4_0:
      return launch_decode_gate_up<DType::Q4_0>(p, n_assign, stream);
    case DType::Q4_K:
      return launch_decode_gate_up<DType::Q4_K>(p, n_assign, stream);
    case DType::Q5_K:
      return launch_decode_gate_up<DType::Q5_K>(p, n_assign, stream);
    case DType::Q6_K:
      return launch_decode_gate_up<DType::Q6_K>(p, n_assign, stream);
    default:
      MOERUN_CHECK(!cuda_plan::is_float_format(type));
  }
}

// Launches the decode down kernel for block format `type`.
void decode_down(DType type, const DecodeParams& p, int64_t n_tokens, cudaStream_t stream) {
  switch (type) {
    case DType::Q8_0:
      return launch_decode_down<DType::Q8_0>(p, n_tokens, stream);
    case DType::Q4_0:
      return launch_decode_down<DType::Q4_0>(p, n_tokens, stream);
    case DType::Q4_K:
      return launch_decode_down<DType::Q4_K>(p, n_tokens, stream);
    case DType::Q5_K:
      return launch_decode_down<DType::Q5_K>(p, n_tokens, stream);
    case DType::Q6_K:
      return launch_decode_down<DType::Q6_K>(p, n_tokens, stream);
    default:
      MOERUN_CHECK(!cuda_plan::is_float_format(type));
  }
}

// Whether the decode path takes this call: few assignments, block formats, and its shared
// memory (gate/up staging + quantised x; down staging + per-choice rows) within 48 KiB.
bool takes_decode_path(const ExpertShape& s, int64_t n_tokens, int64_t top_k) {
  const int64_t n_assign = n_tokens * top_k;
  if (n_assign < 1 || n_assign > kMaxDecodeAssignments || s.ffn <= 0 || s.ffn % 32 != 0) {
    return false;
  }
  if (cuda_plan::is_float_format(s.gate_type) || cuda_plan::is_float_format(s.down_type)) {
    return false;
  }
  const int64_t gate_smem =
      kDecodeWarps * kDecodeGateUpRows * cuda_plan::fused_stage_bytes(s.gate_type) + 2 * 32 * 4 +
      cuda_plan::fused_x_smem(1, s.hidden);
  const int64_t down_rows = kDecodeDownVrows * cuda_plan::fused_seg_rows(s.ffn, true);
  const int64_t down_smem =
      kDecodeWarps * cuda_plan::fused_stage_bytes(s.down_type) + top_k * down_rows * 4;
  return gate_smem <= cuda_plan::kFusedGemvSmemBytes && down_smem <= cuda_plan::kFusedGemvSmemBytes;
}

template <DType T, int G, bool kGateUp>
void launch_pass_group(const ExpertPass& p, int64_t group_bound, cudaStream_t stream) {
  constexpr bool kFloat = cuda_plan::is_float_format(T);
  constexpr int R = kGateUp ? ((G <= 2 || kFloat) ? 2 : 4) : cuda_plan::gemv_rows_per_warp(T, G);
  constexpr int RR = kGateUp ? R / 2 : R;
  const int64_t rows_per_block = (kGemvWarps / p.split_k) * RR;
  const dim3 grid(static_cast<unsigned>(group_bound),
                  static_cast<unsigned>((p.rows + rows_per_block - 1) / rows_per_block));
  expert_rows_kernel<T, G, R, kGateUp><<<grid, kGemvWarps * 32, 0, stream>>>(p);
}

template <DType T, bool kGateUp>
void launch_pass_typed(const ExpertPass& p, int group, int64_t group_bound, cudaStream_t stream) {
  switch (group) {
    case 1:
      return launch_pass_group<T, 1, kGateUp>(p, group_bound, stream);
    case 2:
      return launch_pass_group<T, 2, kGateUp>(p, group_bound, stream);
    case 4:
      return launch_pass_group<T, 4, kGateUp>(p, group_bound, stream);
    default:
      MOERUN_CHECK(group == cuda_plan::kMaxExpertGroup);
      return launch_pass_group<T, cuda_plan::kMaxExpertGroup, kGateUp>(p, group_bound, stream);
  }
}

template <bool kGateUp>
void launch_pass(DType type, const ExpertPass& p, int group, int64_t group_bound,
                 cudaStream_t stream) {
  switch (type) {
    case DType::F32:
      return launch_pass_typed<DType::F32, kGateUp>(p, group, group_bound, stream);
    case DType::F16:
      return launch_pass_typed<DType::F16, kGateUp>(p, group, group_bound, stream);
    case DType::BF16:
      return launch_pass_typed<DType::BF16, kGateUp>(p, group, group_bound, stream);
    case DType::Q8_0:
      return launch_pass_typed<DType::Q8_0, kGateUp>(p, group, group_bound, stream);
    case DType::Q4_0:
      return launch_pass_typed<DType::Q4_0, kGateUp>(p, group, group_bound, stream);
    case DType::Q4_K:
      return launch_pass_typed<DType::Q4_K, kGateUp>(p, group, group_bound, stream);
    case DType::Q5_K:
      return launch_pass_typed<DType::Q5_K, kGateUp>(p, group, group_bound, stream);
    case DType::Q6_K:
      return launch_pass_typed<DType::Q6_K, kGateUp>(p, group, group_bound, stream);
    default:
      MOERUN_CHECK(cuda_plan::gpu_matmul_supports(type));
  }
}

void check_type(DType type, int64_t cols, const char* what) {
  if (!cuda_plan::gpu_matmul_supports(type)) {
    fail("moe_experts_cuda: {} type {} is not supported on the GPU", what, dtype_name(type));
  }
  const int64_t block = dtype_info(type).block_elems;
  if (cols % block != 0 || (!cuda_plan::is_float_format(type) && cols % 32 != 0)) {
    fail("moe_experts_cuda: {} has {} columns, not a multiple of {}'s block of {}", what, cols,
         dtype_name(type), block);
  }
}

}  // namespace

struct MoeCudaWorkspace::Impl {
  DeviceBuffer xq;           // [tokens, hidden] int8
  DeviceBuffer xd;           // [tokens, hidden / 32, 2] f32
  DeviceBuffer act;          // [assignments, ffn] f32 silu(gate) * up
  DeviceBuffer act_q;        // [assignments, ffn] int8
  DeviceBuffer act_d;        // [assignments, ffn / 32, 2] f32
  DeviceBuffer down;         // [assignments, hidden] f32
  DeviceBuffer perm;         // [assignments] int32
  DeviceBuffer groups;       // [assignments] int4
  DeviceBuffer n_groups;     // [1] int32
  bool tensor_cores = true;  // the grouped path may take the tensor-core kernels

  void ensure(int64_t tokens, int64_t top_k, int64_t hidden, int64_t ffn) {
    const auto n_assign = static_cast<size_t>(tokens * top_k);
    const auto t = static_cast<size_t>(tokens);
    xq.ensure(t * static_cast<size_t>(hidden));
    xd.ensure(t * static_cast<size_t>(hidden / 32) * 2 * sizeof(float));
    act.ensure(n_assign * static_cast<size_t>(ffn) * sizeof(float));
    act_q.ensure(n_assign * static_cast<size_t>(ffn));
    act_d.ensure(n_assign * static_cast<size_t>(ffn / 32) * 2 * sizeof(float));
    down.ensure(n_assign * static_cast<size_t>(hidden) * sizeof(float));
    perm.ensure(n_assign * sizeof(int32_t));
    groups.ensure(n_assign * sizeof(int4));
    n_groups.ensure(sizeof(int32_t));
  }
};

MoeCudaWorkspace::MoeCudaWorkspace() : impl_(std::make_unique<Impl>()) {}
MoeCudaWorkspace::~MoeCudaWorkspace() = default;
MoeCudaWorkspace::MoeCudaWorkspace(MoeCudaWorkspace&&) noexcept = default;
MoeCudaWorkspace& MoeCudaWorkspace::operator=(MoeCudaWorkspace&&) noexcept = default;

void MoeCudaWorkspace::reserve(int64_t max_tokens, int64_t top_k, int64_t hidden, int64_t ffn) {
  MOERUN_CHECK(max_tokens >= 0 && top_k >= 0 && hidden >= 0 && ffn >= 0);
  impl_->ensure(max_tokens, top_k, hidden, ffn);
}

void MoeCudaWorkspace::set_tensor_cores(bool on) {
  impl_->tensor_cores = on;
}

int64_t MoeCudaWorkspace::device_bytes() const {
  const Impl& i = *impl_;
  return static_cast<int64_t>(i.xq.capacity() + i.xd.capacity() + i.act.capacity() +
                              i.act_q.capacity() + i.act_d.capacity() + i.down.capacity() +
                              i.perm.capacity() + i.groups.capacity() + i.n_groups.capacity());
}

void moe_experts_cuda(const ExpertShape& shape, const DeviceExpertTable& table, const float* x,
                      int64_t n_tokens, const int32_t* ids, const float* weights, int64_t top_k,
                      float* out, MoeCudaWorkspace& ws, cudaStream_t stream) {
  if (shape.gate_type != shape.up_type) {
    fail("moe_experts_cuda: gate ({}) and up ({}) must have the same type",
         dtype_name(shape.gate_type), dtype_name(shape.up_type));
  }
  check_type(shape.gate_type, shape.hidden, "gate/up");
  check_type(shape.down_type, shape.ffn, "down");
  if (shape.n_experts < 0 || shape.n_experts > kMaxExperts) {
    fail("moe_experts_cuda: {} experts (at most {} on the GPU)", shape.n_experts, kMaxExperts);
  }
  if (n_tokens < 0 || top_k < 0) fail("moe_experts_cuda: negative token count or top_k");
  const int64_t n_assign = n_tokens * top_k;
  if (n_assign > (int64_t{1} << 30)) fail("moe_experts_cuda: {} assignments is too many", n_assign);
  const int64_t hidden = shape.hidden;
  const int64_t ffn = shape.ffn;
  if (n_tokens == 0 || hidden == 0) return;
  MoeCudaWorkspace::Impl& w = ws.impl();
  w.ensure(n_tokens, top_k, hidden, ffn);
  if (shape.n_experts > 0 && takes_decode_path(shape, n_tokens, top_k)) {
    // Few assignments (decode): each reads its expert directly, two launches in all.
    DecodeParams p{};
    p.table = table;
    p.ids = ids;
    p.weights = weights;
    p.x = x;
    p.n_experts = shape.n_experts;
    p.top_k = top_k;
    p.hidden = hidden;
    p.ffn = ffn;
    p.gate_row_bytes = row_bytes(shape.gate_type, hidden);
    p.down_row_bytes = row_bytes(shape.down_type, ffn);
    p.gate_seg = cuda_plan::fused_seg_rows(hidden, true);
    p.down_seg = cuda_plan::fused_seg_rows(ffn, true);
    p.act_q = w.act_q.as<int8_t>();
    p.act_d = w.act_d.as<float2>();
    p.out = out;
    decode_gate_up(shape.gate_type, p, n_assign, stream);
    MOERUN_CUDA_CHECK_LAUNCH();
    decode_down(shape.down_type, p, n_tokens, stream);
    MOERUN_CUDA_CHECK_LAUNCH();
    return;
  }
  constexpr int kThreads = 256;
  // Every expert of a grouped call takes the tensor-core kernels when both types allow: an n8 tile
  // costs no more weight traffic than the dp4a kernels' group of <= 8, so there is no per-expert
  // threshold; decode-sized calls (<= 64 assignments) took the decode path above.
  const bool mma = w.tensor_cores && mma_experts_support(shape.gate_type) &&
                   mma_experts_support(shape.down_type);
  if (mma && n_assign > 0 && ffn > 0 && shape.n_experts > 0) {
    const int64_t group_bound =
        cuda_plan::expert_group_bound(n_assign, kMmaGroupTokens, shape.n_experts);
    auto* perm = w.perm.as<int32_t>();
    auto* groups = w.groups.as<int4>();
    auto* n_groups = w.n_groups.as<int32_t>();
    group_by_expert<<<1, kGroupThreads, static_cast<size_t>(2 * shape.n_experts) * sizeof(int),
                      stream>>>(ids, static_cast<int>(n_assign), static_cast<int>(shape.n_experts),
                                kMmaGroupTokens, perm, groups, n_groups);
    MOERUN_CUDA_CHECK_LAUNCH();
    quantize_activations_q8_cuda(x, n_tokens, hidden, w.xq.as<int8_t>(), w.xd.as<float>(), stream);

    MmaExpertPass p{};
    p.table = table;
    p.groups = groups;
    p.n_groups = n_groups;
    p.perm = perm;
    p.top_k = top_k;
    // Gate and up: rows ffn, cols hidden, inputs per token; out [n_assign, ffn] silu(gate) * up.
    p.w0 = table.gate;
    p.w1 = table.up;
    p.rows = ffn;
    p.cols = hidden;
    p.stride = row_bytes(shape.gate_type, hidden);
    p.xq = w.xq.as<int8_t>();
    p.xd = w.xd.as<float2>();
    p.per_assignment = false;
    p.out = w.act.as<float>();
    launch_expert_mma(shape.gate_type, true, p, group_bound, stream);
    MOERUN_CUDA_CHECK_LAUNCH();

    // Down: rows hidden, cols ffn, inputs per assignment; out [n_assign, hidden].
    quantize_activations_q8_cuda(w.act.as<float>(), n_assign, ffn, w.act_q.as<int8_t>(),
                                 w.act_d.as<float>(), stream);
    p.w0 = table.down;
    p.w1 = nullptr;
    p.rows = hidden;
    p.cols = ffn;
    p.stride = row_bytes(shape.down_type, ffn);
    p.xq = w.act_q.as<int8_t>();
    p.xd = w.act_d.as<float2>();
    p.per_assignment = true;
    p.out = w.down.as<float>();
    launch_expert_mma(shape.down_type, false, p, group_bound, stream);
    MOERUN_CUDA_CHECK_LAUNCH();
  } else if (n_assign > 0 && ffn > 0 && shape.n_experts > 0) {
    const int group = cuda_plan::expert_group_size(n_tokens);
    const int64_t group_bound = cuda_plan::expert_group_bound(n_assign, group, shape.n_experts);
    auto* perm = w.perm.as<int32_t>();
    auto* groups = w.groups.as<int4>();
    auto* n_groups = w.n_groups.as<int32_t>();
    group_by_expert<<<1, kGroupThreads, static_cast<size_t>(2 * shape.n_experts) * sizeof(int),
                      stream>>>(ids, static_cast<int>(n_assign), static_cast<int>(shape.n_experts),
                                group, perm, groups, n_groups);
    MOERUN_CUDA_CHECK_LAUNCH();

    ExpertPass p{};
    p.table = table;
    p.groups = groups;
    p.n_groups = n_groups;
    p.perm = perm;
    p.top_k = top_k;

    // Gate and up: rows ffn, cols hidden, inputs per token.
    p.w0 = table.gate;
    p.w1 = table.up;
    p.rows = ffn;
    p.cols = hidden;
    p.stride = row_bytes(shape.gate_type, hidden);
    p.xf = x;
    p.xq = nullptr;
    p.xd = nullptr;
    if (!cuda_plan::is_float_format(shape.gate_type)) {
      quantize_activations_q8_cuda(x, n_tokens, hidden, w.xq.as<int8_t>(), w.xd.as<float>(),
                                   stream);
      p.xq = w.xq.as<int8_t>();
      p.xd = w.xd.as<float2>();
    }
    p.per_assignment = false;
    p.out = w.act.as<float>();
    p.split_k = cuda_plan::gemv_split_k(shape.gate_type, hidden);
    launch_pass<true>(shape.gate_type, p, group, group_bound, stream);
    MOERUN_CUDA_CHECK_LAUNCH();

    // Down: rows hidden, cols ffn, inputs per assignment.
    p.w0 = table.down;
    p.w1 = nullptr;
    p.rows = hidden;
    p.cols = ffn;
    p.stride = row_bytes(shape.down_type, ffn);
    p.xf = w.act.as<float>();
    p.xq = nullptr;
    p.xd = nullptr;
    if (!cuda_plan::is_float_format(shape.down_type)) {
      quantize_activations_q8_cuda(w.act.as<float>(), n_assign, ffn, w.act_q.as<int8_t>(),
                                   w.act_d.as<float>(), stream);
      p.xq = w.act_q.as<int8_t>();
      p.xd = w.act_d.as<float2>();
    }
    p.per_assignment = true;
    p.out = w.down.as<float>();
    p.split_k = cuda_plan::gemv_split_k(shape.down_type, ffn);
    launch_pass<false>(shape.down_type, p, group, group_bound, stream);
    MOERUN_CUDA_CHECK_LAUNCH();
  } else if (n_assign > 0) {
    // No ffn or no experts: every choice adds zero; the down rows must still be defined.
    MOERUN_CUDA_CHECK(cudaMemsetAsync(
        w.down.data(), 0, static_cast<size_t>(n_assign * hidden) * sizeof(float), stream));
  }
  const int64_t n_out = n_tokens * hidden;
  combine_choices<<<static_cast<unsigned>((n_out + kThreads - 1) / kThreads), kThreads, 0,
                    stream>>>(w.down.as<float>(), ids, weights, n_tokens, top_k, hidden,
                              shape.n_experts, table, out);
  MOERUN_CUDA_CHECK_LAUNCH();
}

}  // namespace moerun
