// Quantization of f32 activations to 8-bit blocks with per-16 sums, shared by every SIMD path.
#include <cmath>

#include "core/error.h"
#include "ops/cpu/matmul_internal.h"

namespace moerun::cpu_matmul {

QuantizedActivations quantize_activations(const float* x, int64_t n_tokens, int64_t cols,
                                          int64_t block, ActivationBuffer& buf) {
  MOERUN_CHECK(block > 0 && block % kSumGroup == 0 && cols % block == 0);
  const int64_t n_blocks = cols / block;
  const size_t n_q = static_cast<size_t>(n_tokens * cols);
  if (buf.q.size() < n_q) buf.q.resize(n_q);
  if (buf.d.size() < static_cast<size_t>(n_tokens * n_blocks)) {
    buf.d.resize(static_cast<size_t>(n_tokens * n_blocks));
  }
  if (buf.sums.size() < n_q / kSumGroup) buf.sums.resize(n_q / kSumGroup);
  for (int64_t i = 0; i < n_tokens * n_blocks; ++i) {
    const float* xb = x + i * block;  // tokens are contiguous rows, so blocks are too
    int8_t* qb = buf.q.data() + i * block;
    float amax = 0.0f;
    for (int64_t j = 0; j < block; ++j) amax = std::fmax(amax, std::fabs(xb[j]));
    const float d = amax / 127.0f;
    const float id = d > 0.0f ? 1.0f / d : 0.0f;
    buf.d[static_cast<size_t>(i)] = d;
    for (int64_t g = 0; g < block / kSumGroup; ++g) {
      int sum = 0;
      for (int64_t j = g * kSumGroup; j < (g + 1) * kSumGroup; ++j) {
        // |x * id| <= 127 up to rounding; the clamp keeps -128 out (the sign trick needs it).
        const float v = std::fmin(127.0f, std::fmax(-127.0f, std::nearbyint(xb[j] * id)));
        qb[j] = static_cast<int8_t>(v);
        sum += qb[j];
      }
      buf.sums[static_cast<size_t>(i * (block / kSumGroup) + g)] = static_cast<int16_t>(sum);
    }
  }
  return QuantizedActivations{block, buf.q.data(), buf.d.data(), buf.sums.data()};
}

}  // namespace moerun::cpu_matmul
