// Softmax + top-k + renormalisation against a sort-based reference, ties included.
#include "ops/cpu/router.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "ops_test_util.h"

namespace moerun {
namespace {

TEST(Router, TopKMatchesSortedSoftmax) {
  const int64_t n = 7, E = 64, K = 10;
  const auto logits = test::random_vector(n * E, 1, 2.0f);
  std::vector<int32_t> ids(n * K);
  std::vector<float> w(n * K), probs(E);
  for (bool normalize : {true, false}) {
    softmax_top_k(logits.data(), n, E, K, normalize, ids.data(), w.data(), probs.data());
    for (int64_t t = 0; t < n; ++t) {
      std::vector<double> p(E);
      double mx = -1e300, sum = 0;
      for (int64_t e = 0; e < E; ++e) mx = std::max(mx, double(logits[t * E + e]));
      for (int64_t e = 0; e < E; ++e) sum += (p[e] = std::exp(logits[t * E + e] - mx));
      for (double& x : p) x /= sum;
      std::vector<int32_t> order(E);
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return p[a] > p[b]; });
      double top_sum = 0;
      for (int64_t k = 0; k < K; ++k) top_sum += p[order[k]];
      for (int64_t k = 0; k < K; ++k) {
        EXPECT_EQ(ids[t * K + k], order[k]) << t << " " << k;
        const double ref = normalize ? p[order[k]] / top_sum : p[order[k]];
        EXPECT_NEAR(w[t * K + k], ref, 1e-6 * ref + 1e-9);
      }
    }
  }
}

TEST(Router, TiesBreakTowardTheLowerIndex) {
  // Experts 1, 3, 5 and 6 tie for the best value; top-3 takes 1, 3, 5 in that order.
  const std::vector<float> logits = {0, 2, 1, 2, 0, 2, 2, -1};
  std::vector<int32_t> ids(3);
  std::vector<float> w(3), probs(8);
  softmax_top_k(logits.data(), 1, 8, 3, true, ids.data(), w.data(), probs.data());
  EXPECT_EQ(ids, (std::vector<int32_t>{1, 3, 5}));
  for (float x : w) EXPECT_NEAR(x, 1.0f / 3.0f, 1e-7);
}

TEST(Router, AllExpertsSelected) {
  const std::vector<float> logits = {3, -1, 0.5f, 2};
  std::vector<int32_t> ids(4);
  std::vector<float> w(4), probs(4);
  softmax_top_k(logits.data(), 1, 4, 4, true, ids.data(), w.data(), probs.data());
  EXPECT_EQ(ids, (std::vector<int32_t>{0, 3, 2, 1}));
  EXPECT_NEAR(w[0] + w[1] + w[2] + w[3], 1.0f, 1e-6);
}

}  // namespace
}  // namespace moerun
