#include <cmath>
#include <cstring>

#include "core/half.h"
#include "core/quant_fit.h"
#include "core/quant_formats.h"

namespace moerun {

void dequantize_q4_0(const void* src, float* dst, int64_t n_blocks) {
  const auto* bytes = static_cast<const uint8_t*>(src);
  for (int64_t b = 0; b < n_blocks; ++b) {
    BlockQ4_0 block;
    std::memcpy(&block, bytes + b * sizeof(BlockQ4_0), sizeof(BlockQ4_0));
    const float d = fp16_to_f32(block.d);
    float* y = dst + b * kBlock32;
    for (int i = 0; i < kBlock32 / 2; ++i) {
      y[i] = ((block.qs[i] & 15) - 8) * d;
      y[i + kBlock32 / 2] = ((block.qs[i] >> 4) - 8) * d;
    }
  }
}

void quantize_q4_0(const float* src, void* dst, int64_t n_blocks) {
  auto* bytes = static_cast<uint8_t*>(dst);
  for (int64_t b = 0; b < n_blocks; ++b) {
    const float* x = src + b * kBlock32;
    const float scale = fit_signed_scale(x, kBlock32, 8);
    BlockQ4_0 block;
    block.d = f32_to_fp16(std::fmax(-kFp16Max, std::fmin(scale, kFp16Max)));
    const float d = fp16_to_f32(block.d);
    uint8_t q[kBlock32];  // [32] nibbles 0..15
    for (int i = 0; i < kBlock32; ++i) {
      q[i] = static_cast<uint8_t>(d != 0.0f ? round_clamped(x[i] / d, -8, 7) + 8 : 8);
    }
    for (int i = 0; i < kBlock32 / 2; ++i) {
      block.qs[i] = static_cast<uint8_t>(q[i] | (q[i + kBlock32 / 2] << 4));
    }
    std::memcpy(bytes + b * sizeof(BlockQ4_0), &block, sizeof(BlockQ4_0));
  }
}

}  // namespace moerun
