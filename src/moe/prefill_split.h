// Prefill in the hybrid mode: which missed experts of a chunk of prompt tokens stream to the GPU
// (through staging slots, computed there) and which the CPU computes, so that the copy engine and
// the CPU, working at the same time, finish as early as possible.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace moerun {

class CostModel;

// The times the split weighs, for one expert of the layer.
struct PrefillCosts {
  double copy_seconds = 0;           // copy to the GPU (its kernel hides behind the copies)
  double cpu_stream_seconds = 0;     // the CPU reading the expert's weights once
  double cpu_seconds_per_token = 0;  // the CPU's compute per token routed to it

  // Seconds of the CPU for one expert applied to `tokens` tokens (stream- or compute-bound).
  double cpu_seconds(int64_t tokens) const;
};

// The costs of an expert of `expert_bytes` from the cost model's measured constants.
PrefillCosts prefill_costs(const CostModel& cost, int64_t expert_bytes);

// Chooses the prefill split of one layer. tokens [n]: tokens routed to each missed expert.
// Experts go to the GPU in order of decreasing tokens (the CPU's time grows with tokens, a copy's
// does not) until moving one more would not lower max(copy time, CPU time); to_gpu [n] receives 1
// for those. Ties keep the lower index first, so the result is deterministic. Returns the number
// sent to the GPU; `order` is scratch (no allocation once it holds n entries).
int64_t split_prefill_misses(const PrefillCosts& costs, std::span<const int32_t> tokens,
                             std::span<uint8_t> to_gpu, std::vector<int32_t>& order);

}  // namespace moerun
