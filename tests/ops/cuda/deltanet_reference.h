// CPU reference of the Gated DeltaNet step after the causal conv, shared by the GPU DeltaNet tests:
// L2 norms of q and k, gates per value head, the recurrent delta rule and the gated RMSNorm.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "ops/cpu/activations.h"
#include "ops/cpu/gated_delta_rule.h"
#include "ops/cpu/norms.h"
#include "ops/cuda/deltanet_cuda.h"

namespace moerun::test {

// L2-normalizes q and k of every token of y in place, q also scaled by 1 / sqrt(k_dim).
inline void reference_qk_norms(const DeltaNetShape& s, int64_t count,
                               float* y /* [count, channels] conv + SiLU output */) {
  const int64_t ch = s.channels();
  const float q_scale = 1.0f / std::sqrt(static_cast<float>(s.k_dim));
  for (int64_t t = 0; t < count; ++t) {
    for (int64_t g = 0; g < s.k_heads; ++g) {
      float* q = y + t * ch + g * s.k_dim;
      l2_norm(q, 1, s.k_dim, 1e-6f);
      for (int64_t i = 0; i < s.k_dim; ++i) q[i] *= q_scale;
      l2_norm(y + t * ch + s.key_width() + g * s.k_dim, 1, s.k_dim, 1e-6f);
    }
  }
}

// CPU reference of tokens [begin, begin + count) from their conv output y (normalized in place):
// q/k norms, then per value head the gates, the delta rule on `ssm` and gated RMSNorm into core.
inline void reference_gated_delta_rule(
    const DeltaNetShape& s, float* y,   // [count, channels] conv + SiLU output of these tokens
    const std::vector<float>& ba,       // [n, 2 v_heads]
    const std::vector<float>& z,        // [n, value_width]
    const std::vector<float>& dt_bias,  // [v_heads]
    const std::vector<float>& a,        // [v_heads] -exp(A_log) (times a decay scale)
    const std::vector<float>& norm_w,   // [v_dim]
    int64_t begin, int64_t count,
    float* ssm,                // [v_heads, k_dim, v_dim] the layer's recurrent state, updated
    std::vector<float>& core)  // [n, value_width] rows [begin, begin + count) written
{
  const int64_t ch = s.channels(), vw = s.value_width(), r = s.v_heads / s.k_heads;
  reference_qk_norms(s, count, y);
  for (int64_t h = 0; h < s.v_heads; ++h) {
    const int64_t kh = h / r;
    std::vector<float> g(static_cast<size_t>(count)), beta(g.size());
    for (int64_t t = 0; t < count; ++t) {
      const float* bat = ba.data() + (begin + t) * 2 * s.v_heads;
      beta[t] = sigmoid(bat[kh * 2 * r + h % r]);
      g[t] = a[h] * softplus(bat[kh * 2 * r + r + h % r] + dt_bias[h]);
    }
    DeltaRuleInputs d;
    d.q = y + kh * s.k_dim;
    d.k = y + s.key_width() + kh * s.k_dim;
    d.v = y + 2 * s.key_width() + h * s.v_dim;
    d.q_stride = d.k_stride = d.v_stride = ch;
    d.g = g.data();
    d.beta = beta.data();
    float* o = core.data() + begin * vw + h * s.v_dim;
    gated_delta_rule(ssm + h * s.k_dim * s.v_dim, s.k_dim, s.v_dim, count, d, o, vw);
    for (int64_t t = 0; t < count; ++t) {
      gated_rms_norm(o + t * vw, z.data() + (begin + t) * vw + h * s.v_dim, norm_w.data(), 1,
                     s.v_dim, s.rms_eps, o + t * vw);
    }
  }
}

}  // namespace moerun::test
