#include "model/convert_plan.h"

#include <cmath>

namespace moerun {

RowFill rows_of(const HfWeight* w, int64_t row_len) {
  return [w, row_len](int64_t r0, int64_t r1, float* out) {
    w->read(r0 * row_len, (r1 - r0) * row_len, out);
  };
}

RowFill stacked_rows(std::vector<const HfWeight*> parts, int64_t rows_per_part, int64_t row_len) {
  return [parts = std::move(parts), rows_per_part, row_len](int64_t r0, int64_t r1, float* out) {
    int64_t r = r0;
    while (r < r1) {
      const int64_t part = r / rows_per_part;
      const int64_t first = r % rows_per_part;
      const int64_t n = std::min(r1 - r, rows_per_part - first);
      parts[static_cast<size_t>(part)]->read(first * row_len, n * row_len,
                                             out + (r - r0) * row_len);
      r += n;
    }
  };
}

RowFill remapped_rows(const HfWeight* w, int64_t row_len,
                      std::function<int64_t(int64_t)> source_row) {
  return [w, row_len, source_row = std::move(source_row)](int64_t r0, int64_t r1, float* out) {
    for (int64_t r = r0; r < r1; ++r)
      w->read(source_row(r) * row_len, row_len, out + (r - r0) * row_len);
  };
}

RowFill transformed(RowFill inner, int64_t row_len, float (*fn)(float)) {
  return [inner = std::move(inner), row_len, fn](int64_t r0, int64_t r1, float* out) {
    inner(r0, r1, out);
    const int64_t n = (r1 - r0) * row_len;
    for (int64_t i = 0; i < n; ++i) out[i] = fn(out[i]);
  };
}

float plus_one(float w) {
  return 1.0f + w;
}

float neg_exp(float a_log) {
  return -std::exp(a_log);
}

void plan_experts(const std::string& prefix, int64_t n_experts, int64_t hidden, int64_t ffn,
                  const std::string& gguf_prefix, HfWeights& weights,
                  std::vector<PlannedTensor>& out) {
  const TensorSpec gate{
      gguf_prefix + "ffn_gate_exps.weight", {hidden, ffn, n_experts}, TensorRole::expert_in};
  const TensorSpec up{
      gguf_prefix + "ffn_up_exps.weight", {hidden, ffn, n_experts}, TensorRole::expert_in};
  const TensorSpec down{
      gguf_prefix + "ffn_down_exps.weight", {ffn, hidden, n_experts}, TensorRole::expert_down};
  if (weights.has(prefix + "gate_up_proj")) {
    // transformers v5: gate_up_proj [E, 2 * ffn, hidden] (gate rows first), down_proj
    // [E, hidden, ffn].
    const HfWeight* gate_up =
        weights.require(prefix + "gate_up_proj", {n_experts, 2 * ffn, hidden});
    const HfWeight* down_w = weights.require(prefix + "down_proj", {n_experts, hidden, ffn});
    out.push_back({gate, remapped_rows(gate_up, hidden, [ffn](int64_t r) {
                     return (r / ffn) * 2 * ffn + r % ffn;
                   })});
    out.push_back({up, remapped_rows(gate_up, hidden, [ffn](int64_t r) {
                     return (r / ffn) * 2 * ffn + ffn + r % ffn;
                   })});
    out.push_back({down, rows_of(down_w, ffn)});
    return;
  }
  std::vector<const HfWeight*> gates, ups, downs;
  for (int64_t e = 0; e < n_experts; ++e) {
    const std::string p = prefix + std::to_string(e) + ".";
    gates.push_back(weights.require(p + "gate_proj.weight", {ffn, hidden}));
    ups.push_back(weights.require(p + "up_proj.weight", {ffn, hidden}));
    downs.push_back(weights.require(p + "down_proj.weight", {hidden, ffn}));
  }
  out.push_back({gate, stacked_rows(std::move(gates), ffn, hidden)});
  out.push_back({up, stacked_rows(std::move(ups), ffn, hidden)});
  out.push_back({down, stacked_rows(std::move(downs), hidden, ffn)});
}

}  // namespace moerun
