// A synthetic routing trace of stated statistics (bench scenario S6): per layer and token, top_k
// distinct experts of which a fraction `reuse` were also chosen at the previous token, a fraction
// `within8` (reuse included) within the previous 8 tokens, and the rest drawn from experts outside
// that window; every draw is weighted by a Zipf popularity (exponent `zipf`) over a random
// permutation of the experts per layer. Seeded and deterministic.
#pragma once

#include <cstdint>
#include <random>
#include <string_view>
#include <vector>

#include "moe/routing_override.h"

namespace moerun {

// Statistics of a synthetic trace.
struct SyntheticRoutingParams {
  double reuse = 0.45;    // fraction of a token's experts chosen at the previous token
  double within8 = 0.80;  // fraction chosen within the previous 8 tokens (>= reuse)
  double zipf = 1.1;      // popularity exponent: weight of rank r is 1 / (r + 1)^zipf
  uint64_t seed = 1;
};

// Parses "synthetic:reuse=0.45,within8=0.8,zipf=1.1[,seed=N]" (keys in any order, each optional
// with the defaults above); throws Error naming the bad part.
SyntheticRoutingParams parse_synthetic_routing(std::string_view spec);

// The generator; as a RoutingOverride each layer continues its own sequence token by token.
class SyntheticRouting : public RoutingOverride {
 public:
  // For n_layers x n_experts experts, top_k per token (1 <= top_k <= n_experts).
  SyntheticRouting(const SyntheticRoutingParams& params, int64_t n_layers, int64_t n_experts,
                   int64_t top_k);

  // The next token of `layer`: ids [top_k] distinct, weights [top_k] descending, summing to 1.
  void next(int64_t layer, int32_t* ids, float* weights);
  // Replaces every token's choice with the next token of `layer` (weights summing to the
  // router's). top_k must be the generator's.
  void choose(int64_t layer, int64_t n_tokens, int64_t top_k, int32_t* ids,
              float* weights) override;

  // The popularity rank (0 = most popular) of `expert` in `layer`.
  int32_t rank_of(int64_t layer, int32_t expert) const {
    return rank_[static_cast<size_t>(layer * n_experts_ + expert)];
  }
  int64_t top_k() const { return top_k_; }

 private:
  static constexpr int64_t kWindow = 8;
  double weight(int64_t layer, int32_t expert) const;
  int32_t pick_pool(int64_t layer, const std::vector<int32_t>& pool);
  int32_t pick_fresh(int64_t layer, int64_t t);
  void take(int32_t expert) { chosen_[static_cast<size_t>(expert)] = chosen_epoch_; }
  bool taken(int32_t expert) const { return chosen_[static_cast<size_t>(expert)] == chosen_epoch_; }

  SyntheticRoutingParams params_;
  int64_t n_layers_, n_experts_, top_k_;
  std::vector<std::mt19937_64> rng_;  // [n_layers] each layer its own stream
  std::vector<double> rank_weight_;   // [n_experts] 1 / (r + 1)^zipf
  std::vector<double> rank_cdf_;      // [n_experts] cumulative rank_weight_
  std::vector<int32_t> by_rank_;      // [n_layers, n_experts] expert of each rank
  std::vector<int32_t> rank_;         // [n_layers, n_experts] rank of each expert
  std::vector<int64_t> last_seen_;    // [n_layers, n_experts] last token chosen, very negative
  std::vector<int32_t> history_;      // [n_layers, kWindow, top_k] ring of chosen ids
  std::vector<int64_t> token_;        // [n_layers] tokens generated
  std::vector<uint32_t> chosen_;      // [n_experts] == chosen_epoch_ when taken for this token
  uint32_t chosen_epoch_ = 0;
  std::vector<int32_t> recent_, older_;  // candidate pools (capacity kWindow * top_k)
  std::vector<float> scratch_;           // [top_k]
};

}  // namespace moerun
