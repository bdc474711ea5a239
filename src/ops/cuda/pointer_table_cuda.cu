#include "ops/cuda/cuda_check.cuh"
#include "ops/cuda/pointer_table_cuda.h"

namespace moerun {
namespace {

__global__ void apply_pointer_updates_kernel(const void** table, const PointerUpdate* updates,
                                             int64_t n) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) table[updates[i].index] = updates[i].value;
}

}  // namespace

void apply_pointer_updates_cuda(const void** table, const PointerUpdate* updates, int64_t n,
                                cudaStream_t stream) {
  if (n == 0) return;
  constexpr int kThreads = 128;
  apply_pointer_updates_kernel<<<static_cast<unsigned>((n + kThreads - 1) / kThreads), kThreads, 0,
                                 stream>>>(table, updates, n);
  MOERUN_CUDA_CHECK_LAUNCH();
}

}  // namespace moerun
