// A batch checked against the sequence states it advances: runs of one sequence, positions, and
// the rows that want logits.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "model/language_model.h"
#include "model/sequence_caches.h"

namespace moerun {

// One contiguous run of a sequence's tokens inside a batch.
struct BatchRun {
  int64_t begin = 0;  // index of the first token in the batch
  int64_t count = 0;  // tokens in the run
  int64_t start = 0;  // position of the first token in its sequence
  CacheSequenceState* state = nullptr;
};

// A validated batch. build() keeps vector capacity, so steady-state decoding does not allocate.
struct BatchPlan {
  std::vector<BatchRun> runs;
  std::vector<int64_t> positions;   // [n] position of each token in its sequence
  std::vector<int32_t> run_of;      // [n] index into runs
  std::vector<int64_t> logit_rows;  // token indices with want_logits set, in batch order

  // Checks the batch (sizes, token ids in [0, vocab), sequence indices, one contiguous run per
  // sequence, states made by `owner`, capacity) and fills the plan; throws Error naming the
  // problem, before any state is touched.
  void build(const Batch& batch, std::span<SequenceState* const> states, const void* owner,
             int64_t vocab);
};

}  // namespace moerun
