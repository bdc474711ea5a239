#include "server/metrics.h"

#include <fmt/format.h>

#include "moe/expert_stats.h"
#include "server/stats_json.h"

namespace moerun::server {
namespace {

// Appends one metric family with a single unlabelled sample.
void family(std::string& out, const char* name, const char* type, const char* help, double value) {
  fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} {}\n{} {}\n", name, help, name,
                 type, name, value);
}

}  // namespace

std::string prometheus_metrics(const ServerContext& ctx) {
  std::string out;
  const EngineCounters c = ctx.engine->counters();
  auto d = [](auto v) { return static_cast<double>(v); };
  family(out, "moerun_requests_total", "counter", "Requests accepted by the engine.",
         d(c.requests_submitted));
  family(out, "moerun_requests_rejected_total", "counter",
         "Requests refused because the queue was full or the server was stopping.",
         d(c.requests_rejected));
  out +=
      "# HELP moerun_requests_finished_total Requests that ended, by how.\n"
      "# TYPE moerun_requests_finished_total counter\n";
  const uint64_t abnormal = c.requests_cancelled + c.requests_timed_out + c.requests_failed;
  fmt::format_to(std::back_inserter(out),
                 "moerun_requests_finished_total{{reason=\"completed\"}} {}\n",
                 c.requests_finished >= abnormal ? c.requests_finished - abnormal : 0);
  fmt::format_to(std::back_inserter(out),
                 "moerun_requests_finished_total{{reason=\"cancelled\"}} {}\n",
                 c.requests_cancelled);
  fmt::format_to(std::back_inserter(out),
                 "moerun_requests_finished_total{{reason=\"timeout\"}} {}\n", c.requests_timed_out);
  fmt::format_to(std::back_inserter(out), "moerun_requests_finished_total{{reason=\"error\"}} {}\n",
                 c.requests_failed);
  out +=
      "# HELP moerun_http_responses_total HTTP responses by status code.\n"
      "# TYPE moerun_http_responses_total counter\n";
  for (size_t i = 0; i < HttpCounters::kStatuses.size(); ++i) {
    const int status = HttpCounters::kStatuses[i];
    fmt::format_to(std::back_inserter(out), "moerun_http_responses_total{{status=\"{}\"}} {}\n",
                   status == 0 ? std::string("other") : std::to_string(status), ctx.http.count(i));
  }
  family(out, "moerun_prompt_tokens_total", "counter", "Prompt tokens processed.",
         d(c.prompt_tokens));
  family(out, "moerun_generated_tokens_total", "counter", "Tokens generated.",
         d(c.generated_tokens));
  family(out, "moerun_tokens_per_second", "gauge",
         "Tokens generated per second over the last few seconds.", c.tokens_per_second);
  family(out, "moerun_queue_depth", "gauge", "Requests waiting for a sequence.", d(c.queue_depth));
  family(out, "moerun_queue_limit", "gauge", "Requests that may wait at most.", d(c.max_queue));
  family(out, "moerun_active_sequences", "gauge", "Sequences being served now.",
         d(c.active_sequences));
  family(out, "moerun_max_sequences", "gauge", "Sequences served together at most.",
         d(c.max_sequences));
  family(out, "moerun_engine_steps_total", "counter", "Forward passes of the scheduler.",
         d(c.steps));
  family(out, "moerun_engine_busy_seconds_total", "counter", "Time spent in forward passes.",
         c.busy_seconds);

  ExpertStatsSnapshot snap;
  if (ExpertStats* stats = ctx.engine->expert_stats()) snap = stats->snapshot();
  const LayerExpertCounters total = snap.total();
  family(out, "moerun_expert_hit_rate", "gauge",
         "Fraction of routed experts served from the VRAM cache.", snap.hit_rate());
  family(out, "moerun_expert_routed_total", "counter", "Routed (token, expert) assignments.",
         d(total.routed));
  family(out, "moerun_expert_gpu_hits_total", "counter",
         "Assignments whose expert was resident in VRAM.", d(total.gpu_hits));
  family(out, "moerun_expert_bytes_copied_total", "counter",
         "Expert bytes copied from host to GPU.", d(total.bytes_copied));
  family(out, "moerun_expert_bytes_cpu_read_total", "counter",
         "Expert weight bytes streamed by the CPU.", d(total.bytes_cpu_read));
  family(out, "moerun_expert_prefetch_accuracy", "gauge",
         "Fraction of chosen experts that had been predicted.", snap.prediction_accuracy());

  const MemoryReport mem = collect_memory(ctx);
  family(out, "moerun_host_rss_bytes", "gauge", "Resident memory of the process.",
         d(mem.host_rss_bytes));
  family(out, "moerun_vram_budget_bytes", "gauge", "VRAM budget (0 without a GPU).",
         d(mem.vram_budget_bytes));
  family(out, "moerun_vram_used_bytes", "gauge", "VRAM in use (0 without a GPU).",
         d(mem.vram_used_bytes));
  return out;
}

}  // namespace moerun::server
