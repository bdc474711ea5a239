// Routing traces: the experts each layer chose for each token, recorded by `moerun profile
// --trace` and replayed in place of the router (a benchmark mode).
//
// File format (little endian): a 32-byte header
//   char magic[8] = "MOERTRC1"; u32 version = 1; u32 n_layers; u32 n_experts; u32 top_k;
//   u64 n_tokens;
// then i32 ids [n_tokens, n_layers, top_k]. Loading checks every field, the exact file size, and
// that each (token, layer) holds top_k distinct ids in [0, n_experts).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "moe/routing_override.h"

namespace moerun {

// A whole trace in memory.
struct RoutingTrace {
  int64_t n_layers = 0;
  int64_t n_experts = 0;
  int64_t top_k = 0;
  int64_t n_tokens = 0;
  std::vector<int32_t> ids;  // [n_tokens, n_layers, top_k]

  // The top_k ids of `token` in `layer`.
  const int32_t* at(int64_t token, int64_t layer) const {
    return ids.data() + (token * n_layers + layer) * top_k;
  }
};

// Writes `trace` to `path`; throws Error naming the file when it cannot be written.
void save_routing_trace(const RoutingTrace& trace, const std::string& path);
// Reads and fully validates a trace; throws Error naming the file and the problem.
RoutingTrace load_routing_trace(const std::string& path);
// The same from bytes in memory (`label` names them in errors).
RoutingTrace parse_routing_trace(const uint8_t* bytes, size_t size, const std::string& label);

// Replays a trace token by token (each layer keeps its own cursor and wraps around at the end).
// Ids come from the trace; the router's weights are kept, in the router's order.
class TraceReplay : public RoutingOverride {
 public:
  // The trace must match the model: throws Error naming the field that differs.
  TraceReplay(RoutingTrace trace, int64_t n_layers, int64_t n_experts, int64_t top_k);
  void choose(int64_t layer, int64_t n_tokens, int64_t top_k, int32_t* ids,
              float* weights) override;

 private:
  RoutingTrace trace_;
  std::vector<int64_t> cursor_;  // [n_layers] next token of each layer
};

}  // namespace moerun
