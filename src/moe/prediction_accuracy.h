// Accounting of expert prediction (prefetch): the experts predicted for a layer's next step are
// compared with the ones it then chooses; accuracy = fraction of the chosen (distinct) experts that
// were predicted. Counts go to ExpertStats (record_prediction). No allocation after construction.
#pragma once

#include <cstdint>
#include <vector>

namespace moerun {

class ExpertStats;

// Pending predictions of every layer and the running totals.
class PredictionAccuracy {
 public:
  // For n_layers x n_experts experts.
  PredictionAccuracy(int64_t n_layers, int64_t n_experts);

  // Sets the prediction for the next step of `layer`: ids [n] (repeats allowed), replacing any
  // earlier one.
  void predict(int64_t layer, const int32_t* ids, int64_t n);
  // Compares the chosen ids [n_assign] of `layer`'s step with its prediction and clears it.
  // Returns how many distinct chosen experts were predicted; adds (predicted, distinct chosen) to
  // the totals and to `stats` (may be null). A step without a prediction counts nothing.
  int64_t check(int64_t layer, const int32_t* ids, int64_t n_assign, ExpertStats* stats);

  // Chosen experts that had been predicted / chosen experts of steps with a prediction.
  uint64_t predicted() const { return predicted_; }
  uint64_t checked() const { return checked_; }
  // predicted / checked (0 when nothing was checked).
  double accuracy() const {
    return checked_ == 0 ? 0.0 : static_cast<double>(predicted_) / static_cast<double>(checked_);
  }

 private:
  int64_t n_layers_, n_experts_;
  std::vector<uint32_t> predicted_mark_;  // [n_layers, n_experts] == epoch_[layer]: predicted
  std::vector<uint32_t> epoch_;           // [n_layers] current prediction's epoch; 0: none
  std::vector<uint8_t> has_prediction_;   // [n_layers]
  std::vector<uint32_t> seen_;            // [n_experts] == seen_epoch_: counted in this check
  uint32_t seen_epoch_ = 0;
  uint64_t predicted_ = 0, checked_ = 0;
};

}  // namespace moerun
