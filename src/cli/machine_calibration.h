// Measuring this machine's cost-model constants (`moerun check`) and finding them for a run
// (`moerun bench`): the stored calibration when it fits this machine, else a quick CPU measurement.
#pragma once

#include <cstdint>
#include <string>

#include "moe/cost_model.h"

namespace moerun {
class ThreadPool;
}

namespace moerun::cli {

// Size of the expert-sized probe copy when no model says otherwise: one Q4_K expert of
// Qwen3-Next-80B-A3B (3 x 2048 x 512 weights at 4.5 bits).
inline constexpr int64_t kDefaultExpertBytes = 3 * 2048 * 512 * 9 / 16;

// This machine as a calibration names it: CPU model, `threads`, name of the first GPU (if any).
MachineIdentity current_machine(int threads);

// Measures every constant with the threads of `pool`: CPU read bandwidth (pool and 1 thread), a
// 64-token Q4_K GEMM, and with a GPU pinned/pageable 1 GiB copies and an `expert_bytes` copy.
Calibration measure_calibration(ThreadPool& pool, int64_t expert_bytes);

// The constants for a run on `pool`: the stored calibration when it was measured on this machine
// with as many threads, else the CPU constants measured now (a few seconds; GPU fields 0). `note`
// says which, and why the file was not used.
Calibration calibration_for_run(ThreadPool& pool, std::string& note);

// The current UTC time as "YYYY-MM-DDTHH:MM:SSZ".
std::string utc_now();

}  // namespace moerun::cli
