// Routed-expert statistics kept on the hot path (relaxed atomic counters, no locks) and read
// from any thread as a snapshot: what the server's /api/v1/expert-stats and `moerun bench` show.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace moerun {

// Counters of one MoE layer since the last reset, as plain numbers.
struct LayerExpertCounters {
  uint64_t routed = 0;              // (token, expert) assignments routed
  uint64_t gpu_hits = 0;            // assignments whose expert was resident in the VRAM cache
  uint64_t cpu_experts = 0;         // expert evaluations run on the CPU (one per expert per step)
  uint64_t copied_experts = 0;      // experts copied host -> device (misses copied in, prefetches)
  uint64_t bytes_copied = 0;        // expert bytes copied host -> device
  uint64_t bytes_cpu_read = 0;      // expert weight bytes the CPU streamed
  uint64_t predicted = 0;           // chosen experts that the prefetcher had predicted
  uint64_t prediction_checked = 0;  // chosen experts of steps that had a prediction
  uint64_t resident = 0;            // experts of this layer in the VRAM cache now
};

// A copy of all counters at one moment.
struct ExpertStatsSnapshot {
  int64_t n_experts = 0;                     // experts per layer
  std::vector<LayerExpertCounters> layers;   // [n_layers]
  std::vector<std::vector<uint64_t>> usage;  // [n_layers][n_experts] times each was chosen
  uint64_t tokens = 0;                       // tokens that went through the MoE layers
  double cpu_busy_seconds = 0;               // wall time the CPU spent on routed experts
  double gpu_busy_seconds = 0;               // GPU time of routed experts (when measured)
  int64_t cache_slots = 0;                   // VRAM expert slots (0: no cache)
  std::string cache_policy;                  // replacement policy name, or "" without a cache

  // Fraction of routed assignments served by the VRAM cache (0 when nothing was routed).
  double hit_rate() const;
  // Fraction of chosen experts that were predicted (0 when nothing was predicted).
  double prediction_accuracy() const;
  // Sum of the per-layer counters.
  LayerExpertCounters total() const;
};

// Live counters of every MoE layer. Writers are the engine thread and its workers; readers may
// be any thread (snapshot() is consistent per counter, not across counters).
class ExpertStats {
 public:
  // Counters for `n_layers` layers of `n_experts` experts each.
  ExpertStats(int64_t n_layers, int64_t n_experts);

  int64_t n_layers() const { return n_layers_; }
  int64_t n_experts() const { return n_experts_; }

  // Records the experts chosen in `layer` for a step: ids [n_assign].
  void record_routing(int64_t layer, const int32_t* ids, int64_t n_assign);
  // Records `hits` assignments of `layer` served from VRAM.
  void record_hits(int64_t layer, uint64_t hits) { at(layer, kGpuHits).fetch_add(hits, kRelaxed); }
  // Records `experts` CPU expert evaluations of `layer` that read `bytes` of weights.
  void record_cpu(int64_t layer, uint64_t experts, uint64_t bytes);
  // Records `experts` copied to VRAM for `layer`, `bytes` in all.
  void record_copy(int64_t layer, uint64_t experts, uint64_t bytes);
  // Records how many of `checked` chosen experts of `layer` had been predicted.
  void record_prediction(int64_t layer, uint64_t predicted, uint64_t checked);
  // Sets the number of resident experts of `layer`.
  void set_resident(int64_t layer, uint64_t resident) {
    at(layer, kResident).store(resident, kRelaxed);
  }
  // Adds `n` tokens that went through the MoE layers (once per forward pass).
  void record_tokens(uint64_t n) { tokens_.fetch_add(n, kRelaxed); }
  // Adds busy time of the CPU or GPU expert work.
  void add_cpu_seconds(double s);
  void add_gpu_seconds(double s);
  // Describes the cache for snapshots; call while setting up, before other threads read.
  void set_cache(int64_t slots, std::string policy);

  // A copy of every counter.
  ExpertStatsSnapshot snapshot() const;
  // Zeroes the counters (resident counts and the cache description stay).
  void reset();

 private:
  enum Field : int {
    kRouted,
    kGpuHits,
    kCpuExperts,
    kCopiedExperts,
    kBytesCopied,
    kBytesCpuRead,
    kPredicted,
    kPredictionChecked,
    kResident,
    kFields
  };
  static constexpr std::memory_order kRelaxed = std::memory_order_relaxed;
  std::atomic<uint64_t>& at(int64_t layer, Field f) { return counters_[layer * kFields + f]; }

  int64_t n_layers_;
  int64_t n_experts_;
  std::unique_ptr<std::atomic<uint64_t>[]> counters_;  // [n_layers, kFields]
  std::unique_ptr<std::atomic<uint64_t>[]> usage_;     // [n_layers, n_experts]
  std::atomic<uint64_t> tokens_{0};
  std::atomic<uint64_t> cpu_nanos_{0};
  std::atomic<uint64_t> gpu_nanos_{0};
  int64_t cache_slots_ = 0;
  std::string policy_;
};

}  // namespace moerun
