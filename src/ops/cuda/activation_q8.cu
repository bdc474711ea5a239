#include "ops/cuda/activation_q8.h"

#include "ops/cuda/cuda_check.cuh"

namespace moerun {
namespace {

// One warp per group of 32 values; lane l quantises value l.
__global__ void quantize_groups_q8(const float* x, int64_t groups, int8_t* q, float2* ds) {
  const int64_t g = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) / 32;
  const int lane = static_cast<int>(threadIdx.x % 32);
  if (g >= groups) return;  // uniform over the warp
  const float v = x[g * 32 + lane];
  float amax = fabsf(v);
#pragma unroll
  for (int off = 16; off > 0; off /= 2) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, off));
  const float d = amax / 127.0f;
  int qi = d > 0.0f ? __float2int_rn(v / d) : 0;
  qi = max(-127, min(127, qi));
  q[g * 32 + lane] = static_cast<int8_t>(qi);
  int sum = qi;
#pragma unroll
  for (int off = 16; off > 0; off /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, off);
  if (lane == 0) ds[g] = make_float2(d, d * static_cast<float>(sum));
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
