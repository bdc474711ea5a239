// A one-line progress display on stderr (redrawn in place on a terminal, sparse lines otherwise).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace moerun::cli {

// Shows `label`, percentage, bytes and throughput; call update() as work advances.
class ProgressBar {
 public:
  explicit ProgressBar(std::string label);
  // Reports `done` of `total` bytes.
  void update(uint64_t done, uint64_t total);
  // Ends the line and returns the average throughput in bytes per second.
  double finish();

 private:
  std::string label_;
  std::chrono::steady_clock::time_point start_;
  bool tty_;
  int last_percent_ = -1;
  uint64_t done_ = 0;
};

}  // namespace moerun::cli
