// The GPU memory accountant: every device allocation of a model goes through one DeviceMemory,
// which enforces the VRAM budget, records use by category, and frees everything at the end.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <vector>

namespace moerun {

// What an allocation is for (the plan printed at load and /api/v1/memory).
enum class GpuUse : int {
  dense_weights,
  expert_cache,
  kv_cache,
  recurrent_state,
  workspace,
  kCount
};

// Display name of a category, e.g. "dense weights".
const char* gpu_use_name(GpuUse use);

// Owns device allocations within a byte budget on the current device. One thread allocates; the
// byte counts may be read from any thread (e.g. the server's memory endpoint).
class DeviceMemory {
 public:
  // `budget` bytes at most (0: the free VRAM at construction minus `margin`).
  explicit DeviceMemory(uint64_t budget, uint64_t margin = 512ull << 20);
  ~DeviceMemory();
  DeviceMemory(const DeviceMemory&) = delete;
  DeviceMemory& operator=(const DeviceMemory&) = delete;

  // `bytes` of device memory (256-byte aligned) for `use`; throws Error naming the category, the
  // need and what is left of the budget (or of the GPU) when it does not fit. `what` names the
  // allocation in messages.
  void* allocate(uint64_t bytes, GpuUse use, const char* what);
  // Counts `bytes` that a library allocated itself (e.g. a kernel workspace) against the budget;
  // throws Error like allocate() when they do not fit.
  void account(uint64_t bytes, GpuUse use, const char* what);
  // Returns an allocation made by allocate().
  void release(void* ptr);

  uint64_t budget() const { return budget_; }
  uint64_t used() const { return used_.load(std::memory_order_relaxed); }
  uint64_t peak() const { return peak_.load(std::memory_order_relaxed); }
  uint64_t left() const { return budget_ - used(); }
  // Bytes in use for one category.
  uint64_t used_by(GpuUse use) const {
    return by_use_[static_cast<int>(use)].load(std::memory_order_relaxed);
  }

 private:
  void check_fits(uint64_t bytes, GpuUse use, const char* what) const;

  struct Block {
    void* ptr;
    uint64_t bytes;
    GpuUse use;
  };
  uint64_t budget_ = 0;
  void add(uint64_t bytes, GpuUse use);
  void subtract(uint64_t bytes, GpuUse use);

  std::atomic<uint64_t> used_{0};
  std::atomic<uint64_t> peak_{0};
  std::array<std::atomic<uint64_t>, static_cast<int>(GpuUse::kCount)> by_use_{};
  std::vector<Block> blocks_;
};

}  // namespace moerun
