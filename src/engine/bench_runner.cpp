#include "engine/bench_runner.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <random>
#include <string>

#include "core/error.h"
#include "model/language_model.h"
#include "moe/expert_stats.h"

namespace moerun {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

}  // namespace

std::vector<int32_t> synthetic_prompt(int64_t n, int64_t vocab, uint64_t seed) {
  if (vocab < 1) fail("synthetic prompt: vocabulary size {} must be >= 1", vocab);
  std::mt19937_64 rng(seed);
  std::vector<int32_t> ids(static_cast<size_t>(std::max<int64_t>(0, n)));
  // Not std::uniform_int_distribution: its output differs between standard libraries.
  for (int32_t& id : ids) id = static_cast<int32_t>(rng() % static_cast<uint64_t>(vocab));
  return ids;
}

BenchRunResult run_bench_once(LanguageModel& model, const BenchRunConfig& config) {
  const ModelInfo& info = model.info();
  if (config.prompt_tokens < 1) fail("the prompt needs at least 1 token");
  if (config.gen_tokens < 1) fail("at least 1 token must be generated");
  const int64_t needed = config.prompt_tokens + config.gen_tokens;
  if (info.context_length > 0 && needed > info.context_length) {
    fail("prompt {} + generated {} tokens exceed the model's context length {}",
         config.prompt_tokens, config.gen_tokens, info.context_length);
  }
  const std::vector<int32_t> prompt =
      synthetic_prompt(config.prompt_tokens, info.vocab, config.seed);
  std::unique_ptr<SequenceState> state = model.new_sequence(needed);
  SequenceState* states[] = {state.get()};
  // Greedy: only the largest logit and its id come back (the lowest id on ties).
  float top_logit = 0.0f;  // [1]
  int32_t top_id = -1;     // [1]
  ExpertStats* stats = model.expert_stats();

  BenchRunResult r;
  r.prompt_tokens = config.prompt_tokens;
  r.gen_tokens = config.gen_tokens;
  r.generated.reserve(static_cast<size_t>(config.gen_tokens));
  r.itl_seconds.reserve(static_cast<size_t>(config.gen_tokens));
  if (stats) stats->reset();

  Batch batch;
  const int64_t chunk = std::max<int64_t>(1, config.prefill_chunk);
  const Clock::time_point start = Clock::now();
  for (int64_t begin = 0; begin < config.prompt_tokens; begin += chunk) {
    const int64_t end = std::min(config.prompt_tokens, begin + chunk);
    batch.clear();
    batch.add(
        std::span(prompt).subspan(static_cast<size_t>(begin), static_cast<size_t>(end - begin)), 0,
        end == config.prompt_tokens);
    model.forward_top(batch, states, 1, &top_logit, &top_id);
  }
  const Clock::time_point prefilled = Clock::now();
  r.generated.push_back(top_id);
  Clock::time_point last = Clock::now();
  const Clock::time_point first_token = last;
  if (stats) {
    r.prefill_hit_rate = stats->snapshot().hit_rate();
    stats->reset();
  }

  for (int64_t i = 1; i < config.gen_tokens; ++i) {
    batch.clear();
    const int32_t one[] = {r.generated.back()};
    batch.add(one, 0, true);
    model.forward_top(batch, states, 1, &top_logit, &top_id);
    r.generated.push_back(top_id);
    const Clock::time_point now = Clock::now();
    r.itl_seconds.push_back(seconds_between(last, now));
    last = now;
  }

  r.ttft_seconds = seconds_between(start, first_token);
  r.prefill_seconds = seconds_between(start, prefilled);
  r.decode_seconds = seconds_between(first_token, last);
  r.prefill_tok_s = static_cast<double>(config.prompt_tokens) / r.prefill_seconds;
  const int64_t steps = config.gen_tokens - 1;
  r.decode_tok_s = steps > 0 ? static_cast<double>(steps) / r.decode_seconds : 0.0;
  r.itl_p50 = percentile(r.itl_seconds, 50);
  r.itl_p95 = percentile(r.itl_seconds, 95);
  if (stats) {
    r.has_expert_stats = true;
    const ExpertStatsSnapshot snap = stats->snapshot();
    const LayerExpertCounters total = snap.total();
    r.decode_hit_rate = snap.hit_rate();
    if (steps > 0) {
      r.decode_pcie_bytes_per_token =
          static_cast<double>(total.bytes_copied) / static_cast<double>(steps);
      r.decode_host_bytes_per_token =
          static_cast<double>(total.bytes_cpu_read) / static_cast<double>(steps);
      r.decode_cpu_busy_per_token = snap.cpu_busy_seconds / static_cast<double>(steps);
      r.decode_gpu_busy_per_token = snap.gpu_busy_seconds / static_cast<double>(steps);
    }
  }
  r.peak_rss_bytes = read_peak_rss_bytes();
  return r;
}

double percentile(std::span<const double> values, double p) {
  if (values.empty()) return 0.0;
  if (!(p >= 0 && p <= 100)) fail("percentile {} is outside [0, 100]", p);
  std::vector<double> sorted(values.begin(), values.end());
  std::sort(sorted.begin(), sorted.end());
  const double rank = p / 100.0 * static_cast<double>(sorted.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(rank));
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  const double frac = rank - static_cast<double>(lo);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * frac;
}

Spread spread_of(std::span<const double> values) {
  Spread s;
  if (values.empty()) return s;
  s.median = percentile(values, 50);
  s.min = *std::min_element(values.begin(), values.end());
  s.max = *std::max_element(values.begin(), values.end());
  return s;
}

int64_t read_peak_rss_bytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) {
      try {
        return std::stoll(line.substr(6)) * 1024;  // the kernel writes "VmHWM:   1234 kB"
      } catch (const std::exception&) {
        return 0;
      }
    }
  }
  return 0;
}

}  // namespace moerun
