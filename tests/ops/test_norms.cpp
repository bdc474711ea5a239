// RMSNorm, gated RMSNorm, L2 norm and the activations against double-precision scalar references.
#include "ops/cpu/norms.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "ops/cpu/activations.h"
#include "ops_test_util.h"

namespace moerun {
namespace {

using test::max_abs_diff;
using test::random_vector;

double silu_ref(double x) {
  return x / (1.0 + std::exp(-x));
}

// Tolerance: 2e-6 relative to the output's scale (f32 arithmetic against a double reference).
constexpr double kRel = 2e-6;

TEST(Norms, RmsNormMatchesReference) {
  for (int64_t dim : {1, 7, 64, 100, 2048}) {
    const int64_t rows = 5;
    const float eps = 1e-6f;
    const auto x = random_vector(rows * dim, 1, 3.0f);
    const auto w = random_vector(dim, 2, 0.2f, 1.0f);
    std::vector<float> y(x.size());
    rms_norm(x.data(), w.data(), rows, dim, eps, y.data());
    std::vector<double> ref(x.size());
    for (int64_t r = 0; r < rows; ++r) {
      double ss = 0;
      for (int64_t i = 0; i < dim; ++i) ss += double(x[r * dim + i]) * x[r * dim + i];
      const double s = 1.0 / std::sqrt(ss / double(dim) + eps);
      for (int64_t i = 0; i < dim; ++i) ref[r * dim + i] = x[r * dim + i] * s * w[i];
    }
    EXPECT_LE(max_abs_diff(y, ref), kRel * test::max_abs(ref)) << dim;
    // In place gives the same bits.
    std::vector<float> inplace = x;
    rms_norm(inplace.data(), w.data(), rows, dim, eps, inplace.data());
    EXPECT_EQ(inplace, y);
  }
}

TEST(Norms, EpsilonMattersForTinyRows) {
  const std::vector<float> x(16, 1e-4f), w(16, 1.0f);
  std::vector<float> y(16);
  rms_norm(x.data(), w.data(), 1, 16, 1e-6f, y.data());
  // mean(x^2) = 1e-8, so y = 1e-4 / sqrt(1e-8 + 1e-6).
  EXPECT_NEAR(y[0], 1e-4 / std::sqrt(1.01e-6), 1e-6);
}

TEST(Norms, GatedRmsNormMatchesReference) {
  const int64_t rows = 6, dim = 128;
  const float eps = 1e-6f;
  const auto o = random_vector(rows * dim, 3, 0.5f);
  const auto z = random_vector(rows * dim, 4, 2.0f);
  const auto w = random_vector(dim, 5, 0.3f, 1.0f);
  std::vector<float> y(o.size());
  gated_rms_norm(o.data(), z.data(), w.data(), rows, dim, eps, y.data());
  std::vector<double> ref(o.size());
  for (int64_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (int64_t i = 0; i < dim; ++i) ss += double(o[r * dim + i]) * o[r * dim + i];
    const double s = 1.0 / std::sqrt(ss / dim + eps);
    for (int64_t i = 0; i < dim; ++i) {
      ref[r * dim + i] = w[i] * (o[r * dim + i] * s) * silu_ref(z[r * dim + i]);
    }
  }
  EXPECT_LE(max_abs_diff(y, ref), kRel * test::max_abs(ref));
}

TEST(Norms, L2NormMatchesReference) {
  const int64_t rows = 4, dim = 128;
  auto x = random_vector(rows * dim, 6, 4.0f);
  std::vector<double> ref(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (int64_t i = 0; i < dim; ++i) ss += double(x[r * dim + i]) * x[r * dim + i];
    for (int64_t i = 0; i < dim; ++i) ref[r * dim + i] = x[r * dim + i] / std::sqrt(ss + 1e-6);
  }
  l2_norm(x.data(), rows, dim, 1e-6f);
  EXPECT_LE(max_abs_diff(x, ref), kRel);
  // A zero row stays zero (the epsilon keeps it finite).
  std::vector<float> zero(8, 0.0f);
  l2_norm(zero.data(), 1, 8, 1e-6f);
  for (float v : zero) EXPECT_EQ(v, 0.0f);
}

TEST(Activations, MatchReference) {
  const auto g = random_vector(1000, 7, 5.0f);
  const auto u = random_vector(1000, 8, 1.0f);
  std::vector<float> out(1000);
  silu_mul(g.data(), u.data(), 1000, out.data());
  for (size_t i = 0; i < g.size(); ++i) {
    EXPECT_NEAR(out[i], silu_ref(g[i]) * u[i], 2e-6 * (1 + std::abs(silu_ref(g[i]) * u[i])));
  }
  std::vector<float> x = u;
  mul_sigmoid(x.data(), g.data(), 1000);
  for (size_t i = 0; i < g.size(); ++i) {
    EXPECT_NEAR(x[i], u[i] / (1.0 + std::exp(-double(g[i]))), 2e-6);
  }
  EXPECT_FLOAT_EQ(softplus(0.0f), std::log(2.0f));
  EXPECT_FLOAT_EQ(softplus(30.0f), 30.0f);  // linear above the threshold, like torch
  EXPECT_NEAR(softplus(-5.0f), std::log1p(std::exp(-5.0)), 1e-9);
  EXPECT_EQ(silu(-200.0f), -0.0f);  // no NaN for large negative inputs
  EXPECT_EQ(sigmoid(-200.0f), 0.0f);
}

}  // namespace
}  // namespace moerun
