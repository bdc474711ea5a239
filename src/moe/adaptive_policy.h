// The default replacement policy: decayed LFU with a frequency admission filter whose half-life is
// chosen online. Short half-lives favour recency (bursts of reuse), long ones popularity; which
// wins depends on the routing (BENCHMARKS.md, "Expert cache policies"). The policy therefore runs
// miniature simulations (one shadow cache per candidate half-life, fed a sample of the layers with
// a proportional share of the slots) and ranks keys by the half-life whose shadow hit most over
// the recent past.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "moe/cache_policy.h"

namespace moerun {

class ExpertCacheTable;

// Candidate half-lives in tokens.
inline constexpr std::array<double, 4> kAdaptiveHalfLives = {4, 16, 64, 256};

// FilteredLfuPolicy with the half-life picked by miniature simulations.
class AdaptivePolicy : public CachePolicy {
 public:
  // For n_layers x n_experts keys.
  AdaptivePolicy(int64_t n_layers, int64_t n_experts);
  ~AdaptivePolicy() override;
  const char* name() const override { return "adaptive"; }
  void on_step(int64_t layer, const int32_t* ids, int64_t n_assign,
               int64_t max_admissions) override;
  void on_use(int32_t key, int64_t step, int64_t uses) override;
  double priority(int32_t key) const override {
    return scores_[current_][static_cast<size_t>(key)];
  }
  bool admit(int32_t candidate, int32_t victim) const override {
    return priority(candidate) >= priority(victim);
  }
  uint64_t order_epoch() const override { return epoch_; }
  // Sizes the shadow caches from the real cache's slots.
  void attach(int64_t n_slots) override;
  // The half-life (tokens) in use now.
  double half_life_tokens() const { return kAdaptiveHalfLives[current_]; }

 private:
  static constexpr size_t kCandidates = kAdaptiveHalfLives.size();
  int64_t n_layers_, n_experts_;
  int64_t sample_every_;  // shadows see layers with layer % sample_every_ == 0
  std::array<std::vector<double>, kCandidates> scores_;  // [n_keys] decayed log scores
  std::array<double, kCandidates> rate_{};               // ln 2 / half-life in steps
  std::array<std::unique_ptr<ExpertCacheTable>, kCandidates> shadow_;
  std::array<double, kCandidates> shadow_hits_{};  // exponentially decayed hit counts
  int64_t sampled_steps_ = 0;
  size_t current_ = 3;  // start with the longest half-life
  uint64_t epoch_ = 0;
};

}  // namespace moerun
