// A batch of tokens of several sequences as the GPU kernels see it: positions, runs, and where
// each run's sequence keeps its caches. All pointers are device memory.
#pragma once

#include <cstdint>

namespace moerun {

// The tokens of one sequence are contiguous in the batch (a run); every kernel that touches
// sequence state finds it through the run.
struct DeviceBatch {
  int64_t n_tokens = 0;
  int64_t n_runs = 0;
  const int32_t* positions = nullptr;  // [n_tokens] position of each token in its sequence
  const int32_t* token_run = nullptr;  // [n_tokens] run of each token
  const int32_t* run_begin = nullptr;  // [n_runs] first token of each run
  const int32_t* run_count = nullptr;  // [n_runs] tokens of each run
  float* const* kv = nullptr;          // [n_runs] KV cache [n_kv_layers, 2, capacity, kv_width]
  const int32_t* capacity = nullptr;   // [n_runs] tokens each run's KV cache holds
  float* const* recurrent = nullptr;   // [n_runs] DeltaNet state [n_layers, conv + ssm floats]
};

}  // namespace moerun
