#include "moe/synthetic_routing.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <string>

#include "core/error.h"

namespace moerun {
namespace {

constexpr int64_t kNeverSeen = std::numeric_limits<int64_t>::min() / 2;

// A uniform double in [0, 1) from 53 random bits (the same on every standard library).
double uniform01(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11) * 0x1.0p-53;
}

// floor(x) plus one with probability frac(x): an integer whose mean is x.
int64_t randomized_round(double x, std::mt19937_64& rng) {
  const double f = std::floor(x);
  return static_cast<int64_t>(f) + (uniform01(rng) < x - f ? 1 : 0);
}

uint64_t mix_seed(uint64_t seed, uint64_t layer) {
  uint64_t z = seed + 0x9e3779b97f4a7c15ull * (layer + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

double parse_number(std::string_view key, std::string_view text) {
  double v = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size() || !std::isfinite(v)) {
    fail("synthetic routing: '{}={}' is not a number", key, text);
  }
  return v;
}

}  // namespace

SyntheticRoutingParams parse_synthetic_routing(std::string_view spec) {
  constexpr std::string_view kPrefix = "synthetic:";
  if (spec.substr(0, kPrefix.size()) != kPrefix) {
    fail(
        "routing '{}' does not start with 'synthetic:' (expected "
        "synthetic:reuse=0.45,within8=0.8,zipf=1.1[,seed=N])",
        spec);
  }
  SyntheticRoutingParams p;
  std::string_view rest = spec.substr(kPrefix.size());
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    const std::string_view item = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    const size_t eq = item.find('=');
    if (eq == std::string_view::npos) {
      fail("synthetic routing: '{}' is not key=value (keys: reuse, within8, zipf, seed)", item);
    }
    const std::string_view key = item.substr(0, eq), value = item.substr(eq + 1);
    if (key == "reuse") {
      p.reuse = parse_number(key, value);
    } else if (key == "within8") {
      p.within8 = parse_number(key, value);
    } else if (key == "zipf") {
      p.zipf = parse_number(key, value);
    } else if (key == "seed") {
      const auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), p.seed);
      if (value.empty() || ec != std::errc() || ptr != value.data() + value.size()) {
        fail("synthetic routing: 'seed={}' is not a non-negative integer", value);
      }
    } else {
      fail("synthetic routing: unknown key '{}' (keys: reuse, within8, zipf, seed)", key);
    }
  }
  if (p.reuse < 0 || p.reuse > 1) fail("synthetic routing: reuse={} is outside [0, 1]", p.reuse);
  if (p.within8 < p.reuse || p.within8 > 1) {
    fail("synthetic routing: within8={} is outside [reuse={}, 1] (it counts the reused experts)",
         p.within8, p.reuse);
  }
  if (p.zipf < 0 || p.zipf > 10) fail("synthetic routing: zipf={} is outside [0, 10]", p.zipf);
  return p;
}

SyntheticRouting::SyntheticRouting(const SyntheticRoutingParams& params, int64_t n_layers,
                                   int64_t n_experts, int64_t top_k)
    : params_(params), n_layers_(n_layers), n_experts_(n_experts), top_k_(top_k) {
  if (n_layers < 1 || n_experts < 1 || top_k < 1 || top_k > n_experts) {
    fail("synthetic routing needs 1 <= top_k <= n_experts (got {} layers, {} experts, top-{})",
         n_layers, n_experts, top_k);
  }
  const auto ne = static_cast<size_t>(n_experts);
  rank_weight_.resize(ne);
  rank_cdf_.resize(ne);
  double total = 0;
  for (size_t r = 0; r < ne; ++r) {
    rank_weight_[r] = std::pow(static_cast<double>(r + 1), -params.zipf);
    total += rank_weight_[r];
    rank_cdf_[r] = total;
  }
  const auto keys = static_cast<size_t>(n_layers * n_experts);
  by_rank_.resize(keys);
  rank_.resize(keys);
  last_seen_.assign(keys, kNeverSeen);
  history_.assign(static_cast<size_t>(n_layers * kWindow * top_k), -1);
  token_.assign(static_cast<size_t>(n_layers), 0);
  chosen_.assign(ne, 0);
  recent_.reserve(static_cast<size_t>(kWindow * top_k));
  older_.reserve(static_cast<size_t>(kWindow * top_k));
  scratch_.resize(static_cast<size_t>(top_k));
  for (int64_t l = 0; l < n_layers; ++l) {
    rng_.emplace_back(mix_seed(params.seed, static_cast<uint64_t>(l)));
    int32_t* perm = by_rank_.data() + l * n_experts;
    for (int64_t e = 0; e < n_experts; ++e) perm[e] = static_cast<int32_t>(e);
    std::mt19937_64& rng = rng_.back();
    for (int64_t i = n_experts - 1; i > 0; --i) {  // Fisher-Yates
      std::swap(perm[i], perm[static_cast<int64_t>(rng() % static_cast<uint64_t>(i + 1))]);
    }
    for (int64_t r = 0; r < n_experts; ++r) {
      rank_[static_cast<size_t>(l * n_experts + perm[r])] = static_cast<int32_t>(r);
    }
  }
}

double SyntheticRouting::weight(int64_t layer, int32_t expert) const {
  return rank_weight_[static_cast<size_t>(rank_of(layer, expert))];
}

