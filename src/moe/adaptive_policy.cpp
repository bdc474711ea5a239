#include "moe/adaptive_policy.h"

#include <cmath>
#include <limits>

#include "core/error.h"
#include "moe/expert_cache_table.h"

namespace moerun {
namespace {

// Shadows see one layer in kSampleEvery (all layers of small models).
constexpr int64_t kSampleEvery = 8;
// Sampled steps between decisions, and the decay of the shadows' hit counts per decision.
constexpr int64_t kDecideEvery = 64;
constexpr double kHitDecay = 0.5;

double log_add(double a, double b) {
  if (a == -std::numeric_limits<double>::infinity()) return b;
  const double hi = a > b ? a : b;
  const double lo = a > b ? b : a;
  return hi + std::log1p(std::exp(lo - hi));
}

}  // namespace

AdaptivePolicy::AdaptivePolicy(int64_t n_layers, int64_t n_experts)
    : n_layers_(n_layers),
      n_experts_(n_experts),
      sample_every_(n_layers >= 4 * kSampleEvery ? kSampleEvery : 1) {
  const auto n_keys = static_cast<size_t>(n_layers * n_experts);
  for (size_t c = 0; c < kCandidates; ++c) {
    scores_[c].assign(n_keys, -std::numeric_limits<double>::infinity());
    rate_[c] = std::log(2.0) / (kAdaptiveHalfLives[c] * static_cast<double>(n_layers));
  }
}

AdaptivePolicy::~AdaptivePolicy() = default;

void AdaptivePolicy::attach(int64_t n_slots) {
  const int64_t sampled = (n_layers_ + sample_every_ - 1) / sample_every_;
  const int64_t shadow_slots = n_slots * sampled / n_layers_;
  for (size_t c = 0; c < kCandidates; ++c) {
    shadow_[c].reset();
    if (shadow_slots < 1 || n_slots >= n_layers_ * n_experts_) continue;  // nothing to learn
    shadow_[c] = std::make_unique<ExpertCacheTable>(
        n_layers_, n_experts_, shadow_slots,
        std::make_unique<FilteredLfuPolicy>(n_layers_ * n_experts_,
                                            kAdaptiveHalfLives[c] * static_cast<double>(sampled)));
  }
}

void AdaptivePolicy::on_step(int64_t layer, const int32_t* ids, int64_t n_assign,
                             int64_t max_admissions) {
  if (layer % sample_every_ != 0 || !shadow_[0]) return;
  for (size_t c = 0; c < kCandidates; ++c) {
    shadow_hits_[c] += static_cast<double>(
        shadow_[c]->plan_step(layer, ids, n_assign, max_admissions).hit_assignments);
  }
  if (++sampled_steps_ % kDecideEvery != 0) return;
  size_t best = current_;
  for (size_t c = 0; c < kCandidates; ++c) {
    if (shadow_hits_[c] > shadow_hits_[best]) best = c;
  }
  if (best != current_) {
    current_ = best;
    ++epoch_;
  }
  for (double& h : shadow_hits_) h *= kHitDecay;
}

void AdaptivePolicy::on_use(int32_t key, int64_t step, int64_t uses) {
  const double lu = std::log(static_cast<double>(uses));
  for (size_t c = 0; c < kCandidates; ++c) {
    double& s = scores_[c][static_cast<size_t>(key)];
    s = log_add(s, lu + static_cast<double>(step) * rate_[c]);
  }
}

}  // namespace moerun
