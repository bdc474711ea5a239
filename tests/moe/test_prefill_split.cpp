// The prefill split between the copy engine and the CPU: against an exhaustive search over every
// subset on small random cases, and the obvious extremes.
#include "moe/prefill_split.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "moe/cost_model.h"

namespace moerun {
namespace {

// The finishing time of a split: the longer of the copy queue and the CPU queue.
double finish(const PrefillCosts& c, const std::vector<int32_t>& tokens,
              const std::vector<uint8_t>& to_gpu) {
  double copy = 0;
  double cpu = 0;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (to_gpu[i] != 0) {
      copy += c.copy_seconds;
    } else {
      cpu += c.cpu_seconds(tokens[i]);
    }
  }
  return std::max(copy, cpu);
}

TEST(PrefillSplit, MatchesTheBestSubsetOnRandomCases) {
  std::mt19937 rng(7);
  std::vector<int32_t> order;
  for (int trial = 0; trial < 300; ++trial) {
    const int n = 1 + static_cast<int>(rng() % 10);
    std::vector<int32_t> tokens(static_cast<size_t>(n));
    for (int32_t& t : tokens) t = 1 + static_cast<int32_t>(rng() % 40);
    PrefillCosts c;
    c.copy_seconds = 1e-6 * (1 + rng() % 60);
    c.cpu_stream_seconds = 1e-6 * (1 + rng() % 40);
    c.cpu_seconds_per_token = 1e-7 * (1 + rng() % 60);
    std::vector<uint8_t> to_gpu(static_cast<size_t>(n));
    const int64_t k = split_prefill_misses(c, tokens, to_gpu, order);
    EXPECT_EQ(k, std::count(to_gpu.begin(), to_gpu.end(), 1));
    double best = std::numeric_limits<double>::infinity();
    std::vector<uint8_t> subset(static_cast<size_t>(n));
    for (int mask = 0; mask < (1 << n); ++mask) {
      for (int i = 0; i < n; ++i) subset[static_cast<size_t>(i)] = (mask >> i) & 1;
      best = std::min(best, finish(c, tokens, subset));
    }
    // Sending the experts with the most tokens first is optimal for a constant copy cost.
    EXPECT_NEAR(finish(c, tokens, to_gpu), best, 1e-12) << "trial " << trial;
  }
}

TEST(PrefillSplit, NoGpuKeepsEverythingOnTheCpu) {
  PrefillCosts c;
  c.copy_seconds = std::numeric_limits<double>::infinity();
  c.cpu_stream_seconds = 1e-5;
  c.cpu_seconds_per_token = 1e-6;
  const std::vector<int32_t> tokens = {50, 3, 9};
  std::vector<uint8_t> to_gpu(3, 1);
  std::vector<int32_t> order;
  EXPECT_EQ(split_prefill_misses(c, tokens, to_gpu, order), 0);
  EXPECT_EQ(to_gpu, (std::vector<uint8_t>{0, 0, 0}));
}

TEST(PrefillSplit, SlowCpuSendsTheMostUsedExpertsFirst) {
  PrefillCosts c;
  c.copy_seconds = 1.0;
  c.cpu_stream_seconds = 0.5;
  c.cpu_seconds_per_token = 0.5;
  // CPU times 10, 1, 5, 0.5 (sum 16.5): the GPU takes 10 and 5 (copy 2; CPU 1.5).
  const std::vector<int32_t> tokens = {20, 2, 10, 1};
  std::vector<uint8_t> to_gpu(4);
  std::vector<int32_t> order;
  EXPECT_EQ(split_prefill_misses(c, tokens, to_gpu, order), 2);
  EXPECT_EQ(to_gpu, (std::vector<uint8_t>{1, 0, 1, 0}));
}

TEST(PrefillSplit, CostsComeFromTheCalibration) {
  Calibration cal;
  cal.cpu_read_bw = 100e9;
  cal.cpu_gemm_bytes_tokens = 1e12;
  cal.h2d_pinned_bw = 50e9;
  const PrefillCosts c = prefill_costs(CostModel(cal), 1'000'000);
  EXPECT_DOUBLE_EQ(c.copy_seconds, 1e6 / 50e9);
  EXPECT_DOUBLE_EQ(c.cpu_stream_seconds, 1e-5);
  EXPECT_DOUBLE_EQ(c.cpu_seconds(1), 1e-5);    // stream-bound
  EXPECT_DOUBLE_EQ(c.cpu_seconds(100), 1e-4);  // compute-bound
}

}  // namespace
}  // namespace moerun
