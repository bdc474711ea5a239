#include "moe/prediction_accuracy.h"

#include <gtest/gtest.h>

#include <vector>

#include "moe/expert_stats.h"
#include "moe/synthetic_routing.h"

namespace moerun {
namespace {

TEST(PredictionAccuracy, CountsPredictedChosenExperts) {
  PredictionAccuracy acc(2, 8);
  ExpertStats stats(2, 8);
  const int32_t none[] = {1, 2};
  EXPECT_EQ(acc.check(0, none, 2, &stats), 0);  // no prediction: nothing counted
  EXPECT_EQ(acc.checked(), 0u);
  const int32_t guess[] = {1, 2, 3, 3};
  acc.predict(0, guess, 4);
  const int32_t chosen[] = {2, 5, 2, 3};  // distinct: 2, 5, 3; predicted: 2, 3
  EXPECT_EQ(acc.check(0, chosen, 4, &stats), 2);
  EXPECT_EQ(acc.checked(), 3u);
  EXPECT_EQ(acc.check(0, chosen, 4, &stats), 0);  // the prediction was used up
  const int32_t other[] = {7};
  acc.predict(1, other, 1);
  acc.predict(1, guess, 4);  // replaces the earlier one
  const int32_t chosen1[] = {7, 1};
  EXPECT_EQ(acc.check(1, chosen1, 2, nullptr), 1);
  EXPECT_DOUBLE_EQ(acc.accuracy(), 3.0 / 5.0);
  const ExpertStatsSnapshot s = stats.snapshot();
  EXPECT_EQ(s.layers[0].predicted, 2u);
  EXPECT_EQ(s.layers[0].prediction_checked, 3u);
  EXPECT_DOUBLE_EQ(s.prediction_accuracy(), 2.0 / 3.0);
}

TEST(PredictionAccuracy, PreviousTokenPredictorScoresTheTracesReuse) {
  // Predicting "the previous token's experts" is right exactly as often as experts are reused.
  SyntheticRouting gen(parse_synthetic_routing("synthetic:reuse=0.45,within8=0.8,zipf=1.1"), 4, 512,
                       10);
  PredictionAccuracy acc(4, 512);
  std::vector<int32_t> ids(10);
  std::vector<float> w(10);
  for (int t = 0; t < 1000; ++t) {
    for (int64_t l = 0; l < 4; ++l) {
      gen.next(l, ids.data(), w.data());
      acc.check(l, ids.data(), 10, nullptr);
      acc.predict(l, ids.data(), 10);
    }
  }
  EXPECT_NEAR(acc.accuracy(), 0.45, 0.03);
}

}  // namespace
}  // namespace moerun
