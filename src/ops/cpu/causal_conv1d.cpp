#include "ops/cpu/causal_conv1d.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "ops/cpu/activations.h"

namespace moerun {

void causal_conv1d_silu(const float* x, int64_t n, int64_t channels, const float* w, int64_t kernel,
                        float* state, float* y) {
  MOERUN_CHECK(kernel >= 1);
  const int64_t hist = kernel - 1;
  for (int64_t t = 0; t < n; ++t) {
    float* yr = y + t * channels;
    std::fill(yr, yr + channels, 0.0f);
    for (int64_t j = 0; j < kernel; ++j) {
      const int64_t s = t - hist + j;
      const float* in = s >= 0 ? x + s * channels : state + (hist + s) * channels;
      const float* wj = w + j * channels;
      for (int64_t c = 0; c < channels; ++c) yr[c] += wj[c] * in[c];
    }
    for (int64_t c = 0; c < channels; ++c) yr[c] = silu(yr[c]);
  }
  // The new state: the last `hist` rows of [state; x].
  const size_t row = static_cast<size_t>(channels) * sizeof(float);
  if (n >= hist) {
    if (hist > 0) std::memcpy(state, x + (n - hist) * channels, row * static_cast<size_t>(hist));
  } else if (n > 0) {
    std::memmove(state, state + n * channels, row * static_cast<size_t>(hist - n));
    std::memcpy(state + (hist - n) * channels, x, row * static_cast<size_t>(n));
  }
}

}  // namespace moerun
