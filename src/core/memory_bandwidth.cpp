#include "core/memory_bandwidth.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "core/thread_pool.h"

namespace moerun {

double measure_read_bandwidth(ThreadPool& pool, size_t bytes, int repeats) {
  const size_t n = bytes / sizeof(uint64_t);
  auto data = std::make_unique_for_overwrite<uint64_t[]>(n);  // [n] u64
  const int threads = pool.size();
  const size_t slice = (n + static_cast<size_t>(threads) - 1) / static_cast<size_t>(threads);
  // Fault the pages in from the threads that will read them (first touch places them).
  pool.parallel_for(threads, [&](int64_t t, int) {
    const size_t b = static_cast<size_t>(t) * slice;
    const size_t e = std::min(n, b + slice);
    for (size_t i = b; i < e; ++i) data[i] = i;
  });
  std::vector<uint64_t> sums(static_cast<size_t>(threads));
  double best = 0.0;
  for (int r = 0; r < repeats; ++r) {
    const auto start = std::chrono::steady_clock::now();
    pool.parallel_for(threads, [&](int64_t t, int) {
      const size_t b = static_cast<size_t>(t) * slice;
      const size_t e = std::min(n, b + slice);
      // Four independent accumulators so the loop is bound by loads, not by the add chain.
      uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      size_t i = b;
      for (; i + 4 <= e; i += 4) {
        s0 += data[i];
        s1 += data[i + 1];
        s2 += data[i + 2];
        s3 += data[i + 3];
      }
      for (; i < e; ++i) s0 += data[i];
      sums[static_cast<size_t>(t)] = s0 + s1 + s2 + s3;
    });
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best = std::max(best, static_cast<double>(n * sizeof(uint64_t)) / secs);
  }
  // Keep the sums observable so the reads cannot be optimised away.
  std::atomic_signal_fence(std::memory_order_seq_cst);
  volatile uint64_t sink = 0;
  for (uint64_t s : sums) sink = sink + s;
  (void)sink;
  return best;
}

}  // namespace moerun
