#include "moe/expert_stats.h"

#include <gtest/gtest.h>

namespace moerun {
namespace {

TEST(ExpertStats, CountsRoutingHitsCopiesAndPredictions) {
  ExpertStats stats(2, 4);
  const int32_t ids[] = {0, 3, 3, 1};
  stats.record_routing(1, ids, 4);
  stats.record_hits(1, 3);
  stats.record_cpu(1, 1, 100);
  stats.record_copy(0, 2, 50);
  stats.record_prediction(1, 3, 4);
  stats.set_resident(1, 2);
  stats.record_tokens(2);
  stats.add_cpu_seconds(0.5);
  stats.set_cache(8, "lru");

  const ExpertStatsSnapshot s = stats.snapshot();
  ASSERT_EQ(s.layers.size(), 2u);
  EXPECT_EQ(s.layers[1].routed, 4u);
  EXPECT_EQ(s.usage[1], (std::vector<uint64_t>{1, 1, 0, 2}));
  EXPECT_EQ(s.usage[0], (std::vector<uint64_t>{0, 0, 0, 0}));
  EXPECT_EQ(s.layers[0].bytes_copied, 50u);
  EXPECT_EQ(s.layers[1].bytes_cpu_read, 100u);
  EXPECT_DOUBLE_EQ(s.hit_rate(), 0.75);
  EXPECT_DOUBLE_EQ(s.prediction_accuracy(), 0.75);
  EXPECT_EQ(s.tokens, 2u);
  EXPECT_NEAR(s.cpu_busy_seconds, 0.5, 1e-9);
  EXPECT_EQ(s.cache_slots, 8);
  EXPECT_EQ(s.cache_policy, "lru");

  stats.reset();
  const ExpertStatsSnapshot z = stats.snapshot();
  EXPECT_EQ(z.total().routed, 0u);
  EXPECT_EQ(z.layers[1].resident, 2u);  // residency is state, not a counter
  EXPECT_EQ(z.hit_rate(), 0.0);
  EXPECT_EQ(z.prediction_accuracy(), 0.0);
}

}  // namespace
}  // namespace moerun
