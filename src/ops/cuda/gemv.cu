// The decode GEMV kernels. Fused (block formats whose activations fit in shared memory): one
// launch over the rows of up to eight matrices that share x, each block quantises x itself and
// each warp streams whole rows with the next chunk's loads in flight (gemv_fused.cuh); a
// persistent grid sized to the GPU. Otherwise: each block takes a few rows of W and every token,
// warps split the columns (see gemv_core.cuh) and their partial sums are added in a fixed order.
#include <algorithm>

#include "core/error.h"
#include "ops/cuda/cuda_check.cuh"
#include "ops/cuda/gemv_core.cuh"
#include "ops/cuda/gemv_fused.cuh"
#include "ops/cuda/gemv_launch.h"

namespace moerun {
namespace {

using cuda::ActRow;
using cuda_plan::kGemvWarps;

template <DType T, int NT, int R>
__global__ void __launch_bounds__(kGemvWarps * 32)
    gemv_kernel(const uint8_t* w, int64_t rows, int64_t cols, int64_t stride, const float* x,
                const int8_t* xq, const float2* xd, float* y, int split_k) {
  __shared__ __align__(16) uint8_t buf[kGemvWarps][R * cuda::StageBytes<T>::value];
  __shared__ float red[kGemvWarps * R * NT];
  const int warp = static_cast<int>(threadIdx.x / 32);
  const int lane = static_cast<int>(threadIdx.x % 32);
  const int groups = kGemvWarps / split_k;  // row groups per block
  const int rg = warp / split_k;
  const int64_t row0 = (static_cast<int64_t>(blockIdx.x) * groups + rg) * R;
  const uint8_t* row_ptr[R];
#pragma unroll
  for (int r = 0; r < R; ++r) row_ptr[r] = row0 + r < rows ? w + (row0 + r) * stride : nullptr;
  ActRow act[NT];
#pragma unroll
  for (int t = 0; t < NT; ++t) {
    act[t] = ActRow{x + t * cols, xq == nullptr ? nullptr : xq + t * cols,
                    xd == nullptr ? nullptr : xd + t * (cols / 32)};
  }
  float acc[R][NT] = {};
  cuda::gemv_warp<T, NT, R>(row_ptr, cols, warp % split_k, split_k, NT, act, buf[warp], acc);
  cuda::warp_sums_to_shared<R, NT>(acc, red, warp, lane);
  __syncthreads();
  for (int i = static_cast<int>(threadIdx.x); i < groups * R * NT; i += kGemvWarps * 32) {
    const int g = i / (R * NT);
    const int r = (i / NT) % R;
    const int t = i % NT;
    const int64_t row = (static_cast<int64_t>(blockIdx.x) * groups + g) * R + r;
    if (row < rows) y[t * rows + row] = cuda::split_sum<R, NT>(red, g, r, t, split_k);
  }
}

template <DType T, int NT>
void launch_typed(const WeightMatrix& w, const float* x, const int8_t* xq, const float* xd,
                  float* y, cudaStream_t stream) {
  constexpr int R = cuda_plan::gemv_rows_per_warp(T, NT);
  const int split_k = cuda_plan::gemv_split_k(T, w.cols);
  const int64_t rows_per_block = cuda_plan::gemv_rows_per_block(T, NT, w.cols);
  const int64_t blocks = (w.rows + rows_per_block - 1) / rows_per_block;
  gemv_kernel<T, NT, R><<<static_cast<unsigned>(blocks), kGemvWarps * 32, 0, stream>>>(
      static_cast<const uint8_t*>(w.data), w.rows, w.cols, w.row_stride, x, xq,
      reinterpret_cast<const float2*>(xd), y, split_k);
}

template <DType T>
void launch_tokens(const WeightMatrix& w, const float* x, const int8_t* xq, const float* xd,
                   int64_t n_tokens, float* y, cudaStream_t stream) {
  switch (n_tokens) {
    case 1:
      return launch_typed<T, 1>(w, x, xq, xd, y, stream);
    case 2:
      return launch_typed<T, 2>(w, x, xq, xd, y, stream);
    case 3:
      return launch_typed<T, 3>(w, x, xq, xd, y, stream);
    case 4:
      return launch_typed<T, 4>(w, x, xq, xd, y, stream);
    case 5:
      return launch_typed<T, 5>(w, x, xq, xd, y, stream);
    case 6:
      return launch_typed<T, 6>(w, x, xq, xd, y, stream);
    case 7:
      return launch_typed<T, 7>(w, x, xq, xd, y, stream);
    case 8:
      return launch_typed<T, 8>(w, x, xq, xd, y, stream);
    default:
      MOERUN_CHECK(n_tokens >= 1 && n_tokens <= cuda_plan::kMaxGemvTokens);
  }
}

using cuda_plan::kFusedGemvWarps;
using cuda_plan::kMaxGemvJobs;

// Arguments of the fused GEMV: the jobs, their warp tiles (R virtual rows each) and x.
struct FusedGemvParams {
  const uint8_t* w[kMaxGemvJobs];  // [n_jobs] matrix data
  float* y[kMaxGemvJobs];          // [n_jobs] outputs [n_tokens, rows]
  int64_t rows[kMaxGemvJobs];      // [n_jobs]
  int64_t stride[kMaxGemvJobs];    // [n_jobs] bytes between rows
  int64_t tile_end[kMaxGemvJobs];  // [n_jobs] cumulative warp tiles
  int n_jobs;
  int64_t cols;
  int64_t row_bytes;  // packed bytes of a row
  int64_t n_tiles;    // tile_end[n_jobs - 1]
  int seg_rows;       // rows per virtual row (cuda_plan::fused_seg_rows)
  int align;          // 16, 8, 4 or 2: divides every chunk's source address
  const float* x;     // [NT, cols] f32
};

// The (job, first virtual row) of warp tile `tile`.
__device__ inline void locate_tile(const FusedGemvParams& p, int64_t tile, int& job, int64_t& vrow0,
                                   int R) {
  job = 0;
  while (job + 1 < p.n_jobs && tile >= p.tile_end[job]) ++job;
  vrow0 = (tile - (job == 0 ? 0 : p.tile_end[job - 1])) * R;
}

// Source address and byte count of chunk c of each of the R virtual rows from vrow0 (null and 0
// past the job's rows).
template <int R, int kChunkBytes>
__device__ inline void chunk_sources(const FusedGemvParams& p, int job, int64_t vrow0, int64_t c,
                                     const uint8_t* (&src)[R], int (&n)[R]) {
  const int S = p.seg_rows;
#pragma unroll
  for (int r = 0; r < R; ++r) {
    const int64_t first = (vrow0 + r) * S;
    if (first >= p.rows[job]) {
      src[r] = nullptr;
      n[r] = 0;
    } else if (S > 1) {  // S packed rows, one chunk
      src[r] = p.w[job] + first * p.row_bytes;
      const int64_t left = p.rows[job] - first;
      n[r] = static_cast<int>((left < S ? left : S) * p.row_bytes);
    } else {
      const int64_t off = c * kChunkBytes;
      src[r] = p.w[job] + first * p.stride[job] + off;
      const int64_t left = p.row_bytes - off;
      n[r] = static_cast<int>(left < kChunkBytes ? left : kChunkBytes);
    }
  }
}

// Grid: persistent blocks of kFusedGemvWarps warps. The block quantises x into shared memory;
// warp tiles gw, gw + (all warps), ... each take R virtual rows through every chunk of their
// columns; a row's sum is one warp's lanes added by a butterfly, so outputs are deterministic and
// independent of the grid, R and the other jobs.
template <DType T, int NT, int R>
__global__ void __launch_bounds__(kFusedGemvWarps * 32)
    fused_gemv_kernel(const __grid_constant__ FusedGemvParams p) {
  constexpr int kStride = cuda::StageBytes<T>::value;
  constexpr int kChunkBytes = cuda::StageBytes<T>::bytes;
  constexpr int kSlots = cuda::kChunkSlots<T>;
  constexpr int kGroupsPerBlock = cuda::BlockFormat<T>::kElems / 32;
  __shared__ __align__(16) uint8_t stage[kFusedGemvWarps][R * kStride];
  extern __shared__ __align__(16) uint8_t xs[];  // [NT, cols] int8, then [NT, cols / 32] float2
  const int warp = static_cast<int>(threadIdx.x / 32);
  const int lane = static_cast<int>(threadIdx.x % 32);
  const int64_t cols = p.cols;
  auto* xq = reinterpret_cast<int8_t*>(xs);
  auto* xd = reinterpret_cast<float2*>(xs + NT * cols);
  const int S = p.seg_rows;
  const int seg = 32 / S;  // lanes per row
  const int64_t n_chunks = S > 1 ? 1 : (cols + 1023) / 1024;
  const int64_t n_groups = cols / 32;

  int64_t tile = static_cast<int64_t>(blockIdx.x) * kFusedGemvWarps + warp;
  const int64_t tile_step = static_cast<int64_t>(gridDim.x) * kFusedGemvWarps;
  int64_t chunk = 0;
  int job = 0;
  int64_t vrow0 = 0;
  const uint8_t* src[R] = {};
  int n[R] = {};
  int4 v[R][kSlots] = {};
  bool active = tile < p.n_tiles;
  if (active) {  // the first chunk's loads fly while x is quantised
    locate_tile(p, tile, job, vrow0, R);
    chunk_sources<R, kChunkBytes>(p, job, vrow0, 0, src, n);
#pragma unroll
    for (int r = 0; r < R; ++r) cuda::load_slots<kSlots>(src[r], n[r], p.align, lane, v[r]);
  }
  cuda::quantize_rows_to_shared(p.x, NT, cols, xq, xd, warp, kFusedGemvWarps, lane);
  __syncthreads();

  float acc[R][NT] = {};
  while (active) {
    const int cur_job = job;
    const int64_t cur_vrow0 = vrow0;
    const int64_t cur_chunk = chunk;
    bool valid[R];
#pragma unroll
    for (int r = 0; r < R; ++r) {
      valid[r] = src[r] != nullptr;
      cuda::store_slots<kSlots, kStride>(stage[warp] + r * kStride, n[r], lane, v[r]);
    }
    __syncwarp();
    // Issue the next chunk's loads before multiplying this one.
    if (++chunk == n_chunks) {
      chunk = 0;
      tile += tile_step;
      active = tile < p.n_tiles;
      if (active) locate_tile(p, tile, job, vrow0, R);
    }
    if (active) {
      chunk_sources<R, kChunkBytes>(p, job, vrow0, chunk, src, n);
#pragma unroll
      for (int r = 0; r < R; ++r) cuda::load_slots<kSlots>(src[r], n[r], p.align, lane, v[r]);
    }
    // This lane's group: group `lane` of the staged chunk, which is group gi of row `row_in`.
    const int row_in = lane / seg;  // 0 unless S > 1
    const int64_t gi = S > 1 ? lane % seg : cur_chunk * 32 + lane;
    if (gi < n_groups) {
#pragma unroll
      for (int r = 0; r < R; ++r) {
        if (!valid[r] || (cur_vrow0 + r) * S + row_in >= p.rows[cur_job]) continue;
        cuda::Group32 g;
        cuda::decode_group32<T>(
            stage[warp] + r * kStride + (lane / kGroupsPerBlock) * cuda::BlockFormat<T>::kBytes,
            lane % kGroupsPerBlock, &g);
        cuda::dot_group_tokens<NT>(g, xq, xd, cols, gi, NT, acc[r]);
      }
    }
    if (cur_chunk == n_chunks - 1) {
      const int64_t rows = p.rows[cur_job];
      float* y = p.y[cur_job];
#pragma unroll
      for (int r = 0; r < R; ++r) {
        const int64_t row = (cur_vrow0 + r) * S + row_in;
#pragma unroll
        for (int t = 0; t < NT; ++t) {
          const float s = cuda::segment_sum(acc[r][t], seg);
          acc[r][t] = 0.0f;
          if (lane % seg == 0 && valid[r] && row < rows) y[t * rows + row] = s;
        }
      }
    }
    __syncwarp();
  }
}

// Fills p for jobs of one format and launches the fused GEMV with NT tokens.
template <DType T, int NT>
void launch_fused_typed(const FusedGemvJob* jobs, int n_jobs, const float* x, cudaStream_t stream) {
  FusedGemvParams p{};
  const int64_t cols = jobs[0].w->cols;
  const int64_t row_bytes = cols / cuda::BlockFormat<T>::kElems * cuda::BlockFormat<T>::kBytes;
  bool packed = true;
  int64_t total_rows = 0;
  for (int j = 0; j < n_jobs; ++j) {
    packed = packed && jobs[j].w->row_stride == row_bytes;
    total_rows += jobs[j].w->rows;
  }
  const int S = cuda_plan::fused_seg_rows(cols, packed);
  const int R = cuda_plan::fused_rows_per_warp((total_rows + S - 1) / S);
  // Alignment of every chunk's source: data pointers, strides or packed offsets, chunk offsets.
  uintptr_t bits = 16;
  int64_t tiles = 0;
  for (int j = 0; j < n_jobs; ++j) {
    const WeightMatrix& w = *jobs[j].w;
    p.w[j] = static_cast<const uint8_t*>(w.data);
    p.y[j] = jobs[j].y;
    p.rows[j] = w.rows;
    p.stride[j] = w.row_stride;
    bits |= reinterpret_cast<uintptr_t>(w.data);
    bits |= static_cast<uintptr_t>(S > 1 ? S * row_bytes : w.row_stride);
    const int64_t vrows = (w.rows + S - 1) / S;
    tiles += (vrows + R - 1) / R;
    p.tile_end[j] = tiles;
  }
  bits |= static_cast<uintptr_t>(cuda::StageBytes<T>::bytes);
  p.n_jobs = n_jobs;
  p.cols = cols;
  p.row_bytes = row_bytes;
  p.n_tiles = tiles;
  p.seg_rows = S;
  p.align = (bits & 15) == 0 ? 16 : (bits & 7) == 0 ? 8 : (bits & 3) == 0 ? 4 : 2;
  p.x = x;
  if (tiles == 0) return;
  const auto smem = static_cast<size_t>(cuda_plan::fused_x_smem(NT, cols));
  auto* kernel = R == 2 ? fused_gemv_kernel<T, NT, 2> : fused_gemv_kernel<T, NT, 1>;
  // Blocks resident at once on the whole GPU (x quantisation is paid once per block).
  int device = 0;
  int sms = 0;
  int per_sm = 0;
  MOERUN_CUDA_CHECK(cudaGetDevice(&device));
  MOERUN_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  MOERUN_CUDA_CHECK(
      cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kFusedGemvWarps * 32, smem));
  const int64_t needed = (tiles + kFusedGemvWarps - 1) / kFusedGemvWarps;
  const int64_t blocks = std::max<int64_t>(1, std::min<int64_t>(needed, int64_t{sms} * per_sm));
  kernel<<<static_cast<unsigned>(blocks), kFusedGemvWarps * 32, smem, stream>>>(p);
}

template <DType T>
void launch_fused_tokens(const FusedGemvJob* jobs, int n_jobs, const float* x, int64_t n_tokens,
                         cudaStream_t stream) {
  switch (n_tokens) {
    case 1:
      return launch_fused_typed<T, 1>(jobs, n_jobs, x, stream);
    case 2:
      return launch_fused_typed<T, 2>(jobs, n_jobs, x, stream);
    case 3:
      return launch_fused_typed<T, 3>(jobs, n_jobs, x, stream);
    case 4:
      return launch_fused_typed<T, 4>(jobs, n_jobs, x, stream);
    case 5:
      return launch_fused_typed<T, 5>(jobs, n_jobs, x, stream);
    case 6:
      return launch_fused_typed<T, 6>(jobs, n_jobs, x, stream);
    case 7:
      return launch_fused_typed<T, 7>(jobs, n_jobs, x, stream);
    case 8:
      return launch_fused_typed<T, 8>(jobs, n_jobs, x, stream);
    default:
      MOERUN_CHECK(n_tokens >= 1 && n_tokens <= cuda_plan::kMaxGemvTokens);
  }
}

}  // namespace

