#include <cmath>
#include <cstring>

#include "core/half.h"
#include "core/quant_fit.h"
#include "core/quant_formats.h"

namespace moerun {

void dequantize_q8_0(const void* src, float* dst, int64_t n_blocks) {
  const auto* bytes = static_cast<const uint8_t*>(src);
  for (int64_t b = 0; b < n_blocks; ++b) {
    BlockQ8_0 block;
    std::memcpy(&block, bytes + b * sizeof(BlockQ8_0), sizeof(BlockQ8_0));
    const float d = fp16_to_f32(block.d);
    float* y = dst + b * kBlock32;
    for (int i = 0; i < kBlock32; ++i) y[i] = block.qs[i] * d;
  }
}

void quantize_q8_0(const float* src, void* dst, int64_t n_blocks) {
  auto* bytes = static_cast<uint8_t*>(dst);
  for (int64_t b = 0; b < n_blocks; ++b) {
    const float* x = src + b * kBlock32;
    float amax = 0.0f;
    for (int i = 0; i < kBlock32; ++i) amax = std::fmax(amax, std::fabs(x[i]));
    BlockQ8_0 block;
    block.d = f32_to_fp16(std::fmin(amax / 127.0f, kFp16Max));
    const float d = fp16_to_f32(block.d);
    for (int i = 0; i < kBlock32; ++i) {
      block.qs[i] = static_cast<int8_t>(d > 0.0f ? round_clamped(x[i] / d, -127, 127) : 0);
    }
    std::memcpy(bytes + b * sizeof(BlockQ8_0), &block, sizeof(BlockQ8_0));
  }
}

}  // namespace moerun
