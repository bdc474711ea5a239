// Wall-time accounting of the stages of a forward pass, for `--profile`; a disabled clock costs
// one branch per stage.
#pragma once

#include <array>
#include <chrono>

namespace moerun {

// Accumulates seconds per stage; single-threaded (the engine thread drives the model).
class StageClock {
 public:
  // The stages a decoder reports.
  enum Stage : int { embed, attention, deltanet, router_shared, experts, output, kStages };

  // Starts or stops accounting (times accumulate only while enabled).
  void enable(bool on) { enabled_ = on; }
  bool enabled() const { return enabled_; }
  // Adds `seconds` to `stage`.
  void add(Stage stage, double seconds) { seconds_[stage] += seconds; }
  // Seconds accumulated for `stage`.
  double seconds(Stage stage) const { return seconds_[stage]; }
  // Clears all stages.
  void reset() { seconds_.fill(0.0); }
  // Display name of a stage, e.g. "deltanet".
  static const char* name(Stage stage);

  // Times its own lifetime into `stage` when the clock is enabled (the clock may be null).
  class Scope {
   public:
    Scope(StageClock* clock, Stage stage)
        : clock_(clock && clock->enabled_ ? clock : nullptr), stage_(stage) {
      if (clock_) start_ = std::chrono::steady_clock::now();
    }
    ~Scope() {
      if (clock_) {
        clock_->add(
            stage_,
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
      }
    }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    StageClock* clock_;
    Stage stage_;
    std::chrono::steady_clock::time_point start_;
  };

 private:
  bool enabled_ = false;
  std::array<double, kStages> seconds_{};
};

inline const char* StageClock::name(Stage stage) {
  switch (stage) {
    case embed:
      return "embedding";
    case attention:
      return "attention";
    case deltanet:
      return "deltanet";
    case router_shared:
      return "router+shared expert";
    case experts:
      return "routed experts";
    case output:
      return "final norm+lm_head";
    case kStages:
      break;
  }
  return "?";
}

}  // namespace moerun