void launch_gemv_cuda(const WeightMatrix& w, const float* x, const int8_t* xq, const float* xd,
                      int64_t n_tokens, float* y, cudaStream_t stream) {
  if (w.rows == 0 || n_tokens == 0) return;
  switch (w.type) {
    case DType::F32:
      launch_tokens<DType::F32>(w, x, xq, xd, n_tokens, y, stream);
      break;
    case DType::F16:
      launch_tokens<DType::F16>(w, x, xq, xd, n_tokens, y, stream);
      break;
    case DType::BF16:
      launch_tokens<DType::BF16>(w, x, xq, xd, n_tokens, y, stream);
      break;
    case DType::Q8_0:
      launch_tokens<DType::Q8_0>(w, x, xq, xd, n_tokens, y, stream);
      break;
    case DType::Q4_0:
      launch_tokens<DType::Q4_0>(w, x, xq, xd, n_tokens, y, stream);
      break;
    case DType::Q4_K:
      launch_tokens<DType::Q4_K>(w, x, xq, xd, n_tokens, y, stream);
      break;
    case DType::Q5_K:
      launch_tokens<DType::Q5_K>(w, x, xq, xd, n_tokens, y, stream);
      break;
    case DType::Q6_K:
      launch_tokens<DType::Q6_K>(w, x, xq, xd, n_tokens, y, stream);
      break;
    default:
      MOERUN_CHECK(cuda_plan::gpu_matmul_supports(w.type));
  }
  MOERUN_CUDA_CHECK_LAUNCH();
}

