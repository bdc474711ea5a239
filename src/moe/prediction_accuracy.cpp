#include "moe/prediction_accuracy.h"

#include <algorithm>

#include "core/error.h"
#include "moe/expert_stats.h"

namespace moerun {

PredictionAccuracy::PredictionAccuracy(int64_t n_layers, int64_t n_experts)
    : n_layers_(n_layers),
      n_experts_(n_experts),
      predicted_mark_(static_cast<size_t>(n_layers * n_experts), 0),
      epoch_(static_cast<size_t>(n_layers), 0),
      has_prediction_(static_cast<size_t>(n_layers), 0),
      seen_(static_cast<size_t>(n_experts), 0) {
  MOERUN_CHECK(n_layers > 0 && n_experts > 0);
}

void PredictionAccuracy::predict(int64_t layer, const int32_t* ids, int64_t n) {
  MOERUN_CHECK(layer >= 0 && layer < n_layers_);
  const auto l = static_cast<size_t>(layer);
  uint32_t* marks = predicted_mark_.data() + layer * n_experts_;
  if (++epoch_[l] == 0) {  // wrapped: forget old marks
    std::fill(marks, marks + n_experts_, 0u);
    epoch_[l] = 1;
  }
  for (int64_t i = 0; i < n; ++i) {
    MOERUN_CHECK(ids[i] >= 0 && ids[i] < n_experts_);
    marks[ids[i]] = epoch_[l];
  }
  has_prediction_[l] = 1;
}

int64_t PredictionAccuracy::check(int64_t layer, const int32_t* ids, int64_t n_assign,
                                  ExpertStats* stats) {
  MOERUN_CHECK(layer >= 0 && layer < n_layers_);
  const auto l = static_cast<size_t>(layer);
  if (!has_prediction_[l]) return 0;
  has_prediction_[l] = 0;
  if (++seen_epoch_ == 0) {
    std::fill(seen_.begin(), seen_.end(), 0u);
    seen_epoch_ = 1;
  }
  const uint32_t* marks = predicted_mark_.data() + layer * n_experts_;
  int64_t hit = 0, distinct = 0;
  for (int64_t i = 0; i < n_assign; ++i) {
    const int32_t e = ids[i];
    MOERUN_CHECK(e >= 0 && e < n_experts_);
    if (seen_[static_cast<size_t>(e)] == seen_epoch_) continue;
    seen_[static_cast<size_t>(e)] = seen_epoch_;
    ++distinct;
    hit += marks[e] == epoch_[l];
  }
  predicted_ += static_cast<uint64_t>(hit);
  checked_ += static_cast<uint64_t>(distinct);
  if (stats)
    stats->record_prediction(layer, static_cast<uint64_t>(hit), static_cast<uint64_t>(distinct));
  return hit;
}

}  // namespace moerun
