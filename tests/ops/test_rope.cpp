// Partial NeoX RoPE against a scalar reference that follows transformers' f32 steps.
#include "ops/cpu/rope.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "ops_test_util.h"

namespace moerun {
namespace {

TEST(Rope, InverseFrequencies) {
  std::vector<float> inv(32);
  rope_inv_freq(1e7f, 64, inv.data());
  for (int i = 0; i < 32; ++i) {
    const double ref = 1.0 / std::pow(1e7, 2.0 * i / 64.0);
    EXPECT_NEAR(inv[i], ref, 1e-6 * ref) << i;
  }
  EXPECT_EQ(inv[0], 1.0f);
}

TEST(Rope, PartialNeoxMatchesReference) {
  const int64_t n_tokens = 4, n_heads = 3, head_dim = 32, rope_dims = 8;
  const std::vector<int64_t> positions = {0, 1, 17, 262143};
  std::vector<float> inv(rope_dims / 2);
  rope_inv_freq(1e6f, rope_dims, inv.data());
  const auto x0 = test::random_vector(n_tokens * n_heads * head_dim, 11);
  std::vector<float> x = x0;
  rope_neox(x.data(), n_tokens, n_heads, head_dim, rope_dims, positions.data(), inv.data());
  const int64_t half = rope_dims / 2;
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (int64_t h = 0; h < n_heads; ++h) {
      const float* in = x0.data() + (t * n_heads + h) * head_dim;
      const float* out = x.data() + (t * n_heads + h) * head_dim;
      for (int64_t i = 0; i < half; ++i) {
        // transformers: freqs = f32(position) * inv_freq in f32, then cos/sin.
        const float angle = static_cast<float>(positions[t]) * inv[i];
        const double c = std::cos(double(angle)), s = std::sin(double(angle));
        EXPECT_NEAR(out[i], in[i] * c - in[i + half] * s, 2e-6) << t << " " << h << " " << i;
        EXPECT_NEAR(out[i + half], in[i + half] * c + in[i] * s, 2e-6);
      }
      for (int64_t i = rope_dims; i < head_dim; ++i) EXPECT_EQ(out[i], in[i]);
    }
  }
  // Position 0 is the identity.
  for (int64_t i = 0; i < n_heads * head_dim; ++i) EXPECT_EQ(x[i], x0[i]);
}

TEST(Rope, FullHeadRotationKeepsNorms) {
  const int64_t head_dim = 128;
  std::vector<float> inv(head_dim / 2);
  rope_inv_freq(1e6f, head_dim, inv.data());
  const auto x0 = test::random_vector(head_dim, 12);
  std::vector<float> x = x0;
  const int64_t pos = 12345;
  rope_neox(x.data(), 1, 1, head_dim, head_dim, &pos, inv.data());
  double n0 = 0, n1 = 0;
  for (int64_t i = 0; i < head_dim; ++i) {
    n0 += double(x0[i]) * x0[i];
    n1 += double(x[i]) * x[i];
  }
  EXPECT_NEAR(n0, n1, 1e-4 * n0);
  EXPECT_GT(test::max_abs_diff(x, x0), 0.1);
}

}  // namespace
}  // namespace moerun
