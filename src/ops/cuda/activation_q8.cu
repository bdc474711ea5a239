#include "ops/cuda/activation_q8.h"

#include "ops/cuda/activation_q8.cuh"
#include "ops/cuda/cuda_check.cuh"

namespace moerun {
namespace {

// One warp per group of 32 values; lane l quantises value l.
__global__ void quantize_groups_q8(const float* x, int64_t groups, int8_t* q, float2* ds) {
  const int64_t g = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) / 32;
  const int lane = static_cast<int>(threadIdx.x % 32);
  if (g >= groups) return;  // uniform over the warp
  cuda::quantize_group32_q8(x[g * 32 + lane], lane, q + g * 32, ds + g);
}

}  // namespace

void quantize_activations_q8_cuda(const float* x, int64_t n_rows, int64_t cols, int8_t* q,
                                  float* ds, cudaStream_t stream) {
  MOERUN_CHECK(cols % 32 == 0);
  const int64_t groups = n_rows * cols / 32;
  if (groups == 0) return;
  constexpr int kThreads = 256;  // 8 groups per block
  const auto blocks = static_cast<unsigned>((groups * 32 + kThreads - 1) / kThreads);
  quantize_groups_q8<<<blocks, kThreads, 0, stream>>>(x, groups, q, reinterpret_cast<float2*>(ds));
  MOERUN_CUDA_CHECK_LAUNCH();
}

}  // namespace moerun
