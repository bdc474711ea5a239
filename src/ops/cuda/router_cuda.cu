#include "core/error.h"
#include "ops/cuda/cuda_check.cuh"
#include "ops/cuda/reduce.cuh"
#include "ops/cuda/router_cuda.h"

namespace moerun {
namespace {

constexpr int kThreads = 256;  // one warp per token measured 1.9x slower (ncu, H100)
constexpr int kMaxTopK = 64;

// (value, index) with the larger value winning and, on equal values, the lower index.
__device__ inline void better_of(float& v, int& i, float ov, int oi) {
  if (ov > v || (ov == v && oi < i)) {
    v = ov;
    i = oi;
  }
}

// One block per token; probabilities in dynamic shared memory [n_experts].
__global__ void softmax_top_k_kernel(const float* logits, int n_experts, int top_k, bool normalize,
                                     int32_t* ids, float* weights) {
  extern __shared__ float probs[];
  __shared__ float scratch[32];
  __shared__ float best_v[32];
  __shared__ int best_i[32];
  __shared__ float chosen[kMaxTopK];
  const float* l = logits + static_cast<int64_t>(blockIdx.x) * n_experts;
  float m = -INFINITY;
  for (int e = threadIdx.x; e < n_experts; e += blockDim.x) m = fmaxf(m, l[e]);
  m = block_max(m, scratch);
  float s = 0.0f;
  for (int e = threadIdx.x; e < n_experts; e += blockDim.x) {
    const float p = expf(l[e] - m);
    probs[e] = p;
    s += p;
  }
  s = block_sum(s, scratch);
  for (int e = threadIdx.x; e < n_experts; e += blockDim.x) probs[e] /= s;
  __syncthreads();

  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const int n_warps = blockDim.x >> 5;
  for (int k = 0; k < top_k; ++k) {
    float v = -1.0f;
    int i = n_experts;
    for (int e = threadIdx.x; e < n_experts; e += blockDim.x) better_of(v, i, probs[e], e);
    for (int offset = 16; offset > 0; offset >>= 1) {
      better_of(v, i, __shfl_xor_sync(0xffffffffu, v, offset),
                __shfl_xor_sync(0xffffffffu, i, offset));
    }
    if (lane == 0) {
      best_v[warp] = v;
      best_i[warp] = i;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      float bv = best_v[0];
      int bi = best_i[0];
      for (int w = 1; w < n_warps; ++w) better_of(bv, bi, best_v[w], best_i[w]);
      ids[static_cast<int64_t>(blockIdx.x) * top_k + k] = bi;
      chosen[k] = bv;
      probs[bi] = -1.0f;  // taken (probabilities are >= 0)
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    float total = 1.0f;
    if (normalize) {
      total = 0.0f;
      for (int k = 0; k < top_k; ++k) total += chosen[k];
    }
    for (int k = 0; k < top_k; ++k) {
      weights[static_cast<int64_t>(blockIdx.x) * top_k + k] = chosen[k] / total;
    }
  }
}

}  // namespace

void softmax_top_k_cuda(const float* logits, int64_t n, int64_t n_experts, int64_t top_k,
                        bool normalize, int32_t* ids, float* weights, cudaStream_t stream) {
  MOERUN_CHECK(top_k >= 1 && top_k <= kMaxTopK && top_k <= n_experts);
  if (n == 0) return;
  const size_t shared = static_cast<size_t>(n_experts) * sizeof(float);
  softmax_top_k_kernel<<<static_cast<unsigned>(n), kThreads, shared, stream>>>(
      logits, static_cast<int>(n_experts), static_cast<int>(top_k), normalize, ids, weights);
  MOERUN_CUDA_CHECK_LAUNCH();
}

}  // namespace moerun
