// One timed run of a LanguageModel for `moerun bench`: prefill of a synthetic prompt in chunks,
// then greedy decode token by token, with the latencies, throughput, memory and routed-expert
// traffic the benchmark reports; plus the small statistics used to summarise repeats.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace moerun {

class LanguageModel;

// What one run does.
struct BenchRunConfig {
  int64_t prompt_tokens = 512;  // P: synthetic prompt length
  int64_t gen_tokens = 128;     // G: tokens sampled (greedy), the first one from the prefill
  int64_t prefill_chunk = 512;  // prompt tokens per forward pass
  uint64_t seed = 1;            // seed of the synthetic prompt
};

// What one run measured. Decode figures cover the G - 1 forward passes after the first token.
struct BenchRunResult {
  int64_t prompt_tokens = 0;
  int64_t gen_tokens = 0;
  double ttft_seconds = 0;          // prompt start -> first token sampled
  double prefill_seconds = 0;       // the prompt's forward passes
  double decode_seconds = 0;        // first token sampled -> last token sampled
  double prefill_tok_s = 0;         // prompt_tokens / prefill_seconds
  double decode_tok_s = 0;          // (gen_tokens - 1) / decode_seconds; 0 when gen_tokens < 2
  std::vector<double> itl_seconds;  // [gen_tokens - 1] time between successive sampled tokens
  double itl_p50 = 0;
  double itl_p95 = 0;
  bool has_expert_stats = false;  // the model keeps ExpertStats (else the fields below are 0)
  double decode_hit_rate = 0;     // routed assignments served by the VRAM cache, decode
  double decode_pcie_bytes_per_token = 0;  // expert bytes copied host -> GPU per decode token
  double decode_host_bytes_per_token = 0;  // expert bytes the CPU streamed per decode token
  double decode_cpu_busy_per_token = 0;    // seconds the CPU spent on routed experts per token
  double decode_gpu_busy_per_token = 0;    // seconds of routed-expert kernels per token
  double prefill_hit_rate = 0;
  int64_t peak_rss_bytes = 0;      // VmHWM of the process after the run (0: unknown)
  std::vector<int32_t> generated;  // [gen_tokens] the greedy tokens
};

// `n` token ids drawn uniformly from [0, vocab) by a generator seeded with `seed` (the same ids
// on every machine for the same arguments).
std::vector<int32_t> synthetic_prompt(int64_t n, int64_t vocab, uint64_t seed);

// Runs a fresh sequence of P + G tokens on `model`: prefill, then G greedy tokens (stop tokens are
// not honoured: every run produces exactly G). Resets the model's ExpertStats. Throws Error when
// P < 1, G < 1 or P + G exceeds the model's context length.
BenchRunResult run_bench_once(LanguageModel& model, const BenchRunConfig& config);

// The p-th percentile (0 <= p <= 100) of `values`, linearly interpolated between closest ranks
// (numpy's default); 0 for no values.
double percentile(std::span<const double> values, double p);

// Median and range of repeated measurements.
struct Spread {
  double median = 0;
  double min = 0;
  double max = 0;
};

// The median, min and max of `values` (all 0 for no values).
Spread spread_of(std::span<const double> values);

// Peak resident set (VmHWM) of this process from /proc/self/status, bytes; 0 when unreadable.
int64_t read_peak_rss_bytes();

}  // namespace moerun
