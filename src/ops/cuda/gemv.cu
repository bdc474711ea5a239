// The decode GEMV kernel: each block takes a few rows of one matrix and every token, warps split
// the columns (see gemv_core.cuh) and their partial sums are added in a fixed order. One launch
// covers the rows of up to cuda_plan::kMaxGemvJobs matrices of one format that share x (a job
// table in the kernel parameters; blocks map to (job, row block)); block formats read x quantised
// once per call by quantize_activations_q8_cuda.
#include "core/error.h"
#include "ops/cuda/cuda_check.cuh"
#include "ops/cuda/gemv_core.cuh"
#include "ops/cuda/gemv_launch.h"

namespace moerun {
namespace {

using cuda::ActRow;
using cuda_plan::kGemvWarps;
using cuda_plan::kMaxGemvJobs;

// Arguments of one GEMV launch: the job table, x and the split of the columns.
struct GemvParams {
  const uint8_t* w[kMaxGemvJobs];   // [n_jobs] matrix data
  float* y[kMaxGemvJobs];           // [n_jobs] outputs [NT, rows]
  int64_t rows[kMaxGemvJobs];       // [n_jobs]
  int64_t stride[kMaxGemvJobs];     // [n_jobs] bytes between rows
  int64_t block_end[kMaxGemvJobs];  // [n_jobs] cumulative thread blocks
  int n_jobs;
  int64_t cols;
  const float* x;    // [NT, cols] f32 (float formats)
  const int8_t* xq;  // [NT, cols] int8 (block formats)
  const float2* xd;  // [NT, cols / 32] (d, d * sum q) (block formats)
  int split_k;       // warps per row (cuda_plan::gemv_split_k)
};

// Grid: the blocks of job 0, then those of job 1, ...; block b of a job takes rows
// [b * rows_per_block, (b + 1) * rows_per_block) exactly as a launch of that job alone would, so
// each output is independent of the other jobs.
template <DType T, int NT, int R>
__global__ void __launch_bounds__(kGemvWarps * 32)
    gemv_kernel(const __grid_constant__ GemvParams p) {
  __shared__ __align__(16) uint8_t buf[kGemvWarps][R * cuda::StageBytes<T>::value];
  __shared__ float red[kGemvWarps * R * NT];
  const int64_t b = blockIdx.x;
  int job = 0;
  while (job + 1 < p.n_jobs && b >= p.block_end[job]) ++job;
  const int64_t block = b - (job == 0 ? 0 : p.block_end[job - 1]);
  const uint8_t* w = p.w[job];
  float* y = p.y[job];
  const int64_t rows = p.rows[job];
  const int64_t stride = p.stride[job];
  const int64_t cols = p.cols;
  const int split_k = p.split_k;
  const int warp = static_cast<int>(threadIdx.x / 32);
  const int lane = static_cast<int>(threadIdx.x % 32);
  const int groups = kGemvWarps / split_k;  // row groups per block
  const int rg = warp / split_k;
  const int64_t row0 = (block * groups + rg) * R;
  const uint8_t* row_ptr[R];
#pragma unroll
  for (int r = 0; r < R; ++r) row_ptr[r] = row0 + r < rows ? w + (row0 + r) * stride : nullptr;
  ActRow act[NT];
#pragma unroll
  for (int t = 0; t < NT; ++t) {
    act[t] = ActRow{p.x + t * cols, p.xq == nullptr ? nullptr : p.xq + t * cols,
                    p.xd == nullptr ? nullptr : p.xd + t * (cols / 32)};
  }
  float acc[R][NT] = {};
  cuda::gemv_warp<T, NT, R>(row_ptr, cols, warp % split_k, split_k, NT, act, buf[warp], acc);
  cuda::warp_sums_to_shared<R, NT>(acc, red, warp, lane);
  __syncthreads();
  for (int i = static_cast<int>(threadIdx.x); i < groups * R * NT; i += kGemvWarps * 32) {
    const int g = i / (R * NT);
    const int r = (i / NT) % R;
    const int t = i % NT;
    const int64_t row = (block * groups + g) * R + r;
    if (row < rows) y[t * rows + row] = cuda::split_sum<R, NT>(red, g, r, t, split_k);
  }
}

// Fills the job table and launches the GEMV with NT tokens and R rows per warp (one block per
// rows_per_block rows of each job).
template <DType T, int NT, int R>
void launch_typed(const GemvJob* jobs, int n_jobs, const float* x, const int8_t* xq,
                  const float* xd, cudaStream_t stream) {
  const int64_t cols = jobs[0].w->cols;
  const int64_t rows_per_block = (cuda_plan::kGemvWarps / cuda_plan::gemv_split_k(T, cols)) * R;
  GemvParams p{};
  int64_t blocks = 0;
  for (int j = 0; j < n_jobs; ++j) {
    const WeightMatrix& w = *jobs[j].w;
    p.w[j] = static_cast<const uint8_t*>(w.data);
    p.y[j] = jobs[j].y;
    p.rows[j] = w.rows;
    p.stride[j] = w.row_stride;
    blocks += (w.rows + rows_per_block - 1) / rows_per_block;
    p.block_end[j] = blocks;
  }
  p.n_jobs = n_jobs;
  p.cols = cols;
  p.x = x;
  p.xq = xq;
  p.xd = reinterpret_cast<const float2*>(xd);
  p.split_k = cuda_plan::gemv_split_k(T, cols);
  if (blocks == 0) return;
  gemv_kernel<T, NT, R><<<static_cast<unsigned>(blocks), kGemvWarps * 32, 0, stream>>>(p);
}

// Launches with NT tokens and the rows per warp the plan gives for the launch's total rows.
template <DType T, int NT>
void launch_rows(const GemvJob* jobs, int n_jobs, const float* x, const int8_t* xq, const float* xd,
                 cudaStream_t stream) {
  constexpr int R = cuda_plan::gemv_rows_per_warp(T, NT);
  int64_t rows = 0;
  for (int j = 0; j < n_jobs; ++j) rows += jobs[j].w->rows;
  const int r = cuda_plan::gemv_launch_rows_per_warp(T, NT, jobs[0].w->cols, rows);
  if constexpr (R == 1) {
    if (r == 2) return launch_typed<T, NT, 2>(jobs, n_jobs, x, xq, xd, stream);
  }
  launch_typed<T, NT, R>(jobs, n_jobs, x, xq, xd, stream);
}

template <DType T>
void launch_tokens(const GemvJob* jobs, int n_jobs, const float* x, const int8_t* xq,
                   const float* xd, int64_t n_tokens, cudaStream_t stream) {
  switch (n_tokens) {
    case 1:
      return launch_rows<T, 1>(jobs, n_jobs, x, xq, xd, stream);
    case 2:
      return launch_rows<T, 2>(jobs, n_jobs, x, xq, xd, stream);
    case 3:
      return launch_rows<T, 3>(jobs, n_jobs, x, xq, xd, stream);
    case 4:
      return launch_rows<T, 4>(jobs, n_jobs, x, xq, xd, stream);
    case 5:
      return launch_rows<T, 5>(jobs, n_jobs, x, xq, xd, stream);
    case 6:
      return launch_rows<T, 6>(jobs, n_jobs, x, xq, xd, stream);
    case 7:
      return launch_rows<T, 7>(jobs, n_jobs, x, xq, xd, stream);
    case 8:
      return launch_rows<T, 8>(jobs, n_jobs, x, xq, xd, stream);
    default:
      MOERUN_CHECK(n_tokens >= 1 && n_tokens <= cuda_plan::kMaxGemvTokens);
  }
}

}  // namespace

void launch_gemv_cuda(const GemvJob* jobs, int n_jobs, const float* x, const int8_t* xq,
                      const float* xd, int64_t n_tokens, cudaStream_t stream) {
  MOERUN_CHECK(n_jobs >= 0 && n_jobs <= kMaxGemvJobs);
  if (n_jobs == 0 || n_tokens == 0) return;
  const DType type = jobs[0].w->type;
  for (int j = 0; j < n_jobs; ++j) {
    MOERUN_CHECK(jobs[j].w->type == type && jobs[j].w->cols == jobs[0].w->cols);
  }
  MOERUN_CHECK(cuda_plan::is_float_format(type) || (xq != nullptr && xd != nullptr));
  switch (type) {
    case DType::F32:
      launch_tokens<DType::F32>(jobs, n_jobs, x, xq, xd, n_tokens, stream);
      break;
    case DType::F16:
      launch_tokens<DType::F16>(jobs, n_jobs, x, xq, xd, n_tokens, stream);
      break;
    case DType::BF16:
      launch_tokens<DType::BF16>(jobs, n_jobs, x, xq, xd, n_tokens, stream);
      break;
    case DType::Q8_0:
      launch_tokens<DType::Q8_0>(jobs, n_jobs, x, xq, xd, n_tokens, stream);
      break;
    case DType::Q4_0:
      launch_tokens<DType::Q4_0>(jobs, n_jobs, x, xq, xd, n_tokens, stream);
      break;
    case DType::Q4_K:
      launch_tokens<DType::Q4_K>(jobs, n_jobs, x, xq, xd, n_tokens, stream);
      break;
    case DType::Q5_K:
      launch_tokens<DType::Q5_K>(jobs, n_jobs, x, xq, xd, n_tokens, stream);
      break;
    case DType::Q6_K:
      launch_tokens<DType::Q6_K>(jobs, n_jobs, x, xq, xd, n_tokens, stream);
      break;
    default:
      MOERUN_CHECK(cuda_plan::gpu_matmul_supports(type));
  }
  MOERUN_CUDA_CHECK_LAUNCH();
}

}  // namespace moerun
