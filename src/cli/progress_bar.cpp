#include "cli/progress_bar.h"

#include <unistd.h>

#include <cstdio>

#include <fmt/format.h>

namespace moerun::cli {

ProgressBar::ProgressBar(std::string label)
    : label_(std::move(label)),
      start_(std::chrono::steady_clock::now()),
      tty_(isatty(STDERR_FILENO) != 0) {}

void ProgressBar::update(uint64_t done, uint64_t total) {
  done_ = done;
  const int percent = total ? static_cast<int>(100 * done / total) : 100;
  if (percent == last_percent_ || (!tty_ && percent / 10 == last_percent_ / 10)) return;
  last_percent_ = percent;
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double mbps = secs > 0 ? static_cast<double>(done) / secs / 1e6 : 0.0;
  constexpr int kWidth = 30;
  const int filled = percent * kWidth / 100;
  const std::string bar = std::string(static_cast<size_t>(filled), '#') +
                          std::string(static_cast<size_t>(kWidth - filled), '.');
  fmt::print(stderr, "{}{} [{}] {:3d}%  {:.2f}/{:.2f} GB  {:.0f} MB/s{}", tty_ ? "\r" : "", label_,
             bar, percent, static_cast<double>(done) / 1e9, static_cast<double>(total) / 1e9, mbps,
             tty_ ? "" : "\n");
  std::fflush(stderr);
}

double ProgressBar::finish() {
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  if (tty_) fmt::print(stderr, "\n");
  return secs > 0 ? static_cast<double>(done_) / secs : 0.0;
}

}  // namespace moerun::cli
