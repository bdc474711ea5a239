// Causal conv1d + SiLU against a whole-sequence reference; chunked calls with carried state agree.
#include "ops/cpu/causal_conv1d.h"

#include <gtest/gtest.h>

#include <cmath>
#include <utility>
#include <vector>

#include "ops_test_util.h"

namespace moerun {
namespace {

// Whole sequence, zero left padding: y[t,c] = silu(sum_j w[j,c] x[t-K+1+j, c]).
std::vector<double> reference(const std::vector<float>& x, int64_t n, int64_t ch,
                              const std::vector<float>& w, int64_t kernel) {
  std::vector<double> y(static_cast<size_t>(n * ch));
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t c = 0; c < ch; ++c) {
      double acc = 0;
      for (int64_t j = 0; j < kernel; ++j) {
        const int64_t s = t - (kernel - 1) + j;
        if (s >= 0) acc += double(w[j * ch + c]) * x[s * ch + c];
      }
      y[t * ch + c] = acc / (1 + std::exp(-acc));
    }
  }
  return y;
}

TEST(CausalConv1d, ChunksWithStateEqualTheWholeSequence) {
  const int64_t n = 11, ch = 40, kernel = 4;
  const auto x = test::random_vector(n * ch, 1);
  const auto w = test::random_vector(kernel * ch, 2, 0.5f);
  const auto ref = reference(x, n, ch, w, kernel);
  // Chunk sizes include runs shorter than the state (1, 2) and a long one.
  for (const std::vector<int64_t>& chunks : std::vector<std::vector<int64_t>>{
           {11}, {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, {2, 5, 1, 3}, {0, 4, 7}}) {
    std::vector<float> state(static_cast<size_t>((kernel - 1) * ch), 0.0f);
    std::vector<float> y(x.size());
    int64_t t0 = 0;
    for (int64_t len : chunks) {
      causal_conv1d_silu(x.data() + t0 * ch, len, ch, w.data(), kernel, state.data(),
                         y.data() + t0 * ch);
      t0 += len;
    }
    ASSERT_EQ(t0, n);
    EXPECT_LT(test::max_abs_diff(y, ref), 2e-6) << chunks.size();
    // The state holds the last three inputs.
    for (int64_t r = 0; r < kernel - 1; ++r) {
      for (int64_t c = 0; c < ch; ++c) {
        EXPECT_EQ(state[r * ch + c], x[(n - (kernel - 1) + r) * ch + c]);
      }
    }
  }
}

// Channel slices run separately (as threads do) give bitwise the whole-row call, state included.
TEST(CausalConv1d, ChannelSlicesEqualTheWholeRow) {
  const int64_t n = 9, ch = 40, kernel = 4;
  const auto x = test::random_vector(n * ch, 3);
  const auto w = test::random_vector(kernel * ch, 4, 0.5f);
  for (const std::vector<int64_t>& chunks :
       std::vector<std::vector<int64_t>>{{9}, {1, 1, 2, 5}, {0, 3, 6}}) {
    std::vector<float> state_a(static_cast<size_t>((kernel - 1) * ch), 0.0f), state_b = state_a;
    std::vector<float> ya(x.size()), yb(x.size());
    int64_t t0 = 0;
    for (int64_t len : chunks) {
      causal_conv1d_silu(x.data() + t0 * ch, len, ch, w.data(), kernel, state_a.data(),
                         ya.data() + t0 * ch);
      for (auto [b, e] : {std::pair<int64_t, int64_t>{16, 40}, {0, 7}, {7, 16}}) {
        causal_conv1d_silu_channels(x.data() + t0 * ch, len, ch, w.data(), kernel, state_b.data(),
                                    yb.data() + t0 * ch, b, e);
      }
      t0 += len;
    }
    EXPECT_EQ(ya, yb) << chunks.size();
    EXPECT_EQ(state_a, state_b) << chunks.size();
  }
}

}  // namespace
}  // namespace moerun
