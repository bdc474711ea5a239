#include "core/quant_fit.h"

#include <cmath>
#include <cstring>
#include <limits>

#include "core/error.h"

namespace moerun {

float fit_signed_scale(const float* x, int n, int nmax) {
  float amax = 0.0f;
  float vmax = 0.0f;  // the value of largest magnitude, with its sign
  for (int i = 0; i < n; ++i) {
    const float a = std::fabs(x[i]);
    if (a > amax) {
      amax = a;
      vmax = x[i];
    }
  }
  if (!(amax > 1e-30f)) return 0.0f;
  double best_score = -1.0;
  float best_scale = 0.0f;
  // Stretch the grid so that vmax lands between -(nmax - 0.9) and -(nmax + 0.9) (clipped).
  for (int step = -9; step <= 9; ++step) {
    const float iscale = -(static_cast<float>(nmax) + 0.1f * static_cast<float>(step)) / vmax;
    double sum_lx = 0.0;
    double sum_l2 = 0.0;
    for (int i = 0; i < n; ++i) {
      const int l = round_clamped(iscale * x[i], -nmax, nmax - 1);
      sum_lx += static_cast<double>(x[i]) * l;
      sum_l2 += static_cast<double>(l) * l;
    }
    if (sum_l2 <= 0.0) continue;
    // With the least-squares scale sum_lx / sum_l2, the error is sum x^2 - sum_lx^2 / sum_l2.
    const double score = sum_lx * sum_lx / sum_l2;
    if (score > best_score) {
      best_score = score;
      best_scale = static_cast<float>(sum_lx / sum_l2);
    }
  }
  return best_scale;
}

namespace {

// Least-squares fit of x[n] ~ scale * l[n] + offset with offset <= 0; false when degenerate.
bool fit_levels(const float* x, const int* l, int n, double* scale, double* offset, double* err) {
  double sum_l = 0.0, sum_l2 = 0.0, sum_x = 0.0, sum_x2 = 0.0, sum_xl = 0.0;
  for (int i = 0; i < n; ++i) {
    const double xi = x[i];
    sum_l += l[i];
    sum_l2 += static_cast<double>(l[i]) * l[i];
    sum_x += xi;
    sum_x2 += xi * xi;
    sum_xl += xi * l[i];
  }
  const double det = n * sum_l2 - sum_l * sum_l;
  if (!(det > 0.0)) return false;
  double s = (n * sum_xl - sum_x * sum_l) / det;
  double o = (sum_l2 * sum_x - sum_l * sum_xl) / det;
  if (o > 0.0) {
    o = 0.0;
    s = sum_xl / sum_l2;
  }
  if (!(s > 0.0)) return false;
  // sum (s * l + o - x)^2 expanded in the sums above.
  *err = s * s * sum_l2 + n * o * o + sum_x2 + 2.0 * s * o * sum_l - 2.0 * s * sum_xl -
         2.0 * o * sum_x;
  *scale = s;
  *offset = o;
  return true;
}

}  // namespace

AffineFit fit_affine_grid(const float* x, int n, int nmax, float rmin, float rdelta, int nstep) {
  MOERUN_CHECK(n > 0 && n <= 64);
  float lo = x[0];
  float hi = x[0];
  for (int i = 1; i < n; ++i) {
    lo = std::fmin(lo, x[i]);
    hi = std::fmax(hi, x[i]);
  }
  if (lo > 0.0f) lo = 0.0f;            // the offset is -min_neg <= 0
  if (!(hi > lo)) return {0.0f, -lo};  // constant block (or all zero): the offset alone is exact
  const float range = hi - lo;
  double best_scale = range / static_cast<double>(nmax);
  double best_offset = lo;
  double best_err = std::numeric_limits<double>::infinity();
  int l[64];
  double scale, offset, err;
  for (int step = 0; step <= nstep; ++step) {
    const float iscale =
        (static_cast<float>(nmax) + rmin + rdelta * static_cast<float>(step)) / range;
    for (int i = 0; i < n; ++i) l[i] = round_clamped(iscale * (x[i] - lo), 0, nmax);
    if (fit_levels(x, l, n, &scale, &offset, &err) && err < best_err) {
      best_err = err;
      best_scale = scale;
      best_offset = offset;
    }
  }
  // Refine the best grid: move each weight to its nearest level and refit, while that helps.
  for (int iter = 0; iter < 3 && best_err < std::numeric_limits<double>::infinity(); ++iter) {
    const double inv = 1.0 / best_scale;
    for (int i = 0; i < n; ++i) {
      l[i] = round_clamped(static_cast<float>((x[i] - best_offset) * inv), 0, nmax);
    }
    if (!fit_levels(x, l, n, &scale, &offset, &err) || !(err < best_err)) break;
    best_err = err;
    best_scale = scale;
    best_offset = offset;
  }
  return {static_cast<float>(best_scale), static_cast<float>(-best_offset)};
}

}  // namespace moerun
