// The decode GEMV kernel: each block takes a few rows of W and every token, warps split the
// columns (see gemv_core.cuh) and their partial sums are added in a fixed order.
#include "ops/cuda/cuda_check.cuh"
#include "ops/cuda/gemv_core.cuh"
#include "ops/cuda/gemv_launch.h"

namespace moerun {
namespace {

using cuda::ActRow;
using cuda_plan::kGemvWarps;

template <DType T, int NT, int R>
__global__ void __launch_bounds__(kGemvWarps * 32)
    gemv_kernel(const uint8_t* w, int64_t rows, int64_t cols, int64_t stride, const float* x,
                const int8_t* xq, const float2* xd, float* y, int split_k) {
  __shared__ __align__(16) uint8_t buf[kGemvWarps][R * cuda::StageBytes<T>::value];
  __shared__ float red[kGemvWarps * R * NT];
  const int warp = static_cast<int>(threadIdx.x / 32);
  const int lane = static_cast<int>(threadIdx.x % 32);
  const int groups = kGemvWarps / split_k;  // row groups per block
  const int rg = warp / split_k;
  const int64_t row0 = (static_cast<int64_t>(blockIdx.x) * groups + rg) * R;
  const uint8_t* row_ptr[R];
#pragma unroll
  for (int r = 0; r < R; ++r) row_ptr[r] = row0 + r < rows ? w + (row0 + r) * stride : nullptr;
  ActRow act[NT];
#pragma unroll
  for (int t = 0; t < NT; ++t) {
    act[t] = ActRow{x + t * cols, xq == nullptr ? nullptr : xq + t * cols,
                    xd == nullptr ? nullptr : xd + t * (cols / 32)};
  }
  float acc[R][NT] = {};
  cuda::gemv_warp<T, NT, R>(row_ptr, cols, warp % split_k, split_k, NT, act, buf[warp], acc);
  cuda::warp_sums_to_shared<R, NT>(acc, red, warp, lane);
  __syncthreads();
  for (int i = static_cast<int>(threadIdx.x); i < groups * R * NT; i += kGemvWarps * 32) {
    const int g = i / (R * NT);
    const int r = (i / NT) % R;
    const int t = i % NT;
    const int64_t row = (static_cast<int64_t>(blockIdx.x) * groups + g) * R + r;
    if (row < rows) y[t * rows + row] = cuda::split_sum<R, NT>(red, g, r, t, split_k);
  }
}

template <DType T, int NT>
void launch_typed(const WeightMatrix& w, const float* x, const int8_t* xq, const float* xd,
                  float* y, cudaStream_t stream) {
  constexpr int R = cuda_plan::gemv_rows_per_warp(T, NT);
  const int split_k = cuda_plan::gemv_split_k(T, w.cols);
  const int64_t rows_per_block = cuda_plan::gemv_rows_per_block(T, NT, w.cols);
  const int64_t blocks = (w.rows + rows_per_block - 1) / rows_per_block;
  gemv_kernel<T, NT, R><<<static_cast<unsigned>(blocks), kGemvWarps * 32, 0, stream>>>(
      static_cast<const uint8_t*>(w.data), w.rows, w.cols, w.row_stride, x, xq,
      reinterpret_cast<const float2*>(xd), y, split_k);
}

template <DType T>
void launch_tokens(const WeightMatrix& w, const float* x, const int8_t* xq, const float* xd,
                   int64_t n_tokens, float* y, cudaStream_t stream) {
  switch (n_tokens) {
    case 1:
      return launch_typed<T, 1>(w, x, xq, xd, y, stream);
    case 2:
      return launch_typed<T, 2>(w, x, xq, xd, y, stream);
    case 3:
      return launch_typed<T, 3>(w, x, xq, xd, y, stream);
    case 4:
      return launch_typed<T, 4>(w, x, xq, xd, y, stream);
    case 5:
      return launch_typed<T, 5>(w, x, xq, xd, y, stream);
    case 6:
      return launch_typed<T, 6>(w, x, xq, xd, y, stream);
    case 7:
      return launch_typed<T, 7>(w, x, xq, xd, y, stream);
    case 8:
      return launch_typed<T, 8>(w, x, xq, xd, y, stream);
    default:
      MOERUN_CHECK(n_tokens >= 1 && n_tokens <= cuda_plan::kMaxGemvTokens);
  }
}

}  // namespace

void launch_gemv_cuda(const WeightMatrix& w, const float* x, const int8_t* xq, const float* xd,
                      int64_t n_tokens, float* y, cudaStream_t stream) {
  if (w.rows == 0 || n_tokens == 0) return;
  switch (w.type) {
    case DType::F32:
      launch_tokens<DType::F32>(w, x, xq, xd, n_tokens, y, stream);
      break;
    case DType::F16:
      launch_tokens<DType::F16>(w, x, xq, xd, n_tokens, y, stream);
      break;
    case DType::BF16:
      launch_tokens<DType::BF16>(w, x, xq, xd, n_tokens, y, stream);
      break;
    case DType::Q8_0:
      launch_tokens<DType::Q8_0>(w, x, xq, xd, n_tokens, y, stream);
      break;
    case DType::Q4_0:
      launch_tokens<DType::Q4_0>(w, x, xq, xd, n_tokens, y, stream);
      break;
    case DType::Q4_K:
      launch_tokens<DType::Q4_K>(w, x, xq, xd, n_tokens, y, stream);
      break;
    case DType::Q5_K:
      launch_tokens<DType::Q5_K>(w, x, xq, xd, n_tokens, y, stream);
      break;
    case DType::Q6_K:
      launch_tokens<DType::Q6_K>(w, x, xq, xd, n_tokens, y, stream);
      break;
    default:
      MOERUN_CHECK(cuda_plan::gpu_matmul_supports(w.type));
  }
  MOERUN_CUDA_CHECK_LAUNCH();
}

}  // namespace moerun
