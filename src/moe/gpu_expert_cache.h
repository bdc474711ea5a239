// The VRAM expert cache of the hybrid mode: a pool of GPU slots holding routed experts, the host
// table that decides residency (ExpertCacheTable and its policy), and the device table of
// pointers the GPU expert kernels read (null: not resident, computed on the CPU). Copies run on
// their own stream from the experts' host memory (page-locked when the driver allows it).
//
// Consistency rules (stream order does the synchronisation, nothing waits on the host):
//  - an eviction nulls the device entry on the compute stream at once, so no later kernel reads
//    the slot; the copy into the slot waits for an event recorded after that;
//  - an admission's pointer is published on the compute stream before the layer's next step,
//    after the compute stream waited for the copy, so a kernel never sees a half-copied expert.
//
// Prefill streams experts that are not cached through two staging buffers outside the cache (the
// cache is left as it is): the copy of one group of experts overlaps the GPU's work on the other.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "moe/expert_cache_table.h"
#include "moe/expert_stats.h"
#include "moe/moe_dispatcher.h"
#include "ops/cuda/moe_experts_cuda.h"
#include "ops/cuda/pointer_table_cuda.h"

namespace moerun {

class DeviceMemory;

// Slots, tables and copies of the hybrid expert cache.
class GpuExpertCache {
 public:
  // A cache of `n_slots` slots (memory from `memory`) for `experts` (host memory, e.g. the mapped
  // file), ranked by `policy`; counters go to `stats` (may be null).
  GpuExpertCache(const std::vector<LayerExperts>& experts, int64_t n_slots,
                 std::unique_ptr<CachePolicy> policy, DeviceMemory& memory, ExpertStats* stats);
  ~GpuExpertCache();
  GpuExpertCache(const GpuExpertCache&) = delete;
  GpuExpertCache& operator=(const GpuExpertCache&) = delete;

  // Bytes one slot holds (the largest expert: gate, up and down).
  static int64_t slot_bytes(const std::vector<LayerExperts>& experts);

  int64_t n_slots() const { return table_.n_slots(); }
  // The device table of `layer` for moe_experts_cuda.
  DeviceExpertTable device_table(int64_t layer) const;
  // Whether the host pages of the experts are page-locked (fast asynchronous copies).
  bool host_registered() const { return registered_; }

  // Starts a forward pass: the previous one has finished on the GPU (its update lists are free).
  void begin_step();
  // Before layer `layer` runs on `compute`: waits for the layer's copies and publishes the
  // pointers of its admitted experts.
  void publish(int64_t layer, cudaStream_t compute);
  // After the router of `layer` chose ids [n_assign] (host copy): marks on_cpu[i] = 1 for the
  // assignments whose expert is not resident (the GPU kernels already skip them), records hits,
  // and admits up to `max_admissions` misses (< 0: no cap): evictions are applied on `compute`
  // now, copies start on the copy stream.
  void plan(int64_t layer, const int32_t* ids, int64_t n_assign, int64_t max_admissions,
            uint8_t* on_cpu, cudaStream_t compute);
  // Prefetch: admits up to `max_admissions` of the experts predicted for `layer` (ids
  // [n_assign]) before its router has run, so their copies overlap the layer before; routing
  // statistics are not touched. Remembers the prediction for record_prediction().
  void prefetch(int64_t layer, const int32_t* ids, int64_t n_assign, int64_t max_admissions,
                cudaStream_t compute);
  // Records in the statistics how many of the distinct experts chosen for `layer` (ids
  // [n_assign]) its last prefetch() had predicted.
  void record_prediction(int64_t layer, const int32_t* ids, int64_t n_assign);
  // Measured seconds to copy one expert in (moving average; 0 before the first measurement).
  double copy_seconds_per_expert() const { return copy_seconds_; }
  // Distinct experts among ids [n_assign] of `layer` that are not resident.
  int64_t count_misses(int64_t layer, const int32_t* ids, int64_t n_assign);
  // After publish(): clears on_cpu[i] for assignments whose expert is now resident (admitted
  // experts the GPU computes once their copies are done).
  void mark_resident_on_gpu(int64_t layer, const int32_t* ids, int64_t n_assign,
                            uint8_t* on_cpu) const;
  // Makes the most used experts of a profile resident before the first step; returns how many.
  int64_t warm_start(const std::vector<std::vector<uint64_t>>& counts, cudaStream_t compute);

