// The decode GEMV of matmul_cuda (internal to ops/cuda): y = W x for 1..8 tokens.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

#include "core/weight_matrix.h"

namespace moerun {

// y [n_tokens, w.rows] f32 = x [n_tokens, w.cols] times W^T, for n_tokens in 1..8, all on the
// device. Block formats read the int8 activations xq [n_tokens, w.cols] and their scale pairs xd
// [n_tokens, w.cols / 32, 2] (quantize_activations_q8_cuda); float formats read x. Asynchronous;
// no allocation, capturable in a CUDA graph.
void launch_gemv_cuda(const WeightMatrix& w, const float* x, const int8_t* xq, const float* xd,
                      int64_t n_tokens, float* y, cudaStream_t stream);

// One matrix of a fused GEMV launch and its output y [n_tokens, w.rows].
struct FusedGemvJob {
  const WeightMatrix* w;
  float* y;
};

// y_j = x W_j^T for up to cuda_plan::kMaxGemvJobs matrices of one block format and one column
// count, in one launch that quantises x [n_tokens, cols] f32 itself (the same rounding as
// quantize_activations_q8_cuda); requires cuda_plan::fused_gemv_fits for the total row count.
// Each output is bitwise what a launch with that job alone computes. Asynchronous; no
// allocation; capturable.
void launch_fused_gemv_cuda(const FusedGemvJob* jobs, int n_jobs, const float* x, int64_t n_tokens,
                            cudaStream_t stream);

}  // namespace moerun
