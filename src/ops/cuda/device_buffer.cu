#include "ops/cuda/device_buffer.h"

#include "ops/cuda/cuda_check.cuh"

namespace moerun {

DeviceBuffer::~DeviceBuffer() {
  if (data_ != nullptr) cudaFree(data_);
}

void DeviceBuffer::ensure(size_t bytes) {
  if (bytes <= capacity_) return;
  if (data_ != nullptr) MOERUN_CUDA_CHECK(cudaFree(data_));
  data_ = nullptr;
  capacity_ = 0;
  MOERUN_CUDA_CHECK(cudaMalloc(&data_, bytes));
  // Zero once so that rows a kernel reads but never wrote (skipped experts) hold defined values.
  MOERUN_CUDA_CHECK(cudaMemset(data_, 0, bytes));
  capacity_ = bytes;
}

}  // namespace moerun
