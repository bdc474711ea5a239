// Stop strings in streamed text: text is released only once it cannot be the start of a stop
// string, so a stop string split across tokens is found and never shown.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace moerun {

// Watches generated text for any of a set of stop strings.
class StopStringMatcher {
 public:
  // Empty strings in `stops` are ignored.
  explicit StopStringMatcher(std::vector<std::string> stops);
  // Adds generated text; returns the part that is safe to show now. Once a stop string completes,
  // returns the text before it and stopped() becomes true; later calls return nothing.
  std::string push(std::string_view text);
  // Releases the held-back tail at the end of generation (nothing once stopped).
  std::string flush();
  // True once a stop string has been seen.
  bool stopped() const { return stopped_; }
  // The stop string that matched (empty when none).
  const std::string& matched() const { return matched_; }

 private:
  std::vector<std::string> stops_;
  std::string pending_;  // text that could still be the beginning of a stop string
  bool stopped_ = false;
  std::string matched_;
};

}  // namespace moerun
