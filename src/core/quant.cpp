#include "core/quant.h"

#include <cstring>

#include "core/error.h"
#include "core/half.h"
#include "core/quant_formats.h"

namespace moerun {
namespace {

// Checks that n is a whole number of blocks of `type`; returns the number of blocks.
int64_t count_blocks(DType type, int64_t n) {
  const DTypeInfo& info = dtype_info(type);
  if (n < 0 || n % info.block_elems != 0) {
    fail("row of {} elements is not a whole number of {} blocks ({} weights each)", n, info.name,
         info.block_elems);
  }
  return n / info.block_elems;
}

}  // namespace

void dequantize_row(DType type, const void* src, float* dst, int64_t n) {
  const int64_t n_blocks = count_blocks(type, n);
  switch (type) {
    case DType::F32:
      std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case DType::F16:
    case DType::BF16: {
      const auto* bytes = static_cast<const uint8_t*>(src);
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, bytes + 2 * i, 2);
        dst[i] = type == DType::F16 ? fp16_to_f32(h) : bf16_to_f32(h);
      }
      return;
    }
    case DType::Q8_0:
      return dequantize_q8_0(src, dst, n_blocks);
    case DType::Q4_0:
      return dequantize_q4_0(src, dst, n_blocks);
    case DType::Q4_K:
      return dequantize_q4_k(src, dst, n_blocks);
    case DType::Q5_K:
      return dequantize_q5_k(src, dst, n_blocks);
    case DType::Q6_K:
      return dequantize_q6_k(src, dst, n_blocks);
    default:
      fail("dequantize_row: type {} is not supported", dtype_name(type));
  }
}

void quantize_row(DType type, const float* src, void* dst, int64_t n) {
  const int64_t n_blocks = count_blocks(type, n);
  switch (type) {
    case DType::F32:
      std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case DType::F16:
    case DType::BF16: {
      auto* bytes = static_cast<uint8_t*>(dst);
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = type == DType::F16 ? f32_to_fp16(src[i]) : f32_to_bf16(src[i]);
        std::memcpy(bytes + 2 * i, &h, 2);
      }
      return;
    }
    case DType::Q8_0:
      return quantize_q8_0(src, dst, n_blocks);
    case DType::Q4_0:
      return quantize_q4_0(src, dst, n_blocks);
    case DType::Q4_K:
      return quantize_q4_k(src, dst, n_blocks);
    case DType::Q5_K:
      return quantize_q5_k(src, dst, n_blocks);
    case DType::Q6_K:
      return quantize_q6_k(src, dst, n_blocks);
    default:
      fail("quantize_row: type {} is not supported", dtype_name(type));
  }
}

}  // namespace moerun
