// Measures how fast the CPU threads of a pool can stream memory (the cost model's CPU constant).
#pragma once

#include <cstddef>

namespace moerun {

class ThreadPool;

// Best-of-`repeats` read bandwidth in bytes per second over a `bytes`-sized buffer (faulted in
// first), each thread of `pool` summing its own contiguous slice.
double measure_read_bandwidth(ThreadPool& pool, size_t bytes = size_t{1} << 30, int repeats = 5);

}  // namespace moerun
