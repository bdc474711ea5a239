// Q6_K: super-blocks of sixteen 16-weight sub-blocks on signed 6-bit grids with int8 scales.
#include <cmath>
#include <cstring>

#include "core/half.h"
#include "core/quant_fit.h"
#include "core/quant_formats.h"

namespace moerun {

void dequantize_q6_k(const void* src, float* dst, int64_t n_blocks) {
  const auto* bytes = static_cast<const uint8_t*>(src);
  for (int64_t b = 0; b < n_blocks; ++b) {
    BlockQ6_K block;
    std::memcpy(&block, bytes + b * sizeof(BlockQ6_K), sizeof(BlockQ6_K));
    const float d = fp16_to_f32(block.d);
    for (int half = 0; half < 2; ++half) {  // 128 weights: 64 bytes of ql, 32 of qh, 8 scales
      const uint8_t* ql = block.ql + 64 * half;
      const uint8_t* qh = block.qh + 32 * half;
      const int8_t* sc = block.scales + 8 * half;
      float* y = dst + b * kBlockK + 128 * half;
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = ((ql[l] & 15) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 15) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l] = d * sc[is + 0] * q1;
        y[l + 32] = d * sc[is + 2] * q2;
        y[l + 64] = d * sc[is + 4] * q3;
        y[l + 96] = d * sc[is + 6] * q4;
      }
    }
  }
}

void quantize_q6_k(const float* src, void* dst, int64_t n_blocks) {
  auto* bytes = static_cast<uint8_t*>(dst);
  constexpr int kSubBlocks = kBlockK / 16;
  for (int64_t b = 0; b < n_blocks; ++b) {
    const float* x = src + b * kBlockK;
    float scales[kSubBlocks];  // [16] fitted sub-block scales (signed)
    float max_scale = 0.0f;    // the scale of largest magnitude, with its sign
    for (int j = 0; j < kSubBlocks; ++j) {
      scales[j] = fit_signed_scale(x + 16 * j, 16, 32);
      if (std::fabs(scales[j]) > std::fabs(max_scale)) max_scale = scales[j];
    }
    BlockQ6_K block;
    // The largest sub-block scale maps to -128, using the full int8 range.
    block.d = f32_to_fp16(std::fmax(-kFp16Max, std::fmin(-max_scale / 128.0f, kFp16Max)));
    const float d = fp16_to_f32(block.d);
    uint8_t levels[kBlockK];  // [256] quants 0..63 (value + 32)
    for (int j = 0; j < kSubBlocks; ++j) {
      block.scales[j] =
          static_cast<int8_t>(d != 0.0f ? round_clamped(scales[j] / d, -128, 127) : 0);
      const float ds = d * block.scales[j];
      for (int i = 0; i < 16; ++i) {
        const float v = x[16 * j + i];
        levels[16 * j + i] =
            static_cast<uint8_t>(ds != 0.0f ? round_clamped(v / ds, -32, 31) + 32 : 32);
      }
    }
    for (int half = 0; half < 2; ++half) {
      const uint8_t* q = levels + 128 * half;
      uint8_t* ql = block.ql + 64 * half;
      uint8_t* qh = block.qh + 32 * half;
      for (int l = 0; l < 32; ++l) {
        const int q1 = q[l], q2 = q[l + 32], q3 = q[l + 64], q4 = q[l + 96];
        ql[l] = static_cast<uint8_t>((q1 & 15) | ((q3 & 15) << 4));
        ql[l + 32] = static_cast<uint8_t>((q2 & 15) | ((q4 & 15) << 4));
        qh[l] = static_cast<uint8_t>((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) |
                                     ((q4 >> 4) << 6));
      }
    }
    std::memcpy(bytes + b * sizeof(BlockQ6_K), &block, sizeof(BlockQ6_K));
  }
}

}  // namespace moerun
