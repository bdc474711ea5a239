#include "moe/prefill_split.h"

#include <algorithm>
#include <numeric>

#include "core/error.h"
#include "moe/cost_model.h"

namespace moerun {

double PrefillCosts::cpu_seconds(int64_t tokens) const {
  return std::max(cpu_stream_seconds, cpu_seconds_per_token * static_cast<double>(tokens));
}

PrefillCosts prefill_costs(const CostModel& cost, int64_t expert_bytes) {
  const Calibration& c = cost.calibration();
  const auto bytes = static_cast<double>(expert_bytes);
  PrefillCosts p;
  p.copy_seconds = cost.copy_seconds(expert_bytes);
  p.cpu_stream_seconds = bytes / c.cpu_read_bw;
  p.cpu_seconds_per_token = bytes / c.cpu_gemm_bytes_tokens;
  return p;
}

int64_t split_prefill_misses(const PrefillCosts& costs, std::span<const int32_t> tokens,
                             std::span<uint8_t> to_gpu, std::vector<int32_t>& order) {
  MOERUN_CHECK(to_gpu.size() == tokens.size());
  const auto n = static_cast<int64_t>(tokens.size());
  order.resize(tokens.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int32_t a, int32_t b) { return tokens[a] > tokens[b]; });
  double cpu_left = 0;
  for (const int32_t t : tokens) cpu_left += costs.cpu_seconds(t);
  // Move experts to the GPU while that shortens the longer of the two queues.
  double copy = 0;
  int64_t k = 0;
  while (k < n) {
    const double cpu_after = cpu_left - costs.cpu_seconds(tokens[order[k]]);
    const double copy_after = copy + costs.copy_seconds;
    if (std::max(copy_after, cpu_after) >= std::max(copy, cpu_left)) break;
    copy = copy_after;
    cpu_left = cpu_after;
    ++k;
  }
  std::fill(to_gpu.begin(), to_gpu.end(), uint8_t{0});
  for (int64_t i = 0; i < k; ++i) to_gpu[order[i]] = 1;
  return k;
}

}  // namespace moerun
