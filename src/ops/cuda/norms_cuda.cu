#include "ops/cuda/cuda_check.cuh"
#include "ops/cuda/norms_cuda.h"
#include "ops/cuda/reduce.cuh"

namespace moerun {
namespace {

constexpr int kThreads = 256;

// One block per row: optional residual add, then RMSNorm of the sum. The buffers do not overlap
// (restrict), and the loops are unrolled, so a thread's loads are all in flight at once (a decode
// row is one block: its time is the latency of these loads).
__global__ void add_rms_norm_kernel(float* __restrict__ h, const float* __restrict__ delta,
                                    const float* __restrict__ w, int dim, float eps,
                                    float* __restrict__ y) {
  __shared__ float scratch[32];
  float* hr = h + static_cast<int64_t>(blockIdx.x) * dim;
  float* yr = y + static_cast<int64_t>(blockIdx.x) * dim;
  float ss = 0.0f;
  if (delta != nullptr) {
    const float* dr = delta + static_cast<int64_t>(blockIdx.x) * dim;
#pragma unroll 8
    for (int i = threadIdx.x; i < dim; i += blockDim.x) {
      const float v = hr[i] + dr[i];
      hr[i] = v;
      ss += v * v;
    }
  } else {
#pragma unroll 8
    for (int i = threadIdx.x; i < dim; i += blockDim.x) ss += hr[i] * hr[i];
  }
  ss = block_sum(ss, scratch);
  const float scale = rsqrtf(ss / static_cast<float>(dim) + eps);
#pragma unroll 8
  for (int i = threadIdx.x; i < dim; i += blockDim.x) yr[i] = hr[i] * scale * w[i];
}

__global__ void rms_norm_rows_kernel(const float* x, const int32_t* rows, const float* w, int dim,
                                     float eps, float* y) {
  __shared__ float scratch[32];
  const float* xr = x + static_cast<int64_t>(rows[blockIdx.x]) * dim;
  float* yr = y + static_cast<int64_t>(blockIdx.x) * dim;
  float ss = 0.0f;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) ss += xr[i] * xr[i];
  ss = block_sum(ss, scratch);
  const float scale = rsqrtf(ss / static_cast<float>(dim) + eps);
  for (int i = threadIdx.x; i < dim; i += blockDim.x) yr[i] = xr[i] * scale * w[i];
}

}  // namespace

void add_rms_norm_cuda(float* h, const float* delta, const float* w, int64_t rows, int64_t dim,
                       float eps, float* y, cudaStream_t stream) {
  if (rows == 0) return;
  add_rms_norm_kernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(
      h, delta, w, static_cast<int>(dim), eps, y);
  MOERUN_CUDA_CHECK_LAUNCH();
}

void rms_norm_rows_cuda(const float* x, const int32_t* rows, int64_t n_out, const float* w,
                        int64_t dim, float eps, float* y, cudaStream_t stream) {
  if (n_out == 0) return;
  rms_norm_rows_kernel<<<static_cast<unsigned>(n_out), kThreads, 0, stream>>>(
      x, rows, w, static_cast<int>(dim), eps, y);
  MOERUN_CUDA_CHECK_LAUNCH();
}

}  // namespace moerun
