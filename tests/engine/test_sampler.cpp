// Sampler: greedy, determinism by seed, the top-k/top-p/min-p cuts, penalties, bad parameters, and
// sampling from the largest logits only (sample_top) against sampling from the whole row.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <vector>

#include "core/error.h"
#include "engine/sampler.h"
#include "ops/cpu/top_k.h"

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

namespace moerun {
namespace {

// A row of `vocab` logits: normal values, or few levels (exact ties), with some -inf.
std::vector<float> random_row(int64_t vocab, std::mt19937_64& rng, bool ties) {
  std::normal_distribution<float> normal(0.0f, 2.5f);
  std::vector<float> row(static_cast<size_t>(vocab));
  for (float& v : row) {
    v = ties ? 0.25f * static_cast<float>(static_cast<int>(rng() % 9)) : normal(rng);
    if (rng() % 16 == 0) v = -INFINITY;
  }
  return row;
}

TEST(Sampler, SampleTopEqualsSampleWhenCandidatesSuffice) {
  std::mt19937_64 rng(42);
  const int64_t n = 64;
  int checked = 0;
  for (int trial = 0; trial < 400; ++trial) {
    const int64_t vocab = trial % 3 == 0 ? 65 : 1000 + trial;
    SamplingParams p;
    const float temps[] = {0.0f, 0.2f, 0.7f, 1.0f, 1.7f};
    const int32_t ks[] = {1, 2, 5, 20, 40, 64};
    const float tops[] = {1.0f, 0.95f, 0.8f, 0.3f};
    const float mins[] = {0.0f, 0.02f, 0.3f};
    p.temperature = temps[rng() % 5];
    p.top_k = ks[rng() % 6];
    p.top_p = tops[rng() % 4];
    p.min_p = mins[rng() % 3];
    p.seed = rng();
    Sampler full(p, vocab), top(p, vocab);
    ASSERT_TRUE(top.can_sample_top(n));
    const std::vector<int32_t> prompt = {1, 2, 3};
    full.add_prompt(prompt);
    top.add_prompt(prompt);
    std::vector<float> values(static_cast<size_t>(n));
    std::vector<int32_t> ids(static_cast<size_t>(n));
    for (int step = 0; step < 12; ++step) {
      const std::vector<float> row = random_row(vocab, rng, trial % 2 == 1);
      top_k_rows(row.data(), 1, vocab, n, values.data(), ids.data());
      const SampledToken a = full.sample(row);
      const SampledToken b = top.sample_top(values, ids);
      ASSERT_EQ(a.id, b.id) << "trial " << trial << " step " << step;
      ASSERT_EQ(a.logprob, b.logprob) << "trial " << trial << " step " << step;
      ++checked;
    }
  }
  EXPECT_EQ(checked, 400 * 12);
}

TEST(Sampler, CandidatesDoNotSufficeWithPenaltiesOrWithoutTopK) {
  SamplingParams p;
  p.temperature = 0.0f;
  EXPECT_TRUE(Sampler(p, 1000).can_sample_top(64));
  p.temperature = 0.7f;
  p.top_k = 64;
  EXPECT_TRUE(Sampler(p, 1000).can_sample_top(64));
  EXPECT_FALSE(Sampler(p, 1000).can_sample_top(63));
  p.top_k = 0;  // off: every token within 30 nats of the best
  EXPECT_FALSE(Sampler(p, 1000).can_sample_top(64));
  EXPECT_TRUE(Sampler(p, 64).can_sample_top(64));  // the whole vocabulary
  p.top_k = 20;
  p.repetition_penalty = 1.1f;
  EXPECT_FALSE(Sampler(p, 1000).can_sample_top(64));
  p.temperature = 0.0f;  // greedy too: a penalised token can fall below one outside the top
  EXPECT_FALSE(Sampler(p, 1000).can_sample_top(64));
  p.repetition_penalty = 1.0f;
  p.presence_penalty = 0.5f;
  EXPECT_FALSE(Sampler(p, 1000).can_sample_top(64));
  p.presence_penalty = 0.0f;
  p.frequency_penalty = -0.5f;
  EXPECT_FALSE(Sampler(p, 1000).can_sample_top(64));
}

// With every token among the candidates (small vocabularies), penalties and top_k off work too.
TEST(Sampler, SampleTopOfTheWholeRowEqualsSample) {
  std::mt19937_64 rng(7);
  const int64_t vocab = 50;
  SamplingParams p;
  p.temperature = 0.9f;
  p.top_k = 0;
  p.top_p = 0.9f;
  p.repetition_penalty = 1.3f;
  p.presence_penalty = 0.4f;
  p.frequency_penalty = 0.2f;
  p.seed = 99;
  Sampler full(p, vocab), top(p, vocab);
  ASSERT_TRUE(top.can_sample_top(vocab));
  full.add_prompt(std::vector<int32_t>{4, 5, 6});
  top.add_prompt(std::vector<int32_t>{4, 5, 6});
  std::vector<float> values(static_cast<size_t>(vocab));
  std::vector<int32_t> ids(static_cast<size_t>(vocab));
  for (int step = 0; step < 50; ++step) {
    const std::vector<float> row = random_row(vocab, rng, step % 2 == 0);
    top_k_rows(row.data(), 1, vocab, vocab, values.data(), ids.data());
    const SampledToken a = full.sample(row);
    const SampledToken b = top.sample_top(values, ids);
    ASSERT_EQ(a.id, b.id) << step;
    ASSERT_EQ(a.logprob, b.logprob) << step;
  }
}

// top_k_rows against a full sort in ranks_before's order.
TEST(TopKRows, MatchesAFullSort) {
  std::mt19937_64 rng(3);
  for (const int64_t cols : {1, 7, 64, 1000}) {
    for (const int64_t k : {1, 5, 64}) {
      if (k > cols) continue;
      const std::vector<float> row = random_row(cols, rng, cols % 2 == 0);
      std::vector<int32_t> order(static_cast<size_t>(cols));
      for (int32_t i = 0; i < cols; ++i) order[static_cast<size_t>(i)] = i;
      std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
        return ranks_before(row[static_cast<size_t>(a)], a, row[static_cast<size_t>(b)], b);
      });
      std::vector<float> values(static_cast<size_t>(k));
      std::vector<int32_t> ids(static_cast<size_t>(k));
      top_k_rows(row.data(), 1, cols, k, values.data(), ids.data());
      for (int64_t j = 0; j < k; ++j) {
        ASSERT_EQ(ids[static_cast<size_t>(j)], order[static_cast<size_t>(j)]) << cols << " " << k;
      }
    }
  }
}

}  // namespace
}  // namespace moerun