  // Reserves two staging buffers of `per_buffer` experts each (memory from `memory`).
  void reserve_staging(int64_t per_buffer, DeviceMemory& memory);
  // Experts one staging buffer holds (0: no staging).
  int64_t staging_capacity() const { return staging_per_buffer_; }
  // Copies experts [count] (count <= staging_capacity()) of `layer` into the next staging buffer,
  // once the GPU has released it, and returns a table holding only them, valid on `compute` from
  // now until release_staging(). Counted as copies in the statistics. Those that find a free
  // cache slot are also copied there on the GPU and become resident at the layer's next publish().
  DeviceExpertTable stage(int64_t layer, const int32_t* experts, int64_t count,
                          cudaStream_t compute);
  // After the kernels reading the last stage()'s table were queued on `compute`: the buffer may
  // be refilled once they have run.
  void release_staging(cudaStream_t compute);

 private:
  struct Pending {
    int32_t expert;
    int32_t slot;
  };
  void copy_in(int64_t layer, int32_t expert, uint8_t* dst);
  void register_host_memory();
  DeviceExpertTable table_at(int64_t first_part) const;
  void admit(int64_t layer, const int32_t* ids, int64_t n_assign, int64_t max_admissions,
             uint8_t* on_cpu, cudaStream_t compute, bool count);
  void push_update(int64_t index, const void* value);
  void flush_updates(cudaStream_t stream);
  const void* slot_part(int32_t slot, int part, int64_t layer) const;
  const void* part_at(const uint8_t* base, int part, int64_t layer) const;

  std::vector<LayerExperts> experts_;
  ExpertCacheTable table_;
  ExpertStats* stats_;
  int64_t n_layers_ = 0;
  int64_t n_experts_ = 0;
  int64_t slot_bytes_ = 0;
  uint8_t* slots_ = nullptr;             // [n_slots, slot_bytes] in VRAM
  const void** device_table_ = nullptr;  // [n_layers, 3, n_experts] in VRAM
  PointerUpdate* updates_ = nullptr;     // pinned, mapped: this step's updates
  int64_t updates_capacity_ = 0;
  int64_t updates_used_ = 0;
  int64_t updates_flushed_ = 0;                // updates_[flushed, used) not yet launched
  std::vector<std::vector<Pending>> pending_;  // [n_layers] admitted, not yet published
  std::vector<cudaEvent_t> copied_;            // [n_layers] after the layer's latest copies
  std::vector<uint8_t> copies_in_flight_;      // [n_layers]
  cudaEvent_t evicted_ = nullptr;              // on compute after the latest eviction nulls
  cudaEvent_t copy_begin_ = nullptr;           // timing of the latest batch of copies
  cudaEvent_t copy_end_ = nullptr;
  int64_t timed_copies_ = 0;  // experts in the batch being timed (0: none)
  double copy_seconds_ = 0;   // moving average per expert
  cudaStream_t copy_stream_ = nullptr;
  std::vector<uint32_t> admitted_;     // [n_experts] == admit_epoch_: admitted now
  std::vector<uint8_t> predicted_;     // [n_layers * n_experts] of the last prefetch
  std::vector<uint8_t> scratch_mask_;  // [n_assign capacity] on_cpu of a prefetch
  uint32_t admit_epoch_ = 0;
  std::vector<void*> registered_ranges_;
  bool registered_ = false;
  // Prefill staging: two buffers, their tables after the layers' in device_table_.
  int64_t staging_per_buffer_ = 0;
  uint8_t* staging_ = nullptr;                        // [2, per_buffer, slot_bytes] in VRAM
  std::vector<int32_t> staged_[2];                    // experts each buffer's table points to
  cudaEvent_t staging_free_[2] = {nullptr, nullptr};  // on compute after the buffer's readers
  cudaEvent_t staging_copied_ = nullptr;              // on the copy stream after a stage's copies
  int next_staging_ = 0;
};

}  // namespace moerun
