// Checking every CUDA runtime call and kernel launch: a failure aborts with file, line and error.
#pragma once

#include <cuda_runtime.h>

#include "core/error.h"

namespace moerun {

// Aborts with the CUDA error string when `status` is not cudaSuccess.
inline void cuda_check(cudaError_t status, const char* what, const char* file, int line) {
  if (status != cudaSuccess) {
    abort_with(file, line, std::string(what) + ": " + cudaGetErrorString(status));
  }
}

}  // namespace moerun

// Checks the result of a CUDA runtime call.
#define MOERUN_CUDA_CHECK(call) ::moerun::cuda_check((call), #call, __FILE__, __LINE__)
// Checks that the last kernel launch was accepted.
#define MOERUN_CUDA_CHECK_LAUNCH() \
  ::moerun::cuda_check(cudaGetLastError(), "kernel launch", __FILE__, __LINE__)
