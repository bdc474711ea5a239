// The host side of the VRAM expert cache: which (layer, expert) sits in which of the GPU's slots,
// and the decisions of each step (hits, which misses to admit, into which slot, evicting whom).
// Independent of CUDA: the GPU side mirrors slot_table() to the device (as a table of pointers)
// and copies the admitted experts. No allocation after construction.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "moe/cache_policy.h"

namespace moerun {

// One miss admitted into the cache by plan_step.
struct CacheAdmission {
  int32_t expert = -1;          // the admitted expert of the step's layer
  int32_t slot = -1;            // the slot it goes to
  int32_t evicted_layer = -1;   // the slot's previous occupant, or -1 when the slot was free
  int32_t evicted_expert = -1;  // (its expert)
};

// What one step of one layer found and decided; views into the table's buffers, valid until the
// next plan_step.
struct CacheStepPlan {
  int64_t layer = 0;
  std::span<const int32_t> experts;  // distinct chosen experts, in order of first appearance
  std::span<const int32_t> uses;     // assignments of each distinct expert
  std::span<const int32_t> slots;    // slot of each before this step's admissions; -1: a miss
  std::span<const CacheAdmission> admissions;  // misses admitted now (slot_table already updated)
  int64_t hit_assignments = 0;                 // assignments whose expert was resident
  int64_t miss_assignments = 0;                // the others
};

// A pool of n_slots expert slots shared by all layers, with a replacement policy.
class ExpertCacheTable {
 public:
  // An empty cache of `n_slots` slots for n_layers x n_experts experts.
  ExpertCacheTable(int64_t n_layers, int64_t n_experts, int64_t n_slots,
                   std::unique_ptr<CachePolicy> policy);

  int64_t n_layers() const { return n_layers_; }
  int64_t n_experts() const { return n_experts_; }
  int64_t n_slots() const { return n_slots_; }
  const CachePolicy& policy() const { return *policy_; }

  // [n_layers * n_experts] slot of each (layer, expert), index layer * n_experts + expert; -1 when
  // not resident.
  const int32_t* slot_table() const { return slot_of_.data(); }
  // [n_slots] key (layer * n_experts + expert) held by each slot; -1 when free.
  const int32_t* slot_keys() const { return key_of_.data(); }
  // The slot of (layer, expert), or -1.
  int32_t slot_of(int64_t layer, int64_t expert) const {
    return slot_of_[static_cast<size_t>(layer * n_experts_ + expert)];
  }
  // Experts resident now, in all layers / in `layer`.
  int64_t resident() const { return n_slots_ - static_cast<int64_t>(free_.size()); }
  int64_t resident(int64_t layer) const { return resident_per_layer_[static_cast<size_t>(layer)]; }
  // Whether (layer, expert) is pinned (never evicted).
  bool pinned(int64_t layer, int64_t expert) const {
    return pinned_[static_cast<size_t>(layer * n_experts_ + expert)] != 0;
  }

  // One step of `layer`: ids [n_assign] are the chosen experts of all its tokens. Records their use
  // in the policy, classifies hits and misses, then admits misses (most used first) into free
  // slots or in place of the policy's victims, at most `max_admissions` (< 0: no limit). An expert
  // chosen in this step is never evicted, nor is a pinned one. Misses the policy declines, or that
  // find no evictable slot, stay misses (computed elsewhere).
  const CacheStepPlan& plan_step(int64_t layer, const int32_t* ids, int64_t n_assign,
                                 int64_t max_admissions);

  // Makes (layer, expert) resident (taking a free slot or evicting the lowest-priority unpinned
  // expert) and pins it; returns its slot, or -1 when every slot is pinned.
  int32_t pin(int64_t layer, int64_t expert);
  // Places (layer, expert) in a free slot, evictable like any admission; returns the slot, or -1
  // when no slot is free or it is resident already.
  int32_t place_free(int64_t layer, int64_t expert);
  // Warm start from a profile's counts [n_layers][n_experts]: makes the most used experts (over
  // all layers, never-used ones skipped) resident until `max_experts` are or the slots run out,
  // pinning them when `pin_them`. Returns how many were placed.
  int64_t warm_start(const std::vector<std::vector<uint64_t>>& counts, int64_t max_experts,
                     bool pin_them);

 private:
  void heap_push(int32_t slot);
  int32_t heap_pop();
  void heap_update(int32_t slot);
  void sift_up(int64_t i);
  void sift_down(int64_t i);
  void place(int32_t key, int32_t slot);
  int32_t evict_one(int64_t protect_layer);
  void rebuild_heap();

  int64_t n_layers_, n_experts_, n_slots_;
  std::unique_ptr<CachePolicy> policy_;
  int64_t step_ = 0;
  uint64_t policy_epoch_ = 0;                // the policy's order_epoch() the heap was built for
  std::vector<int32_t> slot_of_;             // [n_layers * n_experts]
  std::vector<int32_t> key_of_;              // [n_slots]
  std::vector<uint8_t> pinned_;              // [n_layers * n_experts]
  std::vector<int64_t> resident_per_layer_;  // [n_layers]
  std::vector<int32_t> free_;                // free slots (a stack), capacity n_slots
  // Evictable residents as a min-heap on priority: heap_[i] is a slot.
  std::vector<int32_t> heap_;      // capacity n_slots
  std::vector<int64_t> heap_pos_;  // [n_slots] index in heap_, -1 when not in it
  std::vector<double> prio_;       // [n_slots] priority of the slot's key when last updated
  // Per-step buffers.
  std::vector<uint32_t> mark_;  // [n_experts] == epoch_ when chosen in this step
  uint32_t epoch_ = 0;
  std::vector<int32_t> experts_, uses_, slots_;  // [n_experts] each
  std::vector<int32_t> index_of_;                // [n_experts] position in experts_
  std::vector<int32_t> misses_;                  // [n_experts] indices into experts_
  std::vector<CacheAdmission> admissions_;       // capacity n_experts
  std::vector<int32_t> aside_;                   // capacity n_slots: protected slots popped
  CacheStepPlan plan_;
};

}  // namespace moerun
