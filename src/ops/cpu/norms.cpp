#include "ops/cpu/norms.h"

#include <cmath>

#include "ops/cpu/activations.h"

namespace moerun {

float sum_of_squares(const float* x, int64_t n) {
  constexpr int kLanes = 16;
  float acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int l = 0; l < kLanes; ++l) acc[l] += x[i + l] * x[i + l];
  }
  float tail = 0.0f;
  for (; i < n; ++i) tail += x[i] * x[i];
  for (int width = kLanes / 2; width > 0; width /= 2) {
    for (int l = 0; l < width; ++l) acc[l] += acc[l + width];
  }
  return acc[0] + tail;
}

void rms_norm(const float* x, const float* w, int64_t n_rows, int64_t dim, float eps, float* y) {
  for (int64_t r = 0; r < n_rows; ++r) {
    const float* xr = x + r * dim;
    float* yr = y + r * dim;
    const float mean = sum_of_squares(xr, dim) / static_cast<float>(dim);
    const float scale = 1.0f / std::sqrt(mean + eps);
    for (int64_t i = 0; i < dim; ++i) yr[i] = xr[i] * scale * w[i];
  }
}

void gated_rms_norm(const float* o, const float* z, const float* w, int64_t n_rows, int64_t dim,
                    float eps, float* y) {
  for (int64_t r = 0; r < n_rows; ++r) {
    const float* orow = o + r * dim;
    const float* zrow = z + r * dim;
    float* yr = y + r * dim;
    const float mean = sum_of_squares(orow, dim) / static_cast<float>(dim);
    const float scale = 1.0f / std::sqrt(mean + eps);
    for (int64_t i = 0; i < dim; ++i) yr[i] = w[i] * (orow[i] * scale) * silu(zrow[i]);
  }
}

void l2_norm(float* x, int64_t n_rows, int64_t dim, float eps) {
  for (int64_t r = 0; r < n_rows; ++r) {
    float* xr = x + r * dim;
    const float scale = 1.0f / std::sqrt(sum_of_squares(xr, dim) + eps);
    for (int64_t i = 0; i < dim; ++i) xr[i] *= scale;
  }
}

}  // namespace moerun
