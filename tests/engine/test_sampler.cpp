// Sampler: greedy, determinism by seed, the top-k/top-p/min-p cuts, penalties and bad parameters.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <vector>

#include "core/error.h"
#include "engine/sampler.h"

namespace moerun {
namespace {

std::vector<float> ramp_logits(int n) {
  std::vector<float> l(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i)
    l[static_cast<size_t>(i)] = std::sin(0.7f * static_cast<float>(i)) * 2;
  return l;
}

int argmax(const std::vector<float>& l) {
  return static_cast<int>(std::max_element(l.begin(), l.end()) - l.begin());
}

TEST(Sampler, GreedyTakesTheLargestLogitAndTheLowestIdOnTies) {
  SamplingParams p;
  p.temperature = 0;
  Sampler s(p, 5);
  const std::vector<float> l = {1.0f, 3.0f, 3.0f, -1.0f, 2.0f};
  EXPECT_EQ(s.sample(l).id, 1);
}

TEST(Sampler, SameSeedSameTokensOtherSeedOtherTokens) {
  const std::vector<float> l = ramp_logits(200);
  SamplingParams p;
  p.temperature = 1.5f;
  p.top_k = 0;
  p.top_p = 1.0f;
  auto run = [&](uint64_t seed) {
    p.seed = seed;
    Sampler s(p, 200);
    std::vector<int32_t> out;
    for (int i = 0; i < 64; ++i) out.push_back(s.sample(l).id);
    return out;
  };
  EXPECT_EQ(run(7), run(7));
  EXPECT_NE(run(7), run(8));
}

TEST(Sampler, ResetEqualsAFreshSampler) {
  const std::vector<float> l = ramp_logits(200);
  SamplingParams a;
  a.temperature = 1.2f;
  a.top_k = 0;
  a.presence_penalty = 0.5f;
  a.seed = 5;
  SamplingParams b = a;
  b.seed = 9;
  b.temperature = 0.8f;
  Sampler reused(a, 200);
  for (int i = 0; i < 30; ++i) reused.sample(l);
  reused.reset(b);
  Sampler fresh(b, 200);
  for (int i = 0; i < 30; ++i) EXPECT_EQ(reused.sample(l).id, fresh.sample(l).id) << i;
  SamplingParams bad = a;
  bad.top_p = 0;
  EXPECT_THROW(reused.reset(bad), Error);
}

TEST(Sampler, TightCutsReduceToGreedy) {
  const std::vector<float> l = ramp_logits(300);
  for (int variant = 0; variant < 3; ++variant) {
    SamplingParams p;
    p.temperature = 1.0f;
    p.top_k = variant == 0 ? 1 : 0;
    p.top_p = variant == 1 ? 1e-6f : 1.0f;
    p.min_p = variant == 2 ? 1.0f : 0.0f;
    Sampler s(p, 300);
    for (int i = 0; i < 20; ++i) EXPECT_EQ(s.sample(l).id, argmax(l)) << "variant " << variant;
  }
}

TEST(Sampler, FrequenciesFollowTheSoftmax) {
  // Four tokens with probabilities 0.1, 0.2, 0.3, 0.4 at temperature 1.
  const std::vector<float> l = {std::log(0.1f), std::log(0.2f), std::log(0.3f), std::log(0.4f)};
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.seed = 3;
  Sampler s(p, 4);
  std::map<int32_t, int> counts;
  const int n = 40000;
  for (int i = 0; i < n; ++i) ++counts[s.sample(l).id];
  // Binomial standard deviation is at most sqrt(n * 0.25) = 100 samples: allow 5 sigma.
  for (int id = 0; id < 4; ++id) {
    EXPECT_NEAR(counts[id], n * 0.1 * (id + 1), 500) << "token " << id;
  }
}

TEST(Sampler, TopPKeepsTheSmallestSetReachingP) {
  const std::vector<float> l = {std::log(0.5f), std::log(0.3f), std::log(0.15f), std::log(0.05f)};
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_k = 0;
  p.top_p = 0.75f;  // 0.5 + 0.3 reaches it: tokens 2 and 3 never appear
  Sampler s(p, 4);
  for (int i = 0; i < 2000; ++i) EXPECT_LT(s.sample(l).id, 2);
}

TEST(Sampler, PresencePenaltyDiscouragesRepeats) {
  std::vector<float> l = {0.0f, 5.0f, 4.0f};
  SamplingParams p;
  p.temperature = 0;
  p.presence_penalty = 2.0f;
  Sampler s(p, 3);
  EXPECT_EQ(s.sample(l).id, 1);
  EXPECT_EQ(s.sample(l).id, 2);  // 5 - 2 < 4
  EXPECT_EQ(s.sample(l).id, 1);  // 5 - 2 = 3 > 4 - 2 = 2
}

TEST(Sampler, RepetitionPenaltyCountsPromptTokens) {
  std::vector<float> l = {3.0f, 2.0f, -1.0f};
  SamplingParams p;
  p.temperature = 0;
  p.repetition_penalty = 2.0f;
  Sampler s(p, 3);
  const int32_t prompt[] = {0};
  s.add_prompt(prompt);
  EXPECT_EQ(s.sample(l).id, 1);  // 3 / 2 = 1.5 < 2
}

TEST(Sampler, RejectsBadParameters) {
  SamplingParams p;
  p.top_p = 0;
  EXPECT_THROW(Sampler(p, 10), Error);
  p = SamplingParams{};
  p.temperature = -1;
  EXPECT_THROW(Sampler(p, 10), Error);
  p = SamplingParams{};
  p.top_k = -3;
  EXPECT_THROW(Sampler(p, 10), Error);
  p = SamplingParams{};
  p.min_p = 2;
  EXPECT_THROW(Sampler(p, 10), Error);
  p = SamplingParams{};
  p.repetition_penalty = 0;
  EXPECT_THROW(Sampler(p, 10), Error);
}

}  // namespace
}  // namespace moerun