int32_t SyntheticRouting::pick_pool(int64_t layer, const std::vector<int32_t>& pool) {
  double total = 0;
  for (int32_t e : pool) {
    if (!taken(e)) total += weight(layer, e);
  }
  if (total <= 0) return -1;
  double u = uniform01(rng_[static_cast<size_t>(layer)]) * total;
  int32_t last = -1;
  for (int32_t e : pool) {
    if (taken(e)) continue;
    last = e;
    u -= weight(layer, e);
    if (u < 0) break;
  }
  take(last);
  return last;
}

int32_t SyntheticRouting::pick_fresh(int64_t layer, int64_t t) {
  const int64_t base = layer * n_experts_;
  auto eligible = [&](int32_t e) {
    return !taken(e) && last_seen_[static_cast<size_t>(base + e)] < t - kWindow;
  };
  std::mt19937_64& rng = rng_[static_cast<size_t>(layer)];
  // Rejection from the whole popularity distribution: cheap while most mass is eligible.
  for (int tries = 0; tries < 64; ++tries) {
    const double u = uniform01(rng) * rank_cdf_.back();
    const auto r = std::upper_bound(rank_cdf_.begin(), rank_cdf_.end(), u) - rank_cdf_.begin();
    const int32_t e = by_rank_[static_cast<size_t>(base + std::min<int64_t>(r, n_experts_ - 1))];
    if (eligible(e)) {
      take(e);
      return e;
    }
  }
  // Otherwise one pass over the eligible experts.
  double total = 0;
  for (int32_t e = 0; e < n_experts_; ++e) {
    if (eligible(e)) total += weight(layer, e);
  }
  if (total <= 0) return -1;
  double u = uniform01(rng) * total;
  int32_t last = -1;
  for (int32_t e = 0; e < n_experts_; ++e) {
    if (!eligible(e)) continue;
    last = e;
    u -= weight(layer, e);
    if (u < 0) break;
  }
  take(last);
  return last;
}

void SyntheticRouting::next(int64_t layer, int32_t* ids, float* weights) {
  MOERUN_CHECK(layer >= 0 && layer < n_layers_);
  const auto l = static_cast<size_t>(layer);
  std::mt19937_64& rng = rng_[l];
  const int64_t t = token_[l];
  const int64_t base = layer * n_experts_;
  if (++chosen_epoch_ == 0) {
    std::fill(chosen_.begin(), chosen_.end(), 0u);
    chosen_epoch_ = 1;
  }
  // Candidate pools: the previous token's experts, and those last chosen 2..8 tokens ago.
  recent_.clear();
  older_.clear();
  for (int64_t d = 1; d <= kWindow && d <= t; ++d) {
    const int32_t* h = history_.data() + (layer * kWindow + (t - d) % kWindow) * top_k_;
    for (int64_t k = 0; k < top_k_; ++k) {
      if (last_seen_[static_cast<size_t>(base + h[k])] != t - d) continue;  // seen later
      (d == 1 ? recent_ : older_).push_back(h[k]);
    }
  }
  const auto n_recent = static_cast<int64_t>(recent_.size());
  const auto n_older_pool = static_cast<int64_t>(older_.size());
  const int64_t n_reuse =
      std::min(randomized_round(params_.reuse * static_cast<double>(top_k_), rng), n_recent);
  const int64_t n_within = randomized_round(params_.within8 * static_cast<double>(top_k_), rng);
  const int64_t n_older = std::min(std::max<int64_t>(0, n_within - n_reuse), n_older_pool);
  int64_t n = 0;
  for (int64_t i = 0; i < n_reuse; ++i) ids[n++] = pick_pool(layer, recent_);
  for (int64_t i = 0; i < n_older && n < top_k_; ++i) ids[n++] = pick_pool(layer, older_);
  // The rest from outside the window; when none is left there (few experts), from the window.
  while (n < top_k_) {
    int32_t e = pick_fresh(layer, t);
    if (e < 0) e = pick_pool(layer, older_);
    if (e < 0) e = pick_pool(layer, recent_);
    MOERUN_CHECK(e >= 0);
    ids[n++] = e;
  }
  // Weights: sorted exponential draws, normalised to 1.
  double sum = 0;
  for (int64_t k = 0; k < top_k_; ++k) {
    scratch_[static_cast<size_t>(k)] = static_cast<float>(-std::log(1.0 - uniform01(rng)) + 1e-3);
    sum += scratch_[static_cast<size_t>(k)];
  }
  std::sort(scratch_.begin(), scratch_.end(), [](float a, float b) { return a > b; });
  for (int64_t k = 0; k < top_k_; ++k) {
    weights[k] = static_cast<float>(scratch_[static_cast<size_t>(k)] / sum);
  }
  int32_t* h = history_.data() + (layer * kWindow + t % kWindow) * top_k_;
  for (int64_t k = 0; k < top_k_; ++k) {
    h[k] = ids[k];
    last_seen_[static_cast<size_t>(base + ids[k])] = t;
  }
  token_[l] = t + 1;
}

void SyntheticRouting::choose(int64_t layer, int64_t n_tokens, int64_t top_k, int32_t* ids,
                              float* weights) {
  MOERUN_CHECK(top_k == top_k_);
  for (int64_t t = 0; t < n_tokens; ++t) {
    float* w = weights + t * top_k;
    float router_sum = 0;
    for (int64_t k = 0; k < top_k; ++k) router_sum += w[k];
    next(layer, ids + t * top_k, w);
    for (int64_t k = 0; k < top_k; ++k) w[k] *= router_sum;
  }
}

}  // namespace moerun
