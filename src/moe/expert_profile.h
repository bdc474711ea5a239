// Expert usage profiles: how often each layer chose each expert, and which experts were chosen
// together for one token (co-occurrence), for a named model; written by `moerun profile` and read
// by `--expert-profile FILE` to warm-start the VRAM cache.
//
// JSON layout:
//   {"format": "moerun-expert-profile", "version": 1,
//    "model": {"architecture": "qwen3next", "n_layers": 48, "n_experts": 512, "top_k": 10,
//              "shape_hash": "<16 hex digits>"},
//    "tokens": N,
//    "layers": [{"counts": [n_experts integers], "pairs": [[a, b, count], ...]}, ...]}
// Co-occurrence is stored sparsely: per layer only the most frequent pairs (a < b), count
// descending, at most max_pairs per layer (2 x n_experts by default: 1,024 of the 130,816 pairs of
// a 512-expert layer, about 1 MB of JSON for 48 layers). The full triangle is counted while
// profiling and cut only when saving; the pairs that matter for placement (experts that should be
// resident together) are the frequent ones.
//
// Loading validates everything (JSON syntax and nesting, every field's type and range, array
// sizes, pair order, counts consistent with tokens x top_k) and checks the model's identity; any
// problem is an Error naming the file and the field, so the caller can report it and go on without
// the profile.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "moe/routing_override.h"
#include "moe/routing_trace.h"

namespace moerun {

// Which model a profile belongs to.
struct ProfileModel {
  std::string architecture;
  int64_t n_layers = 0;
  int64_t n_experts = 0;
  int64_t top_k = 0;
  std::string shape_hash;  // hash of every tensor's name and shape (not its type)
};

// Two experts chosen for the same token, and how often.
struct ExpertPair {
  int32_t a = 0;  // a < b
  int32_t b = 0;
  uint64_t count = 0;
};

// A whole profile.
struct ExpertProfile {
  ProfileModel model;
  uint64_t tokens = 0;                         // tokens profiled (per layer)
  std::vector<std::vector<uint64_t>> counts;   // [n_layers][n_experts] times chosen
  std::vector<std::vector<ExpertPair>> pairs;  // [n_layers] most frequent pairs, count descending
};

// The JSON text of `profile`.
std::string expert_profile_json(const ExpertProfile& profile);
// Writes `profile` to `path`; throws Error naming the file when it cannot.
void save_expert_profile(const ExpertProfile& profile, const std::string& path);
// Parses and validates a profile (`label` names it in errors).
ExpertProfile parse_expert_profile(std::string_view text, const std::string& label);
// Reads `path` and parses it.
ExpertProfile load_expert_profile(const std::string& path);
// Throws Error naming the first field where `profile` was made for another model than `model`.
void check_profile_model(const ExpertProfile& profile, const ProfileModel& model,
                         const std::string& label);

// Records routing as a RoutingObserver: per-expert counts, full pair counts and (optionally) the
// trace, token by token.
class ProfileRecorder : public RoutingObserver {
 public:
  // For `model`'s shape; keeps the trace when `keep_trace`.
  ProfileRecorder(ProfileModel model, bool keep_trace);
  void observe(int64_t layer, int64_t n_tokens, int64_t top_k, const int32_t* ids,
               const float* weights) override;
  // The profile so far, with at most `max_pairs` pairs per layer (< 0: 2 x n_experts).
  ExpertProfile profile(int64_t max_pairs = -1) const;
  // The trace so far ([tokens, layers, top_k]); requires keep_trace.
  RoutingTrace trace() const;

 private:
  ProfileModel model_;
  bool keep_trace_;
  std::vector<uint64_t> tokens_per_layer_;             // [n_layers]
  std::vector<std::vector<uint64_t>> counts_;          // [n_layers][n_experts]
  std::vector<std::vector<uint64_t>> pair_counts_;     // [n_layers][upper triangle]
  std::vector<std::vector<int32_t>> trace_per_layer_;  // [n_layers][tokens * top_k]
};

}  // namespace moerun
