#include "moe/expert_stats.h"

#include <cmath>

#include "core/error.h"

namespace moerun {

double ExpertStatsSnapshot::hit_rate() const {
  const LayerExpertCounters t = total();
  return t.routed == 0 ? 0.0 : static_cast<double>(t.gpu_hits) / static_cast<double>(t.routed);
}

double ExpertStatsSnapshot::prediction_accuracy() const {
  const LayerExpertCounters t = total();
  return t.prediction_checked == 0
             ? 0.0
             : static_cast<double>(t.predicted) / static_cast<double>(t.prediction_checked);
}

LayerExpertCounters ExpertStatsSnapshot::total() const {
  LayerExpertCounters t;
  for (const LayerExpertCounters& l : layers) {
    t.routed += l.routed;
    t.gpu_hits += l.gpu_hits;
    t.cpu_experts += l.cpu_experts;
    t.copied_experts += l.copied_experts;
    t.bytes_copied += l.bytes_copied;
    t.bytes_cpu_read += l.bytes_cpu_read;
    t.predicted += l.predicted;
    t.prediction_checked += l.prediction_checked;
    t.resident += l.resident;
  }
  return t;
}

ExpertStats::ExpertStats(int64_t n_layers, int64_t n_experts)
    : n_layers_(n_layers),
      n_experts_(n_experts),
      counters_(new std::atomic<uint64_t>[static_cast<size_t>(n_layers * kFields)]),
      usage_(new std::atomic<uint64_t>[static_cast<size_t>(n_layers * n_experts)]) {
  MOERUN_CHECK(n_layers >= 0 && n_experts >= 0);
  for (int64_t i = 0; i < n_layers * kFields; ++i) counters_[i].store(0, kRelaxed);
  for (int64_t i = 0; i < n_layers * n_experts; ++i) usage_[i].store(0, kRelaxed);
}

void ExpertStats::record_routing(int64_t layer, const int32_t* ids, int64_t n_assign) {
  at(layer, kRouted).fetch_add(static_cast<uint64_t>(n_assign), kRelaxed);
  std::atomic<uint64_t>* usage = usage_.get() + layer * n_experts_;
  for (int64_t i = 0; i < n_assign; ++i) usage[ids[i]].fetch_add(1, kRelaxed);
}

void ExpertStats::record_cpu(int64_t layer, uint64_t experts, uint64_t bytes) {
  at(layer, kCpuExperts).fetch_add(experts, kRelaxed);
  at(layer, kBytesCpuRead).fetch_add(bytes, kRelaxed);
}

void ExpertStats::record_copy(int64_t layer, uint64_t experts, uint64_t bytes) {
  at(layer, kCopiedExperts).fetch_add(experts, kRelaxed);
  at(layer, kBytesCopied).fetch_add(bytes, kRelaxed);
}

void ExpertStats::record_prediction(int64_t layer, uint64_t predicted, uint64_t checked) {
  at(layer, kPredicted).fetch_add(predicted, kRelaxed);
  at(layer, kPredictionChecked).fetch_add(checked, kRelaxed);
}

void ExpertStats::add_cpu_seconds(double s) {
  cpu_nanos_.fetch_add(static_cast<uint64_t>(std::llround(s * 1e9)), kRelaxed);
}

void ExpertStats::add_gpu_seconds(double s) {
  gpu_nanos_.fetch_add(static_cast<uint64_t>(std::llround(s * 1e9)), kRelaxed);
}

void ExpertStats::set_cache(int64_t slots, std::string policy) {
  cache_slots_ = slots;
  policy_ = std::move(policy);
}

ExpertStatsSnapshot ExpertStats::snapshot() const {
  ExpertStatsSnapshot s;
  s.n_experts = n_experts_;
  s.layers.resize(static_cast<size_t>(n_layers_));
  s.usage.resize(static_cast<size_t>(n_layers_));
  for (int64_t l = 0; l < n_layers_; ++l) {
    const std::atomic<uint64_t>* c = counters_.get() + l * kFields;
    LayerExpertCounters& out = s.layers[static_cast<size_t>(l)];
    out.routed = c[kRouted].load(kRelaxed);
    out.gpu_hits = c[kGpuHits].load(kRelaxed);
    out.cpu_experts = c[kCpuExperts].load(kRelaxed);
    out.copied_experts = c[kCopiedExperts].load(kRelaxed);
    out.bytes_copied = c[kBytesCopied].load(kRelaxed);
    out.bytes_cpu_read = c[kBytesCpuRead].load(kRelaxed);
    out.predicted = c[kPredicted].load(kRelaxed);
    out.prediction_checked = c[kPredictionChecked].load(kRelaxed);
    out.resident = c[kResident].load(kRelaxed);
    std::vector<uint64_t>& u = s.usage[static_cast<size_t>(l)];
    u.resize(static_cast<size_t>(n_experts_));
    for (int64_t e = 0; e < n_experts_; ++e) {
      u[static_cast<size_t>(e)] = usage_[l * n_experts_ + e].load(kRelaxed);
    }
  }
  s.tokens = tokens_.load(kRelaxed);
  s.cpu_busy_seconds = static_cast<double>(cpu_nanos_.load(kRelaxed)) * 1e-9;
  s.gpu_busy_seconds = static_cast<double>(gpu_nanos_.load(kRelaxed)) * 1e-9;
  s.cache_slots = cache_slots_;
  s.cache_policy = policy_;
  return s;
}

void ExpertStats::reset() {
  for (int64_t l = 0; l < n_layers_; ++l) {
    for (int f = 0; f < kFields; ++f) {
      if (f != kResident) counters_[l * kFields + f].store(0, kRelaxed);
    }
  }
  for (int64_t i = 0; i < n_layers_ * n_experts_; ++i) usage_[i].store(0, kRelaxed);
  tokens_.store(0, kRelaxed);
  cpu_nanos_.store(0, kRelaxed);
  gpu_nanos_.store(0, kRelaxed);
}

}  // namespace moerun
