#include "moe/expert_cache_table.h"

#include <algorithm>
#include <numeric>

#include "core/error.h"

namespace moerun {

ExpertCacheTable::ExpertCacheTable(int64_t n_layers, int64_t n_experts, int64_t n_slots,
                                   std::unique_ptr<CachePolicy> policy)
    : n_layers_(n_layers), n_experts_(n_experts), n_slots_(n_slots), policy_(std::move(policy)) {
  MOERUN_CHECK(n_layers > 0 && n_experts > 0 && n_slots >= 0 && policy_ != nullptr);
  MOERUN_CHECK(n_layers * n_experts < (int64_t{1} << 31) && n_slots < (int64_t{1} << 31));
  const auto keys = static_cast<size_t>(n_layers * n_experts);
  const auto slots = static_cast<size_t>(n_slots);
  const auto experts = static_cast<size_t>(n_experts);
  slot_of_.assign(keys, -1);
  key_of_.assign(slots, -1);
  pinned_.assign(keys, 0);
  resident_per_layer_.assign(static_cast<size_t>(n_layers), 0);
  free_.resize(slots);
  // Slot 0 is handed out first.
  for (size_t i = 0; i < slots; ++i) free_[i] = static_cast<int32_t>(slots - 1 - i);
  heap_.reserve(slots);
  heap_pos_.assign(slots, -1);
  prio_.assign(slots, 0.0);
  mark_.assign(experts, 0);
  experts_.resize(experts);
  uses_.resize(experts);
  slots_.resize(experts);
  index_of_.resize(experts);
  misses_.resize(experts);
  admissions_.resize(experts);
  aside_.reserve(slots);
  policy_->attach(n_slots);
  policy_epoch_ = policy_->order_epoch();
}

const CacheStepPlan& ExpertCacheTable::plan_step(int64_t layer, const int32_t* ids,
                                                 int64_t n_assign, int64_t max_admissions) {
  MOERUN_CHECK(layer >= 0 && layer < n_layers_ && n_assign >= 0);
  policy_->on_step(layer, ids, n_assign, max_admissions);
  ++step_;
  if (++epoch_ == 0) {  // wrapped: forget old marks
    std::fill(mark_.begin(), mark_.end(), 0u);
    epoch_ = 1;
  }
  // Distinct experts and their use counts.
  int64_t n_distinct = 0;
  for (int64_t i = 0; i < n_assign; ++i) {
    const int32_t e = ids[i];
    MOERUN_CHECK(e >= 0 && e < n_experts_);
    if (mark_[static_cast<size_t>(e)] != epoch_) {
      mark_[static_cast<size_t>(e)] = epoch_;
      index_of_[static_cast<size_t>(e)] = static_cast<int32_t>(n_distinct);
      experts_[static_cast<size_t>(n_distinct)] = e;
      uses_[static_cast<size_t>(n_distinct)] = 1;
      ++n_distinct;
    } else {
      ++uses_[static_cast<size_t>(index_of_[static_cast<size_t>(e)])];
    }
  }
  // Hits and misses as they stand before admissions; the policy sees every use.
  const int64_t base = layer * n_experts_;
  int64_t n_miss = 0;
  plan_.hit_assignments = 0;
  plan_.miss_assignments = 0;
  for (int64_t i = 0; i < n_distinct; ++i) {
    const auto key = static_cast<int32_t>(base + experts_[static_cast<size_t>(i)]);
    const int32_t slot = slot_of_[static_cast<size_t>(key)];
    const int32_t uses = uses_[static_cast<size_t>(i)];
    slots_[static_cast<size_t>(i)] = slot;
    policy_->on_use(key, step_, uses);
    if (slot >= 0) {
      plan_.hit_assignments += uses;
      if (heap_pos_[static_cast<size_t>(slot)] >= 0) heap_update(slot);
    } else {
      plan_.miss_assignments += uses;
      misses_[static_cast<size_t>(n_miss++)] = static_cast<int32_t>(i);
    }
  }
  // Admissions, most used misses first.
  std::sort(misses_.begin(), misses_.begin() + n_miss, [&](int32_t a, int32_t b) {
    const int32_t ua = uses_[static_cast<size_t>(a)], ub = uses_[static_cast<size_t>(b)];
    return ua != ub ? ua > ub : a < b;
  });
  const int64_t limit = max_admissions < 0 ? n_miss : std::min(n_miss, max_admissions);
  int64_t n_admit = 0;
  aside_.clear();
  for (int64_t m = 0; m < n_miss && n_admit < limit; ++m) {
    const int32_t expert = experts_[static_cast<size_t>(misses_[static_cast<size_t>(m)])];
    const auto key = static_cast<int32_t>(base + expert);
    CacheAdmission a;
    a.expert = expert;
    if (!free_.empty()) {
      a.slot = free_.back();
      free_.pop_back();
    } else {
      const int32_t victim_slot = evict_one(layer);
      if (victim_slot < 0) break;  // everything left is pinned or chosen now
      const int32_t victim = key_of_[static_cast<size_t>(victim_slot)];
      if (!policy_->admit(key, victim)) {
        heap_push(victim_slot);
        continue;
      }
      a.slot = victim_slot;
      a.evicted_layer = static_cast<int32_t>(victim / n_experts_);
      a.evicted_expert = static_cast<int32_t>(victim % n_experts_);
      slot_of_[static_cast<size_t>(victim)] = -1;
      --resident_per_layer_[static_cast<size_t>(a.evicted_layer)];
    }
    place(key, a.slot);
    heap_push(a.slot);
    admissions_[static_cast<size_t>(n_admit++)] = a;
  }
  for (int32_t slot : aside_) heap_push(slot);
  aside_.clear();
  if (policy_->order_epoch() != policy_epoch_) rebuild_heap();

  plan_.layer = layer;
  const auto nd = static_cast<size_t>(n_distinct);
  plan_.experts = std::span<const int32_t>(experts_.data(), nd);
  plan_.uses = std::span<const int32_t>(uses_.data(), nd);
  plan_.slots = std::span<const int32_t>(slots_.data(), nd);
  plan_.admissions =
      std::span<const CacheAdmission>(admissions_.data(), static_cast<size_t>(n_admit));
  return plan_;
}

int32_t ExpertCacheTable::pin(int64_t layer, int64_t expert) {
  MOERUN_CHECK(layer >= 0 && layer < n_layers_ && expert >= 0 && expert < n_experts_);
  const auto key = static_cast<int32_t>(layer * n_experts_ + expert);
  int32_t slot = slot_of_[static_cast<size_t>(key)];
  if (slot < 0) {
    if (!free_.empty()) {
      slot = free_.back();
      free_.pop_back();
    } else {
      slot = evict_one(-1);
      if (slot < 0) return -1;
      const int32_t victim = key_of_[static_cast<size_t>(slot)];
      slot_of_[static_cast<size_t>(victim)] = -1;
      --resident_per_layer_[static_cast<size_t>(victim / n_experts_)];
    }
    place(key, slot);
  } else if (heap_pos_[static_cast<size_t>(slot)] >= 0) {
    // Take it out of the evictable heap: swap with the last element and repair.
    const int64_t i = heap_pos_[static_cast<size_t>(slot)];
    const int32_t last = heap_.back();
    heap_.pop_back();
    heap_pos_[static_cast<size_t>(slot)] = -1;
    if (last != slot) {
      heap_[static_cast<size_t>(i)] = last;
      heap_pos_[static_cast<size_t>(last)] = i;
      sift_up(i);
      sift_down(heap_pos_[static_cast<size_t>(last)]);
    }
  }
  pinned_[static_cast<size_t>(key)] = 1;
  return slot;
}

int64_t ExpertCacheTable::warm_start(const std::vector<std::vector<uint64_t>>& counts,
                                     int64_t max_experts, bool pin_them) {
  MOERUN_CHECK(static_cast<int64_t>(counts.size()) == n_layers_);
  std::vector<int32_t> order;
  for (int64_t l = 0; l < n_layers_; ++l) {
    const auto& row = counts[static_cast<size_t>(l)];
    MOERUN_CHECK(static_cast<int64_t>(row.size()) == n_experts_);
    for (int64_t e = 0; e < n_experts_; ++e) {
      if (row[static_cast<size_t>(e)] > 0)
        order.push_back(static_cast<int32_t>(l * n_experts_ + e));
    }
  }
  auto count = [&](int32_t key) {
    return counts[static_cast<size_t>(key / n_experts_)][static_cast<size_t>(key % n_experts_)];
  };
  std::stable_sort(order.begin(), order.end(),
                   [&](int32_t a, int32_t b) { return count(a) > count(b); });
  int64_t placed = 0;
  for (int32_t key : order) {
    if (placed >= max_experts) break;
    const int64_t layer = key / n_experts_, expert = key % n_experts_;
    if (pin_them) {
      if (pin(layer, expert) < 0) break;
    } else if (slot_of(layer, expert) < 0) {
      if (place_free(layer, expert) < 0) break;
    }
    ++placed;
  }
  return placed;
}

int32_t ExpertCacheTable::place_free(int64_t layer, int64_t expert) {
  MOERUN_CHECK(layer >= 0 && layer < n_layers_ && expert >= 0 && expert < n_experts_);
  if (free_.empty() || slot_of(layer, expert) >= 0) return -1;
  const int32_t slot = free_.back();
  free_.pop_back();
  place(static_cast<int32_t>(layer * n_experts_ + expert), slot);
  heap_push(slot);
  return slot;
}

void ExpertCacheTable::place(int32_t key, int32_t slot) {
  slot_of_[static_cast<size_t>(key)] = slot;
  key_of_[static_cast<size_t>(slot)] = key;
  ++resident_per_layer_[static_cast<size_t>(key / n_experts_)];
}

int32_t ExpertCacheTable::evict_one(int64_t protect_layer) {
  while (!heap_.empty()) {
    const int32_t slot = heap_pop();
    const int32_t key = key_of_[static_cast<size_t>(slot)];
    const bool chosen_now =
        key / n_experts_ == protect_layer && mark_[static_cast<size_t>(key % n_experts_)] == epoch_;
    if (!chosen_now) return slot;
    aside_.push_back(slot);
  }
  return -1;
}

void ExpertCacheTable::rebuild_heap() {
  policy_epoch_ = policy_->order_epoch();
  for (int32_t slot : heap_) {
    prio_[static_cast<size_t>(slot)] = policy_->priority(key_of_[static_cast<size_t>(slot)]);
  }
  for (auto i = static_cast<int64_t>(heap_.size()) / 2 - 1; i >= 0; --i) sift_down(i);
}

void ExpertCacheTable::heap_push(int32_t slot) {
  prio_[static_cast<size_t>(slot)] = policy_->priority(key_of_[static_cast<size_t>(slot)]);
  heap_.push_back(slot);
  const auto i = static_cast<int64_t>(heap_.size()) - 1;
  heap_pos_[static_cast<size_t>(slot)] = i;
  sift_up(i);
}

int32_t ExpertCacheTable::heap_pop() {
  const int32_t top = heap_.front();
  const int32_t last = heap_.back();
  heap_.pop_back();
  heap_pos_[static_cast<size_t>(top)] = -1;
  if (!heap_.empty()) {
    heap_[0] = last;
    heap_pos_[static_cast<size_t>(last)] = 0;
    sift_down(0);
  }
  return top;
}

void ExpertCacheTable::heap_update(int32_t slot) {
  prio_[static_cast<size_t>(slot)] = policy_->priority(key_of_[static_cast<size_t>(slot)]);
  const int64_t i = heap_pos_[static_cast<size_t>(slot)];
  sift_up(i);
  sift_down(heap_pos_[static_cast<size_t>(slot)]);
}

void ExpertCacheTable::sift_up(int64_t i) {
  const int32_t slot = heap_[static_cast<size_t>(i)];
  const double p = prio_[static_cast<size_t>(slot)];
  while (i > 0) {
    const int64_t parent = (i - 1) / 2;
    const int32_t ps = heap_[static_cast<size_t>(parent)];
    if (prio_[static_cast<size_t>(ps)] <= p) break;
    heap_[static_cast<size_t>(i)] = ps;
    heap_pos_[static_cast<size_t>(ps)] = i;
    i = parent;
  }
  heap_[static_cast<size_t>(i)] = slot;
  heap_pos_[static_cast<size_t>(slot)] = i;
}

void ExpertCacheTable::sift_down(int64_t i) {
  const auto n = static_cast<int64_t>(heap_.size());
  const int32_t slot = heap_[static_cast<size_t>(i)];
  const double p = prio_[static_cast<size_t>(slot)];
  while (true) {
    int64_t child = 2 * i + 1;
    if (child >= n) break;
    if (child + 1 < n && prio_[static_cast<size_t>(heap_[static_cast<size_t>(child + 1)])] <
                             prio_[static_cast<size_t>(heap_[static_cast<size_t>(child)])]) {
      ++child;
    }
    const int32_t cs = heap_[static_cast<size_t>(child)];
    if (prio_[static_cast<size_t>(cs)] >= p) break;
    heap_[static_cast<size_t>(i)] = cs;
    heap_pos_[static_cast<size_t>(cs)] = i;
    i = child;
  }
  heap_[static_cast<size_t>(i)] = slot;
  heap_pos_[static_cast<size_t>(slot)] = i;
}

}  // namespace moerun
