#include "moe/routing_override.h"

#include "core/error.h"
#include "moe/routing_trace.h"
#include "moe/synthetic_routing.h"

namespace moerun {

std::unique_ptr<RoutingOverride> make_routing_override(const std::string& spec, int64_t n_layers,
                                                       int64_t n_experts, int64_t top_k) {
  if (spec.empty() || spec == "model") return nullptr;
  if (spec.rfind("synthetic:", 0) == 0) {
    return std::make_unique<SyntheticRouting>(parse_synthetic_routing(spec), n_layers, n_experts,
                                              top_k);
  }
  if (spec.rfind("trace:", 0) == 0) {
    return std::make_unique<TraceReplay>(load_routing_trace(spec.substr(6)), n_layers, n_experts,
                                         top_k);
  }
  fail(
      "unknown routing '{}' (expected model, synthetic:reuse=R,within8=W,zipf=S[,seed=N] or "
      "trace:FILE)",
      spec);
}

bool is_benchmark_routing(const std::string& spec) {
  return !spec.empty() && spec != "model";
}

}  // namespace moerun
