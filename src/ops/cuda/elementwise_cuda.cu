#include "ops/cuda/cuda_check.cuh"
#include "ops/cuda/elementwise_cuda.h"
#include "ops/cuda/reduce.cuh"

namespace moerun {
namespace {

constexpr int kThreads = 256;

__global__ void silu_mul_kernel(const float* gate, const float* up, int64_t n, float* out) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) out[i] = silu_f(gate[i]) * up[i];
}

__global__ void add_gated_shared_kernel(float* out, const float* shared, const float* scale,
                                        int64_t n, int dim) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) out[i] += sigmoid_f(scale[i / dim]) * shared[i];
}

__global__ void add_into_kernel(float* dst, const float* src, int64_t n) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) dst[i] += src[i];
}

unsigned blocks_for(int64_t n) {
  return static_cast<unsigned>((n + kThreads - 1) / kThreads);
}

}  // namespace

void silu_mul_cuda(const float* gate, const float* up, int64_t n, float* out, cudaStream_t stream) {
  if (n == 0) return;
  silu_mul_kernel<<<blocks_for(n), kThreads, 0, stream>>>(gate, up, n, out);
  MOERUN_CUDA_CHECK_LAUNCH();
}

void add_gated_shared_cuda(float* out, const float* shared, const float* scale, int64_t rows,
                           int64_t dim, cudaStream_t stream) {
  const int64_t n = rows * dim;
  if (n == 0) return;
  add_gated_shared_kernel<<<blocks_for(n), kThreads, 0, stream>>>(out, shared, scale, n,
                                                                  static_cast<int>(dim));
  MOERUN_CUDA_CHECK_LAUNCH();
}

void add_into_cuda(float* dst, const float* src, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  add_into_kernel<<<blocks_for(n), kThreads, 0, stream>>>(dst, src, n);
  MOERUN_CUDA_CHECK_LAUNCH();
}

}  // namespace moerun
