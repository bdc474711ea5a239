// The decode GEMV of matmul_cuda (internal to ops/cuda): y = W x for 1..8 tokens.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

#include "core/weight_matrix.h"

namespace moerun {

// One matrix of a GEMV launch and its output y [n_tokens, w->rows].
struct GemvJob {
  const WeightMatrix* w;
  float* y;
};

// y_j [n_tokens, rows_j] f32 = x [n_tokens, cols] times W_j^T for jobs [n_jobs] (0..kMaxGemvJobs
// matrices of one format and one column count), n_tokens in 1..8, in one launch; all on the
// device. Block formats read the int8 activations xq [n_tokens, cols] and their scale pairs xd
// [n_tokens, cols / 32, 2] (quantize_activations_q8_cuda); float formats read x. Each output is
// bitwise what a launch with that job alone computes. Asynchronous; no allocation, no host sync,
// capturable in a CUDA graph.
void launch_gemv_cuda(const GemvJob* jobs, int n_jobs, const float* x, const int8_t* xq,
                      const float* xd, int64_t n_tokens, cudaStream_t stream);

}  // namespace moerun
