// Writes into device tables of pointers (the expert cache's (layer, expert) -> weights table) in
// stream order, from a list of updates in pinned host memory.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

namespace moerun {

// One entry to write: table[index] = value.
struct PointerUpdate {
  int64_t index = 0;
  const void* value = nullptr;
};

// Applies updates [n] (pinned, mapped host memory: read by the kernel when it runs, so they must
// stay unchanged until the stream reaches it) to `table` (device) on `stream`.
void apply_pointer_updates_cuda(const void** table, const PointerUpdate* updates, int64_t n,
                                cudaStream_t stream);

}  // namespace moerun
