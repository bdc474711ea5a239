#include "moe/expert_cache_table.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "core/error.h"
#include "moe/adaptive_policy.h"
#include "moe/cache_policy.h"

namespace moerun {
namespace {

std::unique_ptr<ExpertCacheTable> make_table(CachePolicyKind kind, int64_t layers, int64_t experts,
                                             int64_t slots) {
  return std::make_unique<ExpertCacheTable>(layers, experts, slots,
                                            make_cache_policy(kind, layers, experts));
}

// slot_table and slot_keys describe the same bijection; per-layer counts add up.
void expect_consistent(const ExpertCacheTable& t) {
  int64_t resident = 0;
  for (int64_t s = 0; s < t.n_slots(); ++s) {
    const int32_t key = t.slot_keys()[s];
    if (key < 0) continue;
    ++resident;
    ASSERT_EQ(t.slot_table()[key], s);
  }
  int64_t per_layer = 0;
  for (int64_t l = 0; l < t.n_layers(); ++l) {
    int64_t n = 0;
    for (int64_t e = 0; e < t.n_experts(); ++e) {
      const int32_t s = t.slot_of(l, e);
      if (s < 0) continue;
      ++n;
      ASSERT_EQ(t.slot_keys()[s], l * t.n_experts() + e);
    }
    ASSERT_EQ(t.resident(l), n);
    per_layer += n;
  }
  ASSERT_EQ(resident, t.resident());
  ASSERT_EQ(per_layer, resident);
}

TEST(CachePolicy, ParsesNamesAndRejectsOthers) {
  EXPECT_EQ(parse_cache_policy("lru"), CachePolicyKind::lru);
  EXPECT_EQ(parse_cache_policy("lfu"), CachePolicyKind::lfu);
  EXPECT_EQ(parse_cache_policy("static"), CachePolicyKind::static_profile);
  EXPECT_EQ(parse_cache_policy("adaptive"), CachePolicyKind::adaptive);
  EXPECT_STREQ(cache_policy_name(CachePolicyKind::static_profile), "static");
  try {
    parse_cache_policy("fifo");
    FAIL() << "fifo accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("fifo"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("adaptive"), std::string::npos);
  }
}

TEST(ExpertCacheTable, LruHitsMissesAdmissionsAndEvictions) {
  auto t = make_table(CachePolicyKind::lru, 2, 8, 3);
  const int32_t a[] = {1, 2, 1};  // token 0 and 1 of layer 0 (top-1.5 style: ids repeat)
  const CacheStepPlan& p = t->plan_step(0, a, 3, -1);
  ASSERT_EQ(p.experts.size(), 2u);
  EXPECT_EQ(p.experts[0], 1);
  EXPECT_EQ(p.uses[0], 2);
  EXPECT_EQ(p.slots[0], -1);
  EXPECT_EQ(p.miss_assignments, 3);
  ASSERT_EQ(p.admissions.size(), 2u);
  EXPECT_EQ(p.admissions[0].expert, 1);  // most used first
  EXPECT_EQ(p.admissions[0].evicted_layer, -1);
  EXPECT_EQ(t->resident(), 2);

  const int32_t b[] = {5};
  t->plan_step(1, b, 1, -1);  // fills the last slot
  const int32_t c[] = {2, 7};
  const CacheStepPlan& q = t->plan_step(0, c, 2, -1);
  EXPECT_EQ(q.hit_assignments, 1);
  ASSERT_EQ(q.admissions.size(), 1u);
  // Least recently used: (0, 1) was last used two steps before (1, 5).
  EXPECT_EQ(q.admissions[0].evicted_layer, 0);
  EXPECT_EQ(q.admissions[0].evicted_expert, 1);
  EXPECT_EQ(t->slot_of(0, 1), -1);
  EXPECT_GE(t->slot_of(0, 7), 0);
  expect_consistent(*t);
}

// Prefill fills free slots only: place_free never evicts, and what it placed is evictable later.
TEST(ExpertCacheTable, PlaceFreeTakesOnlyFreeSlots) {
  auto t = make_table(CachePolicyKind::lru, 2, 8, 2);
  EXPECT_GE(t->place_free(0, 3), 0);
  EXPECT_EQ(t->place_free(0, 3), -1);  // resident already
  EXPECT_GE(t->place_free(1, 4), 0);
  EXPECT_EQ(t->place_free(1, 5), -1);  // no free slot: nothing evicted
  EXPECT_GE(t->slot_of(0, 3), 0);
  EXPECT_GE(t->slot_of(1, 4), 0);
  EXPECT_EQ(t->resident(), 2);
  const int32_t ids[] = {6};
  const CacheStepPlan& p = t->plan_step(0, ids, 1, -1);
  ASSERT_EQ(p.admissions.size(), 1u);  // a placed expert gives way like any other
  EXPECT_GE(p.admissions[0].evicted_layer, 0);
  expect_consistent(*t);
}

TEST(ExpertCacheTable, NeverEvictsExpertsOfTheCurrentStepAndRespectsTheCap) {
  auto t = make_table(CachePolicyKind::lru, 1, 8, 2);
  const int32_t a[] = {0, 1, 2, 3};
  const CacheStepPlan& p = t->plan_step(0, a, 4, -1);
  // Two slots: the first two misses take them, the others find nothing evictable.
  EXPECT_EQ(p.admissions.size(), 2u);
  EXPECT_EQ(t->resident(), 2);
  const int32_t b[] = {4, 5, 6};
  EXPECT_EQ(t->plan_step(0, b, 3, 1).admissions.size(), 1u);
  EXPECT_EQ(t->plan_step(0, b, 3, 0).admissions.size(), 0u);
  expect_consistent(*t);
}

TEST(ExpertCacheTable, LfuKeepsFrequentExpertsOverRecentOnes) {
  auto t = make_table(CachePolicyKind::lfu, 1, 8, 2);
  const int32_t hot[] = {0};
  for (int i = 0; i < 5; ++i) t->plan_step(0, hot, 1, -1);
  const int32_t one[] = {1}, two[] = {2};
  t->plan_step(0, one, 1, -1);
  const CacheStepPlan& p = t->plan_step(0, two, 1, -1);
  ASSERT_EQ(p.admissions.size(), 1u);
  EXPECT_EQ(p.admissions[0].evicted_expert, 1);  // LRU would have evicted 0
  EXPECT_GE(t->slot_of(0, 0), 0);
}

TEST(ExpertCacheTable, PinnedExpertsStayAndStaticWarmStartFillsFromTheProfile) {
  const std::vector<std::vector<uint64_t>> counts = {{0, 9, 1, 5}, {7, 0, 0, 2}};
  ExpertCacheTable t(2, 4, 3, make_cache_policy(CachePolicyKind::static_profile, 2, 4, counts));
  EXPECT_EQ(t.warm_start(counts, 3, true), 3);
  EXPECT_GE(t.slot_of(0, 1), 0);
  EXPECT_GE(t.slot_of(1, 0), 0);
  EXPECT_GE(t.slot_of(0, 3), 0);
  EXPECT_TRUE(t.pinned(0, 1));
  const int32_t ids[] = {2, 0};
  const CacheStepPlan& p = t.plan_step(0, ids, 2, -1);
  EXPECT_EQ(p.admissions.size(), 0u);  // everything is pinned
  EXPECT_EQ(p.miss_assignments, 2);
  EXPECT_EQ(t.pin(1, 3), -1);  // no slot left to pin into
  expect_consistent(t);
}

TEST(ExpertCacheTable, WarmStartWithoutPinsCanBeEvicted) {
  const std::vector<std::vector<uint64_t>> counts = {{3, 2, 1, 0}};
  auto t = make_table(CachePolicyKind::lru, 1, 4, 2);
  EXPECT_EQ(t->warm_start(counts, 10, false), 2);  // stops when the slots run out
  EXPECT_GE(t->slot_of(0, 0), 0);
  EXPECT_GE(t->slot_of(0, 1), 0);
  const int32_t ids[] = {3};
  EXPECT_EQ(t->plan_step(0, ids, 1, -1).admissions.size(), 1u);
  expect_consistent(*t);
}

TEST(ExpertCacheTable, FilteredLfuDeclinesAMissColderThanTheVictim) {
  ExpertCacheTable t(1, 8, 1, std::make_unique<FilteredLfuPolicy>(8, 1000.0));
  const int32_t hot[] = {0};
  for (int i = 0; i < 4; ++i) t.plan_step(0, hot, 1, -1);
  const int32_t cold[] = {5};
  EXPECT_EQ(t.plan_step(0, cold, 1, -1).admissions.size(), 0u);
  for (int i = 0; i < 6; ++i) t.plan_step(0, cold, 1, -1);  // now hotter than 0
  EXPECT_EQ(t.slot_of(0, 5), 0);
}

TEST(ExpertCacheTable, RandomStepsKeepTheTableConsistentForEveryPolicy) {
  for (CachePolicyKind kind : {CachePolicyKind::lru, CachePolicyKind::lfu,
                               CachePolicyKind::static_profile, CachePolicyKind::adaptive}) {
    SCOPED_TRACE(cache_policy_name(kind));
    const int64_t layers = 40, experts = 16, k = 4;
    auto t = make_table(kind, layers, experts, 100);
    std::mt19937 rng(7);
    std::vector<int32_t> ids(3 * k);
    for (int step = 0; step < 3000; ++step) {
      const int64_t layer = step % layers;
      const int64_t n = 1 + step % 3;
      for (auto& id : ids) id = static_cast<int32_t>(rng() % experts);
      const CacheStepPlan& p = t->plan_step(layer, ids.data(), n * k, step % 5 == 0 ? 1 : -1);
      int64_t uses = 0;
      for (int32_t u : p.uses) uses += u;
      ASSERT_EQ(uses, n * k);
      ASSERT_EQ(p.hit_assignments + p.miss_assignments, n * k);
      for (const CacheAdmission& a : p.admissions) {
        ASSERT_EQ(t->slot_of(layer, a.expert), a.slot);
        if (a.evicted_layer == layer) {  // a victim is never one of this step's experts
          for (int32_t e : p.experts) ASSERT_NE(e, a.evicted_expert);
        }
      }
      if (step % 97 == 0) expect_consistent(*t);
    }
    expect_consistent(*t);
  }
}

TEST(AdaptivePolicy, PicksAShortHalfLifeForBurstyRoutingAndALongOneForSkewedRouting) {
  // Bursty: each layer reuses a small set for a while, then moves on; popularity is flat.
  const int64_t layers = 48, experts = 64;
  {
    auto policy = std::make_unique<AdaptivePolicy>(layers, experts);
    AdaptivePolicy* adaptive = policy.get();
    ExpertCacheTable t(layers, experts, layers * 8, std::move(policy));
    for (int64_t tok = 0; tok < 3000; ++tok) {
      for (int64_t l = 0; l < layers; ++l) {
        const auto phase = static_cast<int32_t>((tok / 20 + l) % 8);
        const int32_t ids[] = {phase * 8 + static_cast<int32_t>(tok % 4),
                               phase * 8 + 4 + static_cast<int32_t>(tok % 3)};
        t.plan_step(l, ids, 2, -1);
      }
    }
    EXPECT_LE(adaptive->half_life_tokens(), 16);
  }
  {
    // Skewed and memoryless: experts 0..7 are chosen often, the rest rarely, at random.
    auto policy = std::make_unique<AdaptivePolicy>(layers, experts);
    AdaptivePolicy* adaptive = policy.get();
    ExpertCacheTable t(layers, experts, layers * 8, std::move(policy));
    std::mt19937 rng(3);
    for (int64_t tok = 0; tok < 3000; ++tok) {
      for (int64_t l = 0; l < layers; ++l) {
        const auto hot = static_cast<int32_t>(rng() % 8);
        const auto cold = static_cast<int32_t>(8 + rng() % 56);
        const int32_t ids[] = {hot, cold};
        t.plan_step(l, ids, 2, -1);
      }
    }
    EXPECT_GE(adaptive->half_life_tokens(), 64);
  }
}

}  // namespace
}  // namespace moerun
