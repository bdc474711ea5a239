#include "ops/cuda/dequantize.h"

#include <cuda_bf16.h>

#include "ops/cuda/block_decode.cuh"
#include "ops/cuda/cuda_check.cuh"

namespace moerun {
namespace {

using cuda::BlockFormat;
using cuda::Group32;

// Each thread writes one group of 32 consecutive weights (a Q8_0/Q4_0 block, or 32 weights of a
// K-format super-block) of a packed array of blocks.
template <DType T>
__global__ void dequantize_groups(const uint8_t* blocks, float* dst, int64_t groups) {
  constexpr int kGroupsPerBlock = BlockFormat<T>::kElems / 32;
  const int64_t g = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (g >= groups) return;
  Group32 w;
  cuda::decode_group32<T>(blocks + (g / kGroupsPerBlock) * BlockFormat<T>::kBytes,
                          static_cast<int>(g % kGroupsPerBlock), &w);
#pragma unroll
  for (int l = 0; l < 32; ++l) dst[g * 32 + l] = cuda::group_weight(w, l);
}

template <DType T>
__global__ void convert_float_format(const uint8_t* src, float* dst, int64_t n) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) dst[i] = cuda::load_float_elem<T>(src, i);
}

// One thread per group of 32 weights of rows [0, rows) at `data` (rows `stride` bytes apart):
// writes 32 bf16 (64 bytes) of the packed [rows, groups_per_row * 32] output.
template <DType T>
__global__ void dequantize_rows_bf16_groups(const uint8_t* data, int64_t stride,
                                            int64_t groups_per_row, int64_t groups, uint4* dst) {
  constexpr int kGroupsPerBlock = BlockFormat<T>::kElems / 32;
  const int64_t g = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (g >= groups) return;
  const int64_t row = g / groups_per_row;
  const int64_t j = g % groups_per_row;
  Group32 w;
  cuda::decode_group32<T>(data + row * stride + (j / kGroupsPerBlock) * BlockFormat<T>::kBytes,
                          static_cast<int>(j % kGroupsPerBlock), &w);
  uint32_t packed[16];  // [16] pairs of bf16
#pragma unroll
  for (int p = 0; p < 16; ++p) {
    const __nv_bfloat162 v =
        __floats2bfloat162_rn(cuda::group_weight(w, 2 * p), cuda::group_weight(w, 2 * p + 1));
    packed[p] = *reinterpret_cast<const uint32_t*>(&v);
  }
  uint4* out = dst + g * 4;  // groups are 64 bytes apart in the packed output
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    out[k] = make_uint4(packed[4 * k], packed[4 * k + 1], packed[4 * k + 2], packed[4 * k + 3]);
  }
}

// One thread per weight of rows [0, rows) of a float format.
template <DType T>
__global__ void convert_rows_bf16(const uint8_t* data, int64_t stride, int64_t cols, int64_t n,
                                  __nv_bfloat16* dst) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const int64_t row = i / cols;
  dst[i] = __float2bfloat16_rn(cuda::load_float_elem<T>(data + row * stride, i % cols));
}

__global__ void f32_to_bf16(const float* src, __nv_bfloat16* dst, int64_t n) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) dst[i] = __float2bfloat16_rn(src[i]);
}

unsigned grid_for(int64_t threads, int block) {
  return static_cast<unsigned>((threads + block - 1) / block);
}

constexpr int kThreads = 256;

template <DType T>
void launch_groups(const void* src, float* dst, int64_t n, cudaStream_t stream) {
  const int64_t groups = n / 32;
  dequantize_groups<T><<<grid_for(groups, kThreads), kThreads, 0, stream>>>(
      static_cast<const uint8_t*>(src), dst, groups);
}

