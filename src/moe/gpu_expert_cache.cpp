#include "moe/gpu_expert_cache.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "core/error.h"
#include "ops/cuda/cuda_check.cuh"
#include "ops/cuda/device_memory.h"

namespace moerun {
namespace {

// Bytes of one expert's gate, up or down matrix inside its stacked tensor {cols, rows, n}.
int64_t expert_part_bytes(const Tensor& stacked) {
  return stacked.ne[1] * stacked.row_nbytes();
}

const Tensor& part_of(const LayerExperts& e, int part) {
  return part == 0 ? e.gate : part == 1 ? e.up : e.down;
}

}  // namespace

int64_t GpuExpertCache::slot_bytes(const std::vector<LayerExperts>& experts) {
  int64_t bytes = 0;
  for (const LayerExperts& e : experts) {
    bytes = std::max(
        bytes, expert_part_bytes(e.gate) + expert_part_bytes(e.up) + expert_part_bytes(e.down));
  }
  return (bytes + 255) / 256 * 256;
}

GpuExpertCache::GpuExpertCache(const std::vector<LayerExperts>& experts, int64_t n_slots,
                               std::unique_ptr<CachePolicy> policy, DeviceMemory& memory,
                               ExpertStats* stats)
    : experts_(experts),
      table_(static_cast<int64_t>(experts.size()), experts.empty() ? 0 : experts[0].gate.ne[2],
             n_slots, std::move(policy)),
      stats_(stats) {
  n_layers_ = table_.n_layers();
  n_experts_ = table_.n_experts();
  slot_bytes_ = slot_bytes(experts_);
  if (n_slots > 0) {
    slots_ = static_cast<uint8_t*>(memory.allocate(static_cast<uint64_t>(n_slots * slot_bytes_),
                                                   GpuUse::expert_cache, "expert cache slots"));
  }
  // The layers' tables, then the two staging buffers' tables.
  const uint64_t table_bytes =
      static_cast<uint64_t>((n_layers_ + 2) * 3 * n_experts_) * sizeof(void*);
  device_table_ = static_cast<const void**>(
      memory.allocate(table_bytes, GpuUse::expert_cache, "expert pointer table"));
  MOERUN_CUDA_CHECK(cudaMemset(device_table_, 0, table_bytes));
  // Per step at most: each expert evicted and admitted (6 updates), and staged and unstaged (6).
  updates_capacity_ = n_layers_ * n_experts_ * 12 + 64;
  MOERUN_CUDA_CHECK(cudaHostAlloc(reinterpret_cast<void**>(&updates_),
                                  static_cast<size_t>(updates_capacity_) * sizeof(PointerUpdate),
                                  cudaHostAllocMapped));
  pending_.resize(static_cast<size_t>(n_layers_));
  copies_in_flight_.assign(static_cast<size_t>(n_layers_), 0);
  copied_.resize(static_cast<size_t>(n_layers_));
  for (cudaEvent_t& e : copied_) {
    MOERUN_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  }
  MOERUN_CUDA_CHECK(cudaEventCreateWithFlags(&evicted_, cudaEventDisableTiming));
  MOERUN_CUDA_CHECK(cudaEventCreate(&copy_begin_));
  MOERUN_CUDA_CHECK(cudaEventCreate(&copy_end_));
  MOERUN_CUDA_CHECK(cudaEventCreateWithFlags(&staging_copied_, cudaEventDisableTiming));
  for (cudaEvent_t& e : staging_free_) {
    MOERUN_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  }
  MOERUN_CUDA_CHECK(cudaStreamCreateWithFlags(&copy_stream_, cudaStreamNonBlocking));
  MOERUN_CUDA_CHECK(cudaEventRecord(evicted_, copy_stream_));  // nothing evicted yet
  for (cudaEvent_t e : staging_free_) MOERUN_CUDA_CHECK(cudaEventRecord(e, copy_stream_));
  admitted_.assign(static_cast<size_t>(n_experts_), 0);
  predicted_.assign(static_cast<size_t>(n_layers_ * n_experts_), 0);

  if (n_slots > 0) register_host_memory();
  if (stats_ != nullptr) stats_->set_cache(n_slots, table_.policy().name());
}

// Page-locks the host range holding the experts, so copies are true asynchronous DMA (when the
// driver allows it; otherwise copies stage through the driver's buffers).
void GpuExpertCache::register_host_memory() {
  if (registered_) return;
  uintptr_t lo = UINTPTR_MAX;
  uintptr_t hi = 0;
  for (const LayerExperts& e : experts_) {
    for (int part = 0; part < 3; ++part) {
      const Tensor& t = part_of(e, part);
      const auto begin = reinterpret_cast<uintptr_t>(t.data);
      lo = std::min(lo, begin);
      hi = std::max(hi, begin + static_cast<uintptr_t>(t.nbytes()));
    }
  }
  if (hi > lo) {
    const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
    lo = lo / page * page;
    hi = (hi + page - 1) / page * page;
    void* base = reinterpret_cast<void*>(lo);
    for (unsigned flags : {cudaHostRegisterReadOnly, cudaHostRegisterDefault}) {
      if (cudaHostRegister(base, hi - lo, flags) == cudaSuccess) {
        registered_ = true;
        registered_ranges_.push_back(base);
        break;
      }
      (void)cudaGetLastError();
    }
  }
}

GpuExpertCache::~GpuExpertCache() {
  if (copy_stream_ != nullptr) cudaStreamSynchronize(copy_stream_);
  for (void* p : registered_ranges_) cudaHostUnregister(p);
  for (cudaEvent_t e : copied_) cudaEventDestroy(e);
  if (evicted_ != nullptr) cudaEventDestroy(evicted_);
  if (copy_begin_ != nullptr) cudaEventDestroy(copy_begin_);
  if (copy_end_ != nullptr) cudaEventDestroy(copy_end_);
  if (staging_copied_ != nullptr) cudaEventDestroy(staging_copied_);
  for (cudaEvent_t e : staging_free_) {
    if (e != nullptr) cudaEventDestroy(e);
  }
  if (copy_stream_ != nullptr) cudaStreamDestroy(copy_stream_);
  if (updates_ != nullptr) cudaFreeHost(updates_);
}

DeviceExpertTable GpuExpertCache::table_at(int64_t first_part) const {
  const void* const* base = device_table_ + first_part * n_experts_;
  return DeviceExpertTable{base, base + n_experts_, base + 2 * n_experts_};
}

DeviceExpertTable GpuExpertCache::device_table(int64_t layer) const {
  return table_at(layer * 3);
}

const void* GpuExpertCache::part_at(const uint8_t* base, int part, int64_t layer) const {
  const LayerExperts& e = experts_[static_cast<size_t>(layer)];
  int64_t offset = 0;
  if (part >= 1) offset += expert_part_bytes(e.gate);
  if (part >= 2) offset += expert_part_bytes(e.up);
  return base + offset;
}

const void* GpuExpertCache::slot_part(int32_t slot, int part, int64_t layer) const {
  return part_at(slots_ + static_cast<int64_t>(slot) * slot_bytes_, part, layer);
}

void GpuExpertCache::begin_step() {
  updates_used_ = 0;
  updates_flushed_ = 0;
}

void GpuExpertCache::push_update(int64_t index, const void* value) {
  MOERUN_CHECK(updates_used_ < updates_capacity_);
  updates_[updates_used_++] = PointerUpdate{index, value};
}

void GpuExpertCache::flush_updates(cudaStream_t stream) {
  apply_pointer_updates_cuda(device_table_, updates_ + updates_flushed_,
                             updates_used_ - updates_flushed_, stream);
  updates_flushed_ = updates_used_;
}

void GpuExpertCache::publish(int64_t layer, cudaStream_t compute) {
  std::vector<Pending>& pending = pending_[static_cast<size_t>(layer)];
  if (pending.empty()) return;
  MOERUN_CUDA_CHECK(cudaStreamWaitEvent(compute, copied_[static_cast<size_t>(layer)], 0));
  for (const Pending& p : pending) {
    if (table_.slot_of(layer, p.expert) != p.slot) continue;  // evicted again meanwhile
    for (int part = 0; part < 3; ++part) {
      push_update((layer * 3 + part) * n_experts_ + p.expert, slot_part(p.slot, part, layer));
    }
  }
  pending.clear();
  flush_updates(compute);
}

void GpuExpertCache::copy_in(int64_t layer, int32_t expert, uint8_t* dst) {
  const LayerExperts& e = experts_[static_cast<size_t>(layer)];
  for (int part = 0; part < 3; ++part) {
    const Tensor& t = part_of(e, part);
    const int64_t bytes = expert_part_bytes(t);
    const auto* src = static_cast<const uint8_t*>(t.data) + static_cast<int64_t>(expert) * bytes;
    MOERUN_CUDA_CHECK(cudaMemcpyAsync(const_cast<void*>(part_at(dst, part, layer)), src,
                                      static_cast<size_t>(bytes), cudaMemcpyHostToDevice,
                                      copy_stream_));
  }
}

void GpuExpertCache::plan(int64_t layer, const int32_t* ids, int64_t n_assign,
                          int64_t max_admissions, uint8_t* on_cpu, cudaStream_t compute) {
  admit(layer, ids, n_assign, max_admissions, on_cpu, compute, true);
}

void GpuExpertCache::prefetch(int64_t layer, const int32_t* ids, int64_t n_assign,
                              int64_t max_admissions, cudaStream_t compute) {
  uint8_t* mark = predicted_.data() + layer * n_experts_;
  std::fill(mark, mark + n_experts_, 0);
  for (int64_t i = 0; i < n_assign; ++i) mark[ids[i]] = 1;
  if (static_cast<int64_t>(scratch_mask_.size()) < n_assign) {
    scratch_mask_.resize(static_cast<size_t>(n_assign));
  }
  admit(layer, ids, n_assign, max_admissions, scratch_mask_.data(), compute, false);
}

void GpuExpertCache::record_prediction(int64_t layer, const int32_t* ids, int64_t n_assign) {
  if (stats_ == nullptr) return;
  const uint8_t* mark = predicted_.data() + layer * n_experts_;
  ++admit_epoch_;
  uint64_t chosen = 0;
  uint64_t hit = 0;
  for (int64_t i = 0; i < n_assign; ++i) {
    uint32_t& seen = admitted_[static_cast<size_t>(ids[i])];
    if (seen == admit_epoch_) continue;
    seen = admit_epoch_;
    ++chosen;
    hit += mark[ids[i]];
  }
  stats_->record_prediction(layer, hit, chosen);
}

void GpuExpertCache::admit(int64_t layer, const int32_t* ids, int64_t n_assign,
                           int64_t max_admissions, uint8_t* on_cpu, cudaStream_t compute,
                           bool count) {
  const CacheStepPlan& p = table_.plan_step(layer, ids, n_assign, max_admissions);
  ++admit_epoch_;
  for (const CacheAdmission& a : p.admissions)
    admitted_[static_cast<size_t>(a.expert)] = admit_epoch_;
  for (int64_t i = 0; i < n_assign; ++i) {
    const int32_t e = ids[i];
    on_cpu[i] = table_.slot_of(layer, e) < 0 || admitted_[static_cast<size_t>(e)] == admit_epoch_;
  }
  // Evictions: null the entries on the compute stream now; copies into those slots wait for it.
  bool evicted = false;
  for (const CacheAdmission& a : p.admissions) {
    if (a.evicted_layer < 0) continue;
    for (int part = 0; part < 3; ++part) {
      push_update((a.evicted_layer * 3 + part) * n_experts_ + a.evicted_expert, nullptr);
    }
    evicted = true;
    if (stats_ != nullptr) stats_->set_resident(a.evicted_layer, table_.resident(a.evicted_layer));
  }
  if (evicted) {
    flush_updates(compute);
    MOERUN_CUDA_CHECK(cudaEventRecord(evicted_, compute));
  }
  if (!p.admissions.empty()) {
    // The copy time per expert is measured on a batch at a time (read when it has finished).
    if (timed_copies_ > 0 && cudaEventQuery(copy_end_) == cudaSuccess) {
      float ms = 0;
      MOERUN_CUDA_CHECK(cudaEventElapsedTime(&ms, copy_begin_, copy_end_));
      const double per_expert = 1e-3 * ms / static_cast<double>(timed_copies_);
      copy_seconds_ = copy_seconds_ == 0 ? per_expert : 0.9 * copy_seconds_ + 0.1 * per_expert;
      timed_copies_ = 0;
    }
    MOERUN_CUDA_CHECK(cudaStreamWaitEvent(copy_stream_, evicted_, 0));
    const bool time_this = timed_copies_ == 0;
    if (time_this) MOERUN_CUDA_CHECK(cudaEventRecord(copy_begin_, copy_stream_));
    for (const CacheAdmission& a : p.admissions) {
      copy_in(layer, a.expert, slots_ + static_cast<int64_t>(a.slot) * slot_bytes_);
      pending_[static_cast<size_t>(layer)].push_back(Pending{a.expert, a.slot});
    }
    if (time_this) {
      MOERUN_CUDA_CHECK(cudaEventRecord(copy_end_, copy_stream_));
      timed_copies_ = static_cast<int64_t>(p.admissions.size());
    }
    MOERUN_CUDA_CHECK(cudaEventRecord(copied_[static_cast<size_t>(layer)], copy_stream_));
  }
  if (stats_ != nullptr) {
    if (count) {
      stats_->record_routing(layer, ids, n_assign);
      stats_->record_hits(layer, static_cast<uint64_t>(p.hit_assignments));
    }
    if (!p.admissions.empty()) {
      stats_->record_copy(layer, p.admissions.size(),
                          p.admissions.size() * static_cast<uint64_t>(slot_bytes_));
    }
    stats_->set_resident(layer, static_cast<uint64_t>(table_.resident(layer)));
  }
}

int64_t GpuExpertCache::count_misses(int64_t layer, const int32_t* ids, int64_t n_assign) {
  ++admit_epoch_;
  int64_t misses = 0;
  for (int64_t i = 0; i < n_assign; ++i) {
    uint32_t& mark = admitted_[static_cast<size_t>(ids[i])];
    if (mark == admit_epoch_ || table_.slot_of(layer, ids[i]) >= 0) continue;
    mark = admit_epoch_;
    ++misses;
  }
  return misses;
}

void GpuExpertCache::mark_resident_on_gpu(int64_t layer, const int32_t* ids, int64_t n_assign,
                                          uint8_t* on_cpu) const {
  for (int64_t i = 0; i < n_assign; ++i) {
    if (table_.slot_of(layer, ids[i]) >= 0) on_cpu[i] = 0;
  }
}

int64_t GpuExpertCache::warm_start(const std::vector<std::vector<uint64_t>>& counts,
                                   cudaStream_t compute) {
  const int64_t placed = table_.warm_start(counts, table_.n_slots(), false);
  std::vector<const void*> host(static_cast<size_t>(n_layers_ * 3 * n_experts_), nullptr);
  const int32_t* keys = table_.slot_keys();
  for (int64_t s = 0; s < table_.n_slots(); ++s) {
    if (keys[s] < 0) continue;
    const int64_t layer = keys[s] / n_experts_;
    const auto expert = static_cast<int32_t>(keys[s] % n_experts_);
    copy_in(layer, expert, slots_ + s * slot_bytes_);
    for (int part = 0; part < 3; ++part) {
      host[static_cast<size_t>((layer * 3 + part) * n_experts_ + expert)] =
          slot_part(static_cast<int32_t>(s), part, layer);
    }
  }
  MOERUN_CUDA_CHECK(cudaStreamSynchronize(copy_stream_));
  MOERUN_CUDA_CHECK(cudaMemcpyAsync(device_table_, host.data(), host.size() * sizeof(void*),
                                    cudaMemcpyHostToDevice, compute));
  MOERUN_CUDA_CHECK(cudaStreamSynchronize(compute));
  if (stats_ != nullptr) {
    for (int64_t l = 0; l < n_layers_; ++l) {
      stats_->set_resident(l, static_cast<uint64_t>(table_.resident(l)));
    }
  }
  return placed;
}

void GpuExpertCache::reserve_staging(int64_t per_buffer, DeviceMemory& memory) {
  MOERUN_CHECK(staging_ == nullptr && per_buffer > 0 && per_buffer <= n_experts_);
  staging_ =
      static_cast<uint8_t*>(memory.allocate(static_cast<uint64_t>(2 * per_buffer * slot_bytes_),
                                            GpuUse::expert_cache, "prefill staging slots"));
  staging_per_buffer_ = per_buffer;
  register_host_memory();
}

DeviceExpertTable GpuExpertCache::stage(int64_t layer, const int32_t* experts, int64_t count,
                                        cudaStream_t compute) {
  MOERUN_CHECK(count > 0 && count <= staging_per_buffer_);
  const int b = next_staging_;
  // The copies wait until the GPU has finished with the buffer's previous experts.
  MOERUN_CUDA_CHECK(cudaStreamWaitEvent(copy_stream_, staging_free_[b], 0));
  uint8_t* base = staging_ + static_cast<int64_t>(b) * staging_per_buffer_ * slot_bytes_;
  for (int64_t i = 0; i < count; ++i) copy_in(layer, experts[i], base + i * slot_bytes_);
  MOERUN_CUDA_CHECK(cudaEventRecord(staging_copied_, copy_stream_));
  // Free cache slots take staged experts too, copied on the GPU (published at the layer's next
  // publish()): a cold cache fills during the first prompt without evicting anything.
  bool placed = false;
  for (int64_t i = 0; i < count; ++i) {
    const int32_t slot = table_.place_free(layer, experts[i]);
    if (slot < 0) continue;
    MOERUN_CUDA_CHECK(cudaMemcpyAsync(slots_ + static_cast<int64_t>(slot) * slot_bytes_,
                                      base + i * slot_bytes_, static_cast<size_t>(slot_bytes_),
                                      cudaMemcpyDeviceToDevice, copy_stream_));
    pending_[static_cast<size_t>(layer)].push_back(Pending{experts[i], slot});
    placed = true;
  }
  if (placed) {
    MOERUN_CUDA_CHECK(cudaEventRecord(copied_[static_cast<size_t>(layer)], copy_stream_));
    if (stats_ != nullptr)
      stats_->set_resident(layer, static_cast<uint64_t>(table_.resident(layer)));
  }
  MOERUN_CUDA_CHECK(cudaStreamWaitEvent(compute, staging_copied_, 0));
  // The buffer's table: the previous experts' entries nulled, the new ones set (one update per
  // entry: the updates of one flush apply in no particular order).
  const int64_t first = (n_layers_ + b) * 3;
  ++admit_epoch_;
  for (int64_t i = 0; i < count; ++i) admitted_[static_cast<size_t>(experts[i])] = admit_epoch_;
  for (const int32_t e : staged_[b]) {
    if (admitted_[static_cast<size_t>(e)] == admit_epoch_) continue;
    for (int part = 0; part < 3; ++part) push_update((first + part) * n_experts_ + e, nullptr);
  }
  staged_[b].assign(experts, experts + count);
  for (int64_t i = 0; i < count; ++i) {
    for (int part = 0; part < 3; ++part) {
      push_update((first + part) * n_experts_ + experts[i],
                  part_at(base + i * slot_bytes_, part, layer));
    }
  }
  flush_updates(compute);
  if (stats_ != nullptr) {
    stats_->record_copy(layer, static_cast<uint64_t>(count),
                        static_cast<uint64_t>(count * slot_bytes_));
  }
  return table_at(first);
}

void GpuExpertCache::release_staging(cudaStream_t compute) {
  MOERUN_CUDA_CHECK(cudaEventRecord(staging_free_[next_staging_], compute));
  next_staging_ ^= 1;
}

}  // namespace moerun
