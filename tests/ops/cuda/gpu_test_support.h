// Helpers of the CUDA kernel tests: device detection, device buffers, random data and the host
// emulation of the GPU's int8 activation quantisation.
#pragma once

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

namespace moerun::test {

// Whether a CUDA device is usable (tests GTEST_SKIP otherwise).
inline bool has_gpu() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return count > 0;
}

// A device allocation for tests, freed on scope exit.
class DeviceArray {
 public:
  explicit DeviceArray(size_t bytes) : bytes_(bytes) {
    EXPECT_EQ(cudaMalloc(&ptr_, bytes == 0 ? 1 : bytes), cudaSuccess);
  }
  ~DeviceArray() { cudaFree(ptr_); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;

  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }
  void* data() const { return ptr_; }

  // Copies host bytes in (bytes() of them).
  void upload(const void* src) {
    ASSERT_EQ(cudaMemcpy(ptr_, src, bytes_, cudaMemcpyHostToDevice), cudaSuccess);
  }
  // Fills with 0xFF bytes (NaN as f32), so that elements a kernel skips show up.
  void poison() { ASSERT_EQ(cudaMemset(ptr_, 0xff, bytes_), cudaSuccess); }
  // Copies the contents out as a vector of T.
  template <typename T>
  std::vector<T> download() const {
    std::vector<T> out(bytes_ / sizeof(T));
    EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    EXPECT_EQ(cudaMemcpy(out.data(), ptr_, out.size() * sizeof(T), cudaMemcpyDeviceToHost),
              cudaSuccess);
    return out;
  }
  size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// n values from N(0, 1).
inline std::vector<float> random_normal(size_t n, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = normal(rng);
  return v;
}

// The GPU's activation quantisation of one row (cols a multiple of 32), replayed on the host
// with the same IEEE operations: per 32 values d = max|x| / 127, q = round-half-even(x / d).
// Returns x^ = d * q (exact in double) and the scales d per group.
inline void emulate_q8(const float* x, int64_t cols, double* xhat, float* scales) {
  for (int64_t g = 0; g < cols / 32; ++g) {
    float amax = 0.0f;
    for (int l = 0; l < 32; ++l) amax = std::fmax(amax, std::fabs(x[g * 32 + l]));
    const float d = amax / 127.0f;
    scales[g] = d;
    for (int l = 0; l < 32; ++l) {
      float q = d > 0.0f ? std::nearbyint(x[g * 32 + l] / d) : 0.0f;
      q = std::fmax(-127.0f, std::fmin(127.0f, q));
      xhat[g * 32 + l] = static_cast<double>(d) * q;
    }
  }
}

// Bound on the f32 rounding of a sum of n_terms products (each term and partial sum rounded at
// most once per addition), relative to the sum of the magnitudes: (n_terms + slack) * 2^-23.
inline double f32_sum_bound(int64_t n_terms, double sum_abs, int64_t slack = 16) {
  return static_cast<double>(n_terms + slack) * std::ldexp(1.0, -23) * sum_abs;
}

}  // namespace moerun::test
