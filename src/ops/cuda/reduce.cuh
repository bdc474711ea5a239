// Warp and block reductions shared by the CUDA kernels.
#pragma once

#include <cuda_runtime.h>

namespace moerun {

// Sum of v over the 32 lanes of a warp, returned to every lane.
__device__ inline float warp_sum(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// Maximum of v over the 32 lanes of a warp, returned to every lane.
__device__ inline float warp_max(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) {
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  }
  return v;
}

// Sum of v over a block of blockDim.x threads (a multiple of 32, at most 1024), returned to every
// thread. `scratch` is shared memory of 32 floats; the block must reach this call together.
__device__ inline float block_sum(float v, float* scratch) {
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const int n_warps = (blockDim.x + 31) >> 5;
  v = warp_sum(v);
  __syncthreads();  // scratch may still be read by a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < n_warps ? scratch[lane] : 0.0f;
  return warp_sum(v);
}

// Maximum of v over a block (as block_sum).
__device__ inline float block_max(float v, float* scratch) {
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const int n_warps = (blockDim.x + 31) >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < n_warps ? scratch[lane] : -INFINITY;
  return warp_max(v);
}

// Rounds n up to a multiple of m.
__host__ __device__ inline int round_up(int n, int m) {
  return (n + m - 1) / m * m;
}

// The SiLU x * sigmoid(x) in f32.
__device__ inline float silu_f(float x) {
  return x / (1.0f + expf(-x));
}

// The logistic sigmoid in f32.
__device__ inline float sigmoid_f(float x) {
  return 1.0f / (1.0f + expf(-x));
}

}  // namespace moerun
