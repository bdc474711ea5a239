// y = W x on the GPU for every supported weight format (F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K,
// Q6_K): a GEMV kernel for up to 8 tokens, dequantised bf16 tiles and cuBLAS for more.
// matmul_cuda_batch multiplies several matrices by the same x: x quantised once, then one GEMV
// launch per weight format (up to 8 matrices each).
//
// Numerics. Up to 8 tokens, float formats: f32 products and sums. Up to 8 tokens, block formats:
// x is quantised per group of 32 to int8 (d = max|x| / 127, round to nearest even), so the result
// is W x^ with |x - x^| <= d / 2 per element, integer dot products per group and f32 sums. More
// than 8 tokens: W and x rounded to bf16 (relative error <= 2^-9 each), f32 accumulation; f32
// weights use an f32 SGEMM instead (no rounding).
#pragma once

#include <cstdint>
#include <memory>

#include <cuda_runtime_api.h>

#include "core/weight_matrix.h"

namespace moerun {

// Device scratch of matmul_cuda (int8 activations, bf16 tiles, the cuBLAS handle and its
// workspace); one per stream. It grows on first use; reserve() allocates everything up front so
// that later calls never allocate.
class CudaMatmulWorkspace {
 public:
  CudaMatmulWorkspace();
  ~CudaMatmulWorkspace();
  CudaMatmulWorkspace(CudaMatmulWorkspace&&) noexcept;
  CudaMatmulWorkspace& operator=(CudaMatmulWorkspace&&) noexcept;

  // Allocates what matmul_cuda needs for any matrix up to max_rows x max_cols and up to
  // max_tokens tokens (creates the cuBLAS handle when max_tokens > 8). Synchronous.
  void reserve(int64_t max_rows, int64_t max_cols, int64_t max_tokens);
  // Device bytes held (cuBLAS workspace included).
  int64_t device_bytes() const;

  struct Impl;
  // The internal state (for the implementation only).
  Impl& impl() { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

// y [n_tokens, w.rows] f32 = x [n_tokens, w.cols] f32 times W^T, all device memory (w.data too;
// Q4_K and Q5_K rows 4-byte aligned). Asynchronous on `stream`. With n_tokens <= 8 and a reserved
// workspace it neither allocates nor synchronises nor calls cuBLAS, so it can be captured in a
// CUDA graph. Deterministic: the same inputs give bitwise the same y.
void matmul_cuda(const WeightMatrix& w, const float* x, int64_t n_tokens, float* y,
                 CudaMatmulWorkspace& ws, cudaStream_t stream);

// One product of matmul_cuda_batch: y [n_tokens, w->rows] f32 = x times W^T.
struct CudaMatmulJob {
  const WeightMatrix* w;
  float* y;
};

// matmul_cuda for each of jobs [n_jobs], all with the same x [n_tokens, cols] (every matrix has
// `cols` columns). Up to 8 tokens x is quantised once for the whole batch and the matrices of one
// format share one GEMV launch (the q, k, v projections; the router and the shared expert's gate
// and up); each y is bitwise what matmul_cuda computes for that matrix alone. Same requirements
// and guarantees as matmul_cuda (no allocation after reserve(), capturable, deterministic).
void matmul_cuda_batch(const CudaMatmulJob* jobs, int n_jobs, const float* x, int64_t n_tokens,
                       CudaMatmulWorkspace& ws, cudaStream_t stream);

}  // namespace moerun