template <DType T>
void launch_rows_bf16(const WeightMatrix& w, int64_t row_begin, int64_t row_count, uint16_t* dst,
                      cudaStream_t stream) {
  const auto* data = static_cast<const uint8_t*>(w.data) + row_begin * w.row_stride;
  if constexpr (T == DType::F32 || T == DType::F16 || T == DType::BF16) {
    const int64_t n = row_count * w.cols;
    convert_rows_bf16<T><<<grid_for(n, kThreads), kThreads, 0, stream>>>(
        data, w.row_stride, w.cols, n, reinterpret_cast<__nv_bfloat16*>(dst));
  } else {
    const int64_t groups = row_count * (w.cols / 32);
    dequantize_rows_bf16_groups<T><<<grid_for(groups, kThreads), kThreads, 0, stream>>>(
        data, w.row_stride, w.cols / 32, groups, reinterpret_cast<uint4*>(dst));
  }
}

}  // namespace

void dequantize_cuda(DType type, const void* src, float* dst, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  const auto* bytes = static_cast<const uint8_t*>(src);
  switch (type) {
    case DType::F32:
      MOERUN_CUDA_CHECK(
          cudaMemcpyAsync(dst, src, static_cast<size_t>(n) * 4, cudaMemcpyDeviceToDevice, stream));
      return;
    case DType::F16:
      convert_float_format<DType::F16>
          <<<grid_for(n, kThreads), kThreads, 0, stream>>>(bytes, dst, n);
      break;
    case DType::BF16:
      convert_float_format<DType::BF16>
          <<<grid_for(n, kThreads), kThreads, 0, stream>>>(bytes, dst, n);
      break;
    case DType::Q8_0:
      launch_groups<DType::Q8_0>(src, dst, n, stream);
      break;
    case DType::Q4_0:
      launch_groups<DType::Q4_0>(src, dst, n, stream);
      break;
    case DType::Q4_K:
      launch_groups<DType::Q4_K>(src, dst, n, stream);
      break;
    case DType::Q5_K:
      launch_groups<DType::Q5_K>(src, dst, n, stream);
      break;
    case DType::Q6_K:
      launch_groups<DType::Q6_K>(src, dst, n, stream);
      break;
    default:
      fail("dequantize_cuda: type {} is not supported on the GPU", dtype_name(type));
  }
  MOERUN_CUDA_CHECK_LAUNCH();
}

void dequantize_rows_bf16_cuda(const WeightMatrix& w, int64_t row_begin, int64_t row_count,
                               uint16_t* dst, cudaStream_t stream) {
  MOERUN_CHECK(row_begin >= 0 && row_count >= 0 && row_begin + row_count <= w.rows);
  if (row_count == 0 || w.cols == 0) return;
  switch (w.type) {
    case DType::F32:
      launch_rows_bf16<DType::F32>(w, row_begin, row_count, dst, stream);
      break;
    case DType::F16:
      launch_rows_bf16<DType::F16>(w, row_begin, row_count, dst, stream);
      break;
    case DType::BF16:
      launch_rows_bf16<DType::BF16>(w, row_begin, row_count, dst, stream);
      break;
    case DType::Q8_0:
      launch_rows_bf16<DType::Q8_0>(w, row_begin, row_count, dst, stream);
      break;
    case DType::Q4_0:
      launch_rows_bf16<DType::Q4_0>(w, row_begin, row_count, dst, stream);
      break;
    case DType::Q4_K:
      launch_rows_bf16<DType::Q4_K>(w, row_begin, row_count, dst, stream);
      break;
    case DType::Q5_K:
      launch_rows_bf16<DType::Q5_K>(w, row_begin, row_count, dst, stream);
      break;
    case DType::Q6_K:
      launch_rows_bf16<DType::Q6_K>(w, row_begin, row_count, dst, stream);
      break;
    default:
      fail("dequantize_rows_bf16_cuda: type {} is not supported on the GPU", dtype_name(w.type));
  }
  MOERUN_CUDA_CHECK_LAUNCH();
}

void convert_f32_to_bf16_cuda(const float* src, uint16_t* dst, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  f32_to_bf16<<<grid_for(n, kThreads), kThreads, 0, stream>>>(
      src, reinterpret_cast<__nv_bfloat16*>(dst), n);
  MOERUN_CUDA_CHECK_LAUNCH();
}

}  // namespace moerun
