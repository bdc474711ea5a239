#include "ops/cpu/causal_conv1d.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "ops/cpu/activations.h"

namespace moerun {

void causal_conv1d_silu(const float* x, int64_t n, int64_t channels, const float* w, int64_t kernel,
                        float* state, float* y) {
  causal_conv1d_silu_channels(x, n, channels, w, kernel, state, y, 0, channels);
}

void causal_conv1d_silu_channels(const float* x, int64_t n, int64_t channels, const float* w,
                                 int64_t kernel, float* state, float* y, int64_t c_begin,
                                 int64_t c_end) {
  MOERUN_CHECK(kernel >= 1 && 0 <= c_begin && c_begin <= c_end && c_end <= channels);
  const int64_t hist = kernel - 1;
  const int64_t width = c_end - c_begin;
  for (int64_t t = 0; t < n; ++t) {
    float* yr = y + t * channels + c_begin;
    std::fill(yr, yr + width, 0.0f);
    for (int64_t j = 0; j < kernel; ++j) {
      const int64_t s = t - hist + j;
      const float* in = (s >= 0 ? x + s * channels : state + (hist + s) * channels) + c_begin;
      const float* wj = w + j * channels + c_begin;
      for (int64_t c = 0; c < width; ++c) yr[c] += wj[c] * in[c];
    }
    for (int64_t c = 0; c < width; ++c) yr[c] = silu(yr[c]);
  }
  // The new state: the last `hist` rows of [state; x], this channel slice only. Row r reads row
  // r + n of the old state (later rows first overwritten never), so the forward copy is safe.
  const size_t bytes = static_cast<size_t>(width) * sizeof(float);
  for (int64_t r = 0; r < hist; ++r) {
    const int64_t s = r + n;  // index into [state (hist rows); x (n rows)]
    const float* src = s < hist ? state + s * channels : x + (s - hist) * channels;
    if (s == r) break;  // n == 0: the state is unchanged
    std::memmove(state + r * channels + c_begin, src + c_begin, bytes);
  }
}

}  // namespace moerun
