#include "moe/cache_policy.h"

#include <cmath>
#include <limits>

#include "core/error.h"
#include "moe/adaptive_policy.h"

namespace moerun {
namespace {

constexpr double kNever = -std::numeric_limits<double>::infinity();

// ln(e^a + e^b) without overflow.
double log_add(double a, double b) {
  if (a == kNever) return b;
  if (b == kNever) return a;
  const double hi = a > b ? a : b;
  const double lo = a > b ? b : a;
  return hi + std::log1p(std::exp(lo - hi));
}

}  // namespace

CachePolicyKind parse_cache_policy(std::string_view name) {
  if (name == "lru") return CachePolicyKind::lru;
  if (name == "lfu") return CachePolicyKind::lfu;
  if (name == "static") return CachePolicyKind::static_profile;
  if (name == "adaptive") return CachePolicyKind::adaptive;
  fail("unknown cache policy '{}' (expected lru, lfu, static or adaptive)", name);
}

const char* cache_policy_name(CachePolicyKind kind) {
  switch (kind) {
    case CachePolicyKind::lru:
      return "lru";
    case CachePolicyKind::lfu:
      return "lfu";
    case CachePolicyKind::static_profile:
      return "static";
    case CachePolicyKind::adaptive:
      return "adaptive";
  }
  return "?";
}

LruPolicy::LruPolicy(int64_t n_keys) : last_(static_cast<size_t>(n_keys), -1) {}

void LruPolicy::on_use(int32_t key, int64_t step, int64_t /*uses*/) {
  last_[static_cast<size_t>(key)] = step;
}

double LruPolicy::priority(int32_t key) const {
  return static_cast<double>(last_[static_cast<size_t>(key)]);
}

DecayedLfuPolicy::DecayedLfuPolicy(int64_t n_keys, double half_life_steps)
    : log_score_(static_cast<size_t>(n_keys), kNever), rate_(std::log(2.0) / half_life_steps) {
  MOERUN_CHECK(half_life_steps > 0);
}

void DecayedLfuPolicy::on_use(int32_t key, int64_t step, int64_t uses) {
  double& s = log_score_[static_cast<size_t>(key)];
  s = log_add(s, std::log(static_cast<double>(uses)) + static_cast<double>(step) * rate_);
}

StaticPolicy::StaticPolicy(std::vector<double> counts) : counts_(std::move(counts)) {}

void StaticPolicy::on_use(int32_t /*key*/, int64_t /*step*/, int64_t /*uses*/) {}

FilteredLfuPolicy::FilteredLfuPolicy(int64_t n_keys, double half_life_steps)
    : DecayedLfuPolicy(n_keys, half_life_steps) {}

bool FilteredLfuPolicy::admit(int32_t candidate, int32_t victim) const {
  return priority(candidate) >= priority(victim);
}

std::unique_ptr<CachePolicy> make_cache_policy(
    CachePolicyKind kind, int64_t n_layers, int64_t n_experts,
    const std::vector<std::vector<uint64_t>>& profile_counts) {
  const int64_t n_keys = n_layers * n_experts;
  switch (kind) {
    case CachePolicyKind::lru:
      return std::make_unique<LruPolicy>(n_keys);
    case CachePolicyKind::lfu:
      return std::make_unique<DecayedLfuPolicy>(n_keys,
                                                kLfuHalfLifeTokens * static_cast<double>(n_layers));
    case CachePolicyKind::adaptive:
      return std::make_unique<AdaptivePolicy>(n_layers, n_experts);
    case CachePolicyKind::static_profile: {
      std::vector<double> counts(static_cast<size_t>(n_keys), 0.0);
      if (!profile_counts.empty()) {
        MOERUN_CHECK(static_cast<int64_t>(profile_counts.size()) == n_layers);
        for (int64_t l = 0; l < n_layers; ++l) {
          const auto& row = profile_counts[static_cast<size_t>(l)];
          MOERUN_CHECK(static_cast<int64_t>(row.size()) == n_experts);
          for (int64_t e = 0; e < n_experts; ++e) {
            counts[static_cast<size_t>(l * n_experts + e)] =
                static_cast<double>(row[static_cast<size_t>(e)]);
          }
        }
      }
      return std::make_unique<StaticPolicy>(std::move(counts));
    }
  }
  fail("unknown cache policy kind");
}

}  // namespace moerun
