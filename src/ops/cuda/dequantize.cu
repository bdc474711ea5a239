#include "ops/cuda/dequantize.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "core/blocks.h"
#include "ops/cuda/cuda_check.cuh"

namespace moerun {
namespace {

__device__ inline float half_bits_to_float(uint16_t h) {
  return __half2float(__ushort_as_half(h));
}

// Each thread writes one group of 32 consecutive weights: a Q8_0/Q4_0 block, or one sub-block of
// 32 of a K-format super-block (Q6_K: two sub-blocks of 16 with their own scales).
__global__ void dequantize_q8_0(const BlockQ8_0* blocks, float* dst, int64_t groups) {
  const int64_t g = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (g >= groups) return;
  const BlockQ8_0& b = blocks[g];
  const float d = half_bits_to_float(b.d);
  for (int i = 0; i < 32; ++i) dst[g * 32 + i] = d * static_cast<float>(b.qs[i]);
}

__global__ void dequantize_q4_0(const BlockQ4_0* blocks, float* dst, int64_t groups) {
  const int64_t g = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (g >= groups) return;
  const BlockQ4_0& b = blocks[g];
  const float d = half_bits_to_float(b.d);
  for (int i = 0; i < 16; ++i) {
    dst[g * 32 + i] = d * static_cast<float>((b.qs[i] & 15) - 8);
    dst[g * 32 + 16 + i] = d * static_cast<float>((b.qs[i] >> 4) - 8);
  }
}

__global__ void dequantize_q4_k(const BlockQ4_K* blocks, float* dst, int64_t groups) {
  const int64_t g = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (g >= groups) return;
  const BlockQ4_K& b = blocks[g / 8];
  const int j = static_cast<int>(g % 8);  // sub-block
  uint8_t sc, m;
  unpack_scale_min_k4(j, b.scales, &sc, &m);
  const float scale = half_bits_to_float(b.d) * sc;
  const float min = half_bits_to_float(b.dmin) * m;
  const uint8_t* q = b.qs + 32 * (j / 2);
  const int shift = 4 * (j % 2);
  for (int l = 0; l < 32; ++l) dst[g * 32 + l] = scale * ((q[l] >> shift) & 15) - min;
}

__global__ void dequantize_q5_k(const BlockQ5_K* blocks, float* dst, int64_t groups) {
  const int64_t g = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (g >= groups) return;
  const BlockQ5_K& b = blocks[g / 8];
  const int j = static_cast<int>(g % 8);
  uint8_t sc, m;
  unpack_scale_min_k4(j, b.scales, &sc, &m);
  const float scale = half_bits_to_float(b.d) * sc;
  const float min = half_bits_to_float(b.dmin) * m;
  const uint8_t* q = b.qs + 32 * (j / 2);
  const int shift = 4 * (j % 2);
  for (int l = 0; l < 32; ++l) {
    const int v = ((q[l] >> shift) & 15) | (((b.qh[l] >> j) & 1) << 4);
    dst[g * 32 + l] = scale * v - min;
  }
}

__global__ void dequantize_q6_k(const BlockQ6_K* blocks, float* dst, int64_t groups) {
  const int64_t g = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (g >= groups) return;
  const BlockQ6_K& b = blocks[g / 8];
  const int j = static_cast<int>(g % 8);  // group of 32 within the super-block
  const int half = j / 4;                 // which 128-weight half
  const int quarter = j % 4;              // weights l + 32 * quarter of the half, l = 0..31
  const uint8_t* ql = b.ql + 64 * half;
  const uint8_t* qh = b.qh + 32 * half;
  const float d = half_bits_to_float(b.d);
  for (int l = 0; l < 32; ++l) {
    const int low =
        quarter < 2 ? (ql[l + 32 * (quarter % 2)] & 15) : (ql[l + 32 * (quarter % 2)] >> 4);
    const int high = (qh[l] >> (2 * quarter)) & 3;
    const int q = (low | (high << 4)) - 32;
    const float s = static_cast<float>(b.scales[8 * half + l / 16 + 2 * quarter]);
    dst[g * 32 + l] = d * s * static_cast<float>(q);
  }
}

__global__ void convert_f16(const uint16_t* src, float* dst, int64_t n) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) dst[i] = half_bits_to_float(src[i]);
}

__global__ void convert_bf16(const uint16_t* src, float* dst, int64_t n) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) dst[i] = __uint_as_float(static_cast<uint32_t>(src[i]) << 16);
}

unsigned grid_for(int64_t threads, int block) {
  return static_cast<unsigned>((threads + block - 1) / block);
}

}  // namespace

void dequantize_cuda(DType type, const void* src, float* dst, int64_t n, cudaStream_t stream) {
  constexpr int kThreads = 256;
  const int64_t groups = n / 32;
  switch (type) {
    case DType::F32:
      MOERUN_CUDA_CHECK(
          cudaMemcpyAsync(dst, src, static_cast<size_t>(n) * 4, cudaMemcpyDeviceToDevice, stream));
      return;
    case DType::F16:
      convert_f16<<<grid_for(n, kThreads), kThreads, 0, stream>>>(static_cast<const uint16_t*>(src),
                                                                  dst, n);
      break;
    case DType::BF16:
      convert_bf16<<<grid_for(n, kThreads), kThreads, 0, stream>>>(
          static_cast<const uint16_t*>(src), dst, n);
      break;
    case DType::Q8_0:
      dequantize_q8_0<<<grid_for(groups, kThreads), kThreads, 0, stream>>>(
          static_cast<const BlockQ8_0*>(src), dst, groups);
      break;
    case DType::Q4_0:
      dequantize_q4_0<<<grid_for(groups, kThreads), kThreads, 0, stream>>>(
          static_cast<const BlockQ4_0*>(src), dst, groups);
      break;
    case DType::Q4_K:
      dequantize_q4_k<<<grid_for(groups, kThreads), kThreads, 0, stream>>>(
          static_cast<const BlockQ4_K*>(src), dst, groups);
      break;
    case DType::Q5_K:
      dequantize_q5_k<<<grid_for(groups, kThreads), kThreads, 0, stream>>>(
          static_cast<const BlockQ5_K*>(src), dst, groups);
      break;
    case DType::Q6_K:
      dequantize_q6_k<<<grid_for(groups, kThreads), kThreads, 0, stream>>>(
          static_cast<const BlockQ6_K*>(src), dst, groups);
      break;
    default:
      fail("dequantize_cuda: type {} is not supported on the GPU", dtype_name(type));
  }
  MOERUN_CUDA_CHECK_LAUNCH();
}

}  // namespace moerun
