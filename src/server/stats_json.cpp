#include "server/stats_json.h"

namespace moerun::server {
namespace {

using json = nlohmann::json;

json counters_json(const LayerExpertCounters& c) {
  return {{"routed", c.routed},
          {"gpu_hits", c.gpu_hits},
          {"hit_rate",
           c.routed ? static_cast<double>(c.gpu_hits) / static_cast<double>(c.routed) : 0.0},
          {"cpu_experts", c.cpu_experts},
          {"copied_experts", c.copied_experts},
          {"bytes_copied", c.bytes_copied},
          {"bytes_cpu_read", c.bytes_cpu_read},
          {"predicted", c.predicted},
          {"prediction_checked", c.prediction_checked},
          {"prefetch_accuracy", c.prediction_checked ? static_cast<double>(c.predicted) /
                                                           static_cast<double>(c.prediction_checked)
                                                     : 0.0},
          {"resident", c.resident}};
}

json figures_json(const std::vector<MemoryFigure>& figures) {
  json out = json::object();
  for (const MemoryFigure& f : figures) out[f.name] = f.bytes;
  return out;
}

}  // namespace

json expert_stats_json(const ExpertStatsSnapshot* s) {
  if (!s) {
    return {{"available", false},
            {"n_layers", 0},
            {"n_experts", 0},
            {"tokens", 0},
            {"hit_rate", 0.0},
            {"prefetch_accuracy", 0.0},
            {"totals", counters_json({})},
            {"layers", json::array()}};
  }
  json layers = json::array();
  for (size_t l = 0; l < s->layers.size(); ++l) {
    json layer = counters_json(s->layers[l]);
    layer["layer"] = l;
    layer["usage"] = l < s->usage.size() ? json(s->usage[l]) : json::array();
    layers.push_back(std::move(layer));
  }
  return {{"available", true},
          {"n_layers", s->layers.size()},
          {"n_experts", s->n_experts},
          {"tokens", s->tokens},
          {"hit_rate", s->hit_rate()},
          {"prefetch_accuracy", s->prediction_accuracy()},
          {"cpu_busy_seconds", s->cpu_busy_seconds},
          {"gpu_busy_seconds", s->gpu_busy_seconds},
          {"cache", {{"slots", s->cache_slots}, {"policy", s->cache_policy}}},
          {"totals", counters_json(s->total())},
          {"layers", std::move(layers)}};
}

MemoryReport collect_memory(const ServerContext& ctx) {
  MemoryReport r;
  read_host_memory(r);
  if (ctx.engine) r.sequence_state_bytes = ctx.engine->sequence_state_bytes();
  for (const MemoryProvider* p : ctx.memory) p->add_to(r);
  return r;
}

json memory_json(const MemoryReport& r) {
  return {{"host",
           {{"rss_bytes", r.host_rss_bytes},
            {"peak_rss_bytes", r.host_peak_rss_bytes},
            {"model_file_bytes", r.model_file_bytes},
            {"expert_store_bytes", r.expert_store_bytes},
            {"pinned_bytes", r.pinned_bytes},
            {"sequence_state_bytes", r.sequence_state_bytes},
            {"categories", figures_json(r.host_categories)}}},
          {"vram",
           {{"budget_bytes", r.vram_budget_bytes},
            {"used_bytes", r.vram_used_bytes},
            {"categories", figures_json(r.vram_categories)}}}};
}

}  // namespace moerun::server
