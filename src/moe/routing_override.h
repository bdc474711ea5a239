// Hooks on the router's choice of every MoE layer: an override that replaces it (benchmark modes:
// synthetic or replayed routing, refused by `serve`) and an observer that sees the final choice
// (profiling, trace recording). The model calls both from moe_block; null hooks cost nothing.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace moerun {

// Replaces the router's choice in place.
class RoutingOverride {
 public:
  virtual ~RoutingOverride() = default;
  // ids and weights [n_tokens, top_k] of `layer` hold the router's choice; overwrite them with
  // distinct ids in [0, n_experts) per token and weights summing to the router's per token.
  virtual void choose(int64_t layer, int64_t n_tokens, int64_t top_k, int32_t* ids,
                      float* weights) = 0;
};

// Sees the routing that the experts will run (after any override).
class RoutingObserver {
 public:
  virtual ~RoutingObserver() = default;
  // ids and weights [n_tokens, top_k] of `layer`, tokens in batch order.
  virtual void observe(int64_t layer, int64_t n_tokens, int64_t top_k, const int32_t* ids,
                       const float* weights) = 0;
};

// The hooks moe_block applies; either may be null.
struct RoutingHooks {
  RoutingOverride* replace = nullptr;
  RoutingObserver* observe = nullptr;
};

// Parses a `--routing` value: "model" (null: the router decides), "synthetic:reuse=R,within8=W,
// zipf=S[,seed=N]" (SyntheticRouting) or "trace:FILE" (a trace recorded by `moerun profile
// --trace`, replayed token by token in a cycle). The override is built for the model's shape and
// checked against it; throws Error naming what is wrong.
std::unique_ptr<RoutingOverride> make_routing_override(const std::string& spec, int64_t n_layers,
                                                       int64_t n_experts, int64_t top_k);

// True for routing specs that replace the model's routing (a benchmark mode, not for serving).
bool is_benchmark_routing(const std::string& spec);

}  // namespace moerun
