#include "ops/cpu/rope.h"

#include <cmath>

#include "core/error.h"

namespace moerun {

void rope_inv_freq(float theta, int64_t rope_dims, float* inv_freq) {
  for (int64_t i = 0; i < rope_dims / 2; ++i) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(rope_dims);
    inv_freq[i] = 1.0f / std::pow(theta, exponent);
  }
}

void rope_neox(float* x, int64_t n_tokens, int64_t n_heads, int64_t head_dim, int64_t rope_dims,
               const int64_t* positions, const float* inv_freq) {
  MOERUN_CHECK(rope_dims % 2 == 0 && rope_dims <= head_dim && rope_dims <= kMaxRopeDims);
  const int64_t half = rope_dims / 2;
  float cos_v[kMaxRopeDims / 2];
  float sin_v[kMaxRopeDims / 2];
  for (int64_t t = 0; t < n_tokens; ++t) {
    const float pos = static_cast<float>(positions[t]);
    for (int64_t i = 0; i < half; ++i) {
      const float angle = pos * inv_freq[i];
      cos_v[i] = std::cos(angle);
      sin_v[i] = std::sin(angle);
    }
    for (int64_t h = 0; h < n_heads; ++h) {
      float* a = x + (t * n_heads + h) * head_dim;
      float* b = a + half;
      for (int64_t i = 0; i < half; ++i) {
        const float ai = a[i];
        const float bi = b[i];
        a[i] = ai * cos_v[i] - bi * sin_v[i];
        b[i] = bi * cos_v[i] + ai * sin_v[i];
      }
    }
  }
}

}  // namespace moerun
