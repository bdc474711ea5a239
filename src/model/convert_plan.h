// The converter's plan: every GGUF tensor with the recipe that produces its rows from checkpoint
// weights (copies, stacking, row regrouping, elementwise transformations).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/convert_weights.h"
#include "model/qwen3_moe_config.h"
#include "model/qwen3_next_config.h"
#include "model/qwen3_next_tensors.h"

namespace moerun {

// Produces rows [r0, r1) of a GGUF tensor as f32 into out [r1 - r0, ne[0]]. Must not throw: every
// size it relies on was checked while planning.
using RowFill = std::function<void(int64_t r0, int64_t r1, float* out)>;

// One GGUF tensor to write: name, shape (ne[0] contiguous), role, and how to make its rows.
struct PlannedTensor {
  TensorSpec spec;
  RowFill fill;
};

// Rows of `w` taken as consecutive runs of `row_len` elements (any torch shape, flattened).
RowFill rows_of(const HfWeight* w, int64_t row_len);
// `parts` stacked one after the other, each contributing `rows_per_part` rows of `row_len`.
RowFill stacked_rows(std::vector<const HfWeight*> parts, int64_t rows_per_part, int64_t row_len);
// Row r of the result is row source_row(r) of `w` (rows of `row_len` elements).
RowFill remapped_rows(const HfWeight* w, int64_t row_len,
                      std::function<int64_t(int64_t)> source_row);
// `inner` followed by `fn` applied to every element.
RowFill transformed(RowFill inner, int64_t row_len, float (*fn)(float));

// Norm weights stored zero-centred in HF checkpoints: GGUF holds 1 + w.
float plus_one(float w);
// DeltaNet A: GGUF's ssm_a holds -exp(A_log).
float neg_exp(float a_log);

// Plans every tensor of a qwen3next GGUF from the checkpoint (missing weights are recorded in
// `weights` and leave a plan that must not be run).
std::vector<PlannedTensor> plan_qwen3_next(const Qwen3NextConfig& config, bool tie_embeddings,
                                           DeltaNetLayout layout, HfWeights& weights);

// Plans every tensor of a qwen3moe GGUF from the checkpoint.
std::vector<PlannedTensor> plan_qwen3_moe(const Qwen3MoeConfig& config, HfWeights& weights);

// The routed experts of one layer (`prefix` = "model.layers.N.mlp.experts."), per-expert or fused
// (transformers v5), appended to `out` as `<gguf_prefix>ffn_{gate,up,down}_exps.weight`.
void plan_experts(const std::string& prefix, int64_t n_experts, int64_t hidden, int64_t ffn,
                  const std::string& gguf_prefix, HfWeights& weights,
                  std::vector<PlannedTensor>& out);

}  // namespace moerun
