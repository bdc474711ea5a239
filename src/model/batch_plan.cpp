#include "model/batch_plan.h"

#include "core/error.h"

namespace moerun {

void BatchPlan::build(const Batch& batch, std::span<SequenceState* const> states, const void* owner,
                      int64_t vocab) {
  const int64_t n = batch.size();
  if (batch.sequence.size() != batch.tokens.size() ||
      batch.want_logits.size() != batch.tokens.size()) {
    fail("batch: {} tokens but {} sequence indices and {} logit flags", batch.tokens.size(),
         batch.sequence.size(), batch.want_logits.size());
  }
  runs.clear();
  logit_rows.clear();
  positions.resize(static_cast<size_t>(n));
  run_of.resize(static_cast<size_t>(n));
  for (int64_t t = 0; t < n; ++t) {
    const int32_t id = batch.tokens[t];
    if (id < 0 || id >= vocab) {
      fail("batch: token {} has id {}, outside the vocabulary [0, {})", t, id, vocab);
    }
    const int32_t seq = batch.sequence[t];
    if (seq < 0 || static_cast<size_t>(seq) >= states.size() || states[seq] == nullptr) {
      fail("batch: token {} names sequence {}, but {} states were given", t, seq, states.size());
    }
    if (runs.empty() || batch.sequence[t - 1] != seq) {
      auto* state = dynamic_cast<CacheSequenceState*>(states[seq]);
      if (state == nullptr || state->owner() != owner) {
        fail("batch: the state of sequence {} was not made by this model", seq);
      }
      for (const BatchRun& r : runs) {
        if (batch.sequence[r.begin] == seq) {
          fail("batch: the tokens of sequence {} are not contiguous", seq);
        }
        if (r.state == state) {
          fail("batch: sequences {} and {} share one state", batch.sequence[r.begin], seq);
        }
      }
      runs.push_back(BatchRun{t, 0, state->position(), state});
    }
    BatchRun& run = runs.back();
    positions[t] = run.start + run.count;
    run_of[t] = static_cast<int32_t>(runs.size() - 1);
    ++run.count;
    if (batch.want_logits[t]) logit_rows.push_back(t);
  }
  for (const BatchRun& r : runs) {
    if (r.start + r.count > r.state->capacity()) {
      fail("sequence {}: {} new tokens at position {} need {} positions, but its capacity is {}",
           batch.sequence[r.begin], r.count, r.start, r.start + r.count, r.state->capacity());
    }
  }
}

}  // namespace moerun
