#include "ops/cuda/device_memory.h"

#include <cuda_runtime_api.h>

#include <algorithm>

#include "core/error.h"

namespace moerun {
namespace {

double gib(uint64_t bytes) {
  return static_cast<double>(bytes) / (1ull << 30);
}

}  // namespace

const char* gpu_use_name(GpuUse use) {
  switch (use) {
    case GpuUse::dense_weights:
      return "dense weights";
    case GpuUse::expert_cache:
      return "expert cache";
    case GpuUse::kv_cache:
      return "KV cache";
    case GpuUse::recurrent_state:
      return "DeltaNet state";
    case GpuUse::workspace:
      return "workspace";
    case GpuUse::kCount:
      break;
  }
  return "?";
}

DeviceMemory::DeviceMemory(uint64_t budget, uint64_t margin) {
  size_t free_bytes = 0;
  size_t total_bytes = 0;
  const cudaError_t status = cudaMemGetInfo(&free_bytes, &total_bytes);
  if (status != cudaSuccess) {
    (void)cudaGetLastError();
    fail("no usable CUDA device: {}", cudaGetErrorString(status));
  }
  if (budget == 0) {
    budget_ = free_bytes > margin ? free_bytes - margin : 0;
  } else {
    if (budget > total_bytes) {
      fail("--gpu-mem {:.2f} GiB is more than the GPU has ({:.2f} GiB)", gib(budget),
           gib(total_bytes));
    }
    budget_ = budget;
  }
}

DeviceMemory::~DeviceMemory() {
  for (const Block& b : blocks_) cudaFree(b.ptr);
}

void DeviceMemory::check_fits(uint64_t bytes, GpuUse use, const char* what) const {
  if (bytes > left()) {
    fail(
        "GPU memory budget: {} ({}) needs {:.3f} GiB but only {:.3f} GiB of the {:.2f} GiB budget "
        "is left ({:.2f} GiB already used: dense weights {:.2f}, expert cache {:.2f}, KV cache "
        "{:.2f}, DeltaNet state {:.2f}, workspace {:.2f}); raise --gpu-mem, lower --ctx or "
        "--max-seqs, or keep more experts on the CPU",
        what, gpu_use_name(use), gib(bytes), gib(left()), gib(budget_), gib(used()),
        gib(used_by(GpuUse::dense_weights)), gib(used_by(GpuUse::expert_cache)),
        gib(used_by(GpuUse::kv_cache)), gib(used_by(GpuUse::recurrent_state)),
        gib(used_by(GpuUse::workspace)));
  }
}

void DeviceMemory::account(uint64_t bytes, GpuUse use, const char* what) {
  check_fits(bytes, use, what);
  add(bytes, use);
}

void* DeviceMemory::allocate(uint64_t bytes, GpuUse use, const char* what) {
  bytes = std::max<uint64_t>(256, (bytes + 255) / 256 * 256);
  check_fits(bytes, use, what);
  void* ptr = nullptr;
  const cudaError_t status = cudaMalloc(&ptr, bytes);
  if (status != cudaSuccess) {
    (void)cudaGetLastError();
    size_t free_bytes = 0;
    size_t total_bytes = 0;
    cudaMemGetInfo(&free_bytes, &total_bytes);
    fail(
        "out of GPU memory: {} ({}) needs {:.3f} GiB, the GPU has {:.3f} GiB free of {:.2f} GiB "
        "({}); use a smaller --gpu-mem so that routed experts stay in host memory (hybrid mode)",
        what, gpu_use_name(use), gib(bytes), gib(free_bytes), gib(total_bytes),
        cudaGetErrorString(status));
  }
  blocks_.push_back(Block{ptr, bytes, use});
  add(bytes, use);
  return ptr;
}

void DeviceMemory::add(uint64_t bytes, GpuUse use) {
  const uint64_t now = used_.fetch_add(bytes, std::memory_order_relaxed) + bytes;
  if (now > peak_.load(std::memory_order_relaxed)) peak_.store(now, std::memory_order_relaxed);
  by_use_[static_cast<int>(use)].fetch_add(bytes, std::memory_order_relaxed);
}

void DeviceMemory::subtract(uint64_t bytes, GpuUse use) {
  used_.fetch_sub(bytes, std::memory_order_relaxed);
  by_use_[static_cast<int>(use)].fetch_sub(bytes, std::memory_order_relaxed);
}

void DeviceMemory::release(void* ptr) {
  const auto it =
      std::find_if(blocks_.begin(), blocks_.end(), [ptr](const Block& b) { return b.ptr == ptr; });
  MOERUN_CHECK(it != blocks_.end());
  cudaFree(it->ptr);
  subtract(it->bytes, it->use);
  blocks_.erase(it);
}

}  // namespace moerun
