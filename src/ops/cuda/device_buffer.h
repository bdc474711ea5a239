// A growable device allocation for kernel scratch (grows outside the per-token path only).
#pragma once

#include <cstddef>

namespace moerun {

// Owns one cudaMalloc'ed buffer; ensure() reallocates (zero-filled) when it is too small.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  ~DeviceBuffer();
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  // Makes the buffer at least `bytes` long (synchronous when it allocates; keeps nothing).
  void ensure(size_t bytes);
  // The device pointer (null before the first ensure with bytes > 0).
  void* data() const { return data_; }
  // Typed view of the device pointer.
  template <typename T>
  T* as() const {
    return static_cast<T*>(data_);
  }
  // Allocated bytes.
  size_t capacity() const { return capacity_; }

 private:
  void* data_ = nullptr;
  size_t capacity_ = 0;
};

}  // namespace moerun