void launch_fused_gemv_cuda(const FusedGemvJob* jobs, int n_jobs, const float* x, int64_t n_tokens,
                            cudaStream_t stream) {
  MOERUN_CHECK(n_jobs >= 1 && n_jobs <= kMaxGemvJobs);
  const DType type = jobs[0].w->type;
  const int64_t cols = jobs[0].w->cols;
  for (int j = 0; j < n_jobs; ++j) {
    MOERUN_CHECK(jobs[j].w->type == type && jobs[j].w->cols == cols);
  }
  MOERUN_CHECK(cuda_plan::fused_gemv_fits(type, n_tokens, cols));
  switch (type) {
    case DType::Q8_0:
      launch_fused_tokens<DType::Q8_0>(jobs, n_jobs, x, n_tokens, stream);
      break;
    case DType::Q4_0:
      launch_fused_tokens<DType::Q4_0>(jobs, n_jobs, x, n_tokens, stream);
      break;
    case DType::Q4_K:
      launch_fused_tokens<DType::Q4_K>(jobs, n_jobs, x, n_tokens, stream);
      break;
    case DType::Q5_K:
      launch_fused_tokens<DType::Q5_K>(jobs, n_jobs, x, n_tokens, stream);
      break;
    case DType::Q6_K:
      launch_fused_tokens<DType::Q6_K>(jobs, n_jobs, x, n_tokens, stream);
      break;
    default:
      MOERUN_CHECK(!cuda_plan::is_float_format(type));
  }
  MOERUN_CUDA_CHECK_LAUNCH();
}

}  // namespace moerun
