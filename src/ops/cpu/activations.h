// Elementwise activations of the model ops: SiLU, sigmoid, softplus, and the SwiGLU product.
#pragma once

#include <cmath>
#include <cstdint>

namespace moerun {

// x * sigmoid(x), computed as x / (1 + exp(-x)) like torch's CPU kernel.
inline float silu(float x) {
  return x / (1.0f + std::exp(-x));
}

// 1 / (1 + exp(-x)).
inline float sigmoid(float x) {
  return 1.0f / (1.0f + std::exp(-x));
}

// log(1 + exp(x)), linear above 20 like torch.nn.functional.softplus (beta 1, threshold 20).
inline float softplus(float x) {
  return x > 20.0f ? x : std::log1p(std::exp(x));
}

// out [n] = silu(gate [n]) * up [n]; out may equal gate or up.
void silu_mul(const float* gate, const float* up, int64_t n, float* out);

// x [n] *= sigmoid(gate [n]), in place (the attention output gate).
void mul_sigmoid(float* x, const float* gate, int64_t n);

}  // namespace moerun
