#include "ops/cuda/device_info.h"

#include <unistd.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "ops/cuda/cuda_check.cuh"

namespace moerun {

std::vector<GpuInfo> list_gpus() {
  std::vector<GpuInfo> gpus;
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky "no device" error
    return gpus;
  }
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp prop{};
    MOERUN_CUDA_CHECK(cudaGetDeviceProperties(&prop, i));
    GpuInfo g;
    g.index = i;
    g.name = prop.name;
    g.compute_major = prop.major;
    g.compute_minor = prop.minor;
    g.multiprocessors = prop.multiProcessorCount;
    size_t free_b = 0, total_b = 0;
    MOERUN_CUDA_CHECK(cudaSetDevice(i));
    MOERUN_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    g.total_bytes = total_b;
    g.free_bytes = free_b;
    gpus.push_back(g);
  }
  return gpus;
}

namespace {

// Best rate of `repeats` timed rounds (after one warm-up) of copying `bytes` from src to dst in
// pieces of `chunk` bytes, counting `factor` x bytes per round (2 for a device copy: read+write).
double best_copy_rate(void* dst, const void* src, uint64_t bytes, uint64_t chunk,
                      cudaMemcpyKind kind, int repeats, double factor) {
  cudaEvent_t start, stop;
  MOERUN_CUDA_CHECK(cudaEventCreate(&start));
  MOERUN_CUDA_CHECK(cudaEventCreate(&stop));
  double best = 0.0;
  for (int r = 0; r < repeats + 1; ++r) {  // the first round is a warm-up
    MOERUN_CUDA_CHECK(cudaEventRecord(start));
    for (uint64_t off = 0; off < bytes; off += chunk) {
      MOERUN_CUDA_CHECK(cudaMemcpyAsync(static_cast<uint8_t*>(dst) + off,
                                        static_cast<const uint8_t*>(src) + off,
                                        std::min(chunk, bytes - off), kind));
    }
    MOERUN_CUDA_CHECK(cudaEventRecord(stop));
    MOERUN_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0.0f;
    MOERUN_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    if (r > 0) best = std::max(best, factor * static_cast<double>(bytes) / (ms * 1e-3));
  }
  MOERUN_CUDA_CHECK(cudaEventDestroy(start));
  MOERUN_CUDA_CHECK(cudaEventDestroy(stop));
  return best;
}

}  // namespace

double measure_h2d_bandwidth(int gpu, uint64_t bytes, bool pinned, int repeats, uint64_t chunk) {
  MOERUN_CUDA_CHECK(cudaSetDevice(gpu));
  void* device = nullptr;
  MOERUN_CUDA_CHECK(cudaMalloc(&device, bytes));
  void* host = nullptr;
  std::unique_ptr<uint8_t[]> pageable;
  if (pinned) {
    MOERUN_CUDA_CHECK(cudaMallocHost(&host, bytes));
  } else {
    pageable = std::make_unique<uint8_t[]>(bytes);
    host = pageable.get();
  }
  std::fill_n(static_cast<uint8_t*>(host), bytes, uint8_t{1});
  const double best = best_copy_rate(device, host, bytes, chunk == 0 ? bytes : chunk,
                                     cudaMemcpyHostToDevice, repeats, 1.0);
  if (pinned) MOERUN_CUDA_CHECK(cudaFreeHost(host));
  MOERUN_CUDA_CHECK(cudaFree(device));
  return best;
}

double measure_h2d_in_place(int gpu, const void* host, uint64_t bytes, uint64_t chunk,
                            int repeats) {
  MOERUN_CUDA_CHECK(cudaSetDevice(gpu));
  const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t lo = reinterpret_cast<uintptr_t>(host) / page * page;
  const uintptr_t hi = (reinterpret_cast<uintptr_t>(host) + bytes + page - 1) / page * page;
  void* base = reinterpret_cast<void*>(lo);
  bool registered = false;
  for (unsigned flags : {cudaHostRegisterReadOnly, cudaHostRegisterDefault}) {
    if (cudaHostRegister(base, hi - lo, flags) == cudaSuccess) {
      registered = true;
      break;
    }
    (void)cudaGetLastError();
  }
  if (!registered) return 0.0;
  void* device = nullptr;
  MOERUN_CUDA_CHECK(cudaMalloc(&device, bytes));
  const double best =
      best_copy_rate(device, host, bytes, chunk, cudaMemcpyHostToDevice, repeats, 1.0);
  MOERUN_CUDA_CHECK(cudaFree(device));
  MOERUN_CUDA_CHECK(cudaHostUnregister(base));
  return best;
}

double measure_device_bandwidth(int gpu, uint64_t bytes, int repeats) {
  MOERUN_CUDA_CHECK(cudaSetDevice(gpu));
  void* a = nullptr;
  void* b = nullptr;
  MOERUN_CUDA_CHECK(cudaMalloc(&a, bytes));
  MOERUN_CUDA_CHECK(cudaMalloc(&b, bytes));
  MOERUN_CUDA_CHECK(cudaMemset(a, 1, bytes));
  const double best = best_copy_rate(b, a, bytes, bytes, cudaMemcpyDeviceToDevice, repeats, 2.0);
  MOERUN_CUDA_CHECK(cudaFree(a));
  MOERUN_CUDA_CHECK(cudaFree(b));
  return best;
}

}  // namespace moerun
