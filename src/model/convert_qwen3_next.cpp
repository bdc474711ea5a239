// The qwen3next plan: llama.cpp's tensor names and transformations for a Qwen3-Next checkpoint.
#include <map>

#include <fmt/format.h>

#include "core/error.h"
#include "model/convert_plan.h"

namespace moerun {
namespace {

// Rows of the DeltaNet input projection in_proj_qkvz, grouped per key head g as
// q_g (k_dim) | k_g (k_dim) | v of its `ratio` value heads (ratio * v_dim) | z of them.
struct QkvzLayout {
  int64_t k_heads, k_dim, v_dim, ratio;

  int64_t group_rows() const { return 2 * k_dim + 2 * ratio * v_dim; }
  // Source row of row r of attn_qkv = [q of all key heads | k of all | v of all value heads].
  int64_t qkv_row(int64_t r) const {
    const int64_t key_width = k_heads * k_dim;
    if (r < key_width) return (r / k_dim) * group_rows() + r % k_dim;  // q
    r -= key_width;
    if (r < key_width) return (r / k_dim) * group_rows() + k_dim + r % k_dim;  // k
    r -= key_width;
    const int64_t v_group = ratio * v_dim;  // v
    return (r / v_group) * group_rows() + 2 * k_dim + r % v_group;
  }
  // Source row of row r of attn_gate = z of all value heads.
  int64_t gate_row(int64_t r) const {
    const int64_t v_group = ratio * v_dim;
    return (r / v_group) * group_rows() + 2 * k_dim + v_group + r % v_group;
  }
};

}  // namespace

std::vector<PlannedTensor> plan_qwen3_next(const Qwen3NextConfig& c, bool tie_embeddings,
                                           DeltaNetLayout layout, HfWeights& w) {
  std::map<std::string, RowFill> fills;
  const int64_t h = c.hidden;
  auto norm = [&](const std::string& gguf, const std::string& hf, int64_t n) {
    fills[gguf] = transformed(rows_of(w.require(hf, {n}), n), n, plus_one);
  };
  auto matrix = [&](const std::string& gguf, const std::string& hf, int64_t out, int64_t in) {
    fills[gguf] = rows_of(w.require(hf, {out, in}), in);
  };

  matrix("token_embd.weight", "model.embed_tokens.weight", c.vocab, h);
  norm("output_norm.weight", "model.norm.weight", h);
  matrix("output.weight", tie_embeddings ? "model.embed_tokens.weight" : "lm_head.weight", c.vocab,
         h);
  std::vector<PlannedTensor> experts;
  for (int64_t i = 0; i < c.n_layers; ++i) {
    const std::string p = fmt::format("model.layers.{}.", i);
    const std::string g = fmt::format("blk.{}.", i);
    norm(g + "attn_norm.weight", p + "input_layernorm.weight", h);
    norm(g + "post_attention_norm.weight", p + "post_attention_layernorm.weight", h);
    if (c.is_attention_layer(i)) {
      const std::string a = p + "self_attn.";
      const int64_t q_width = c.n_heads * c.head_dim;
      const int64_t kv_width = c.n_kv_heads * c.head_dim;
      matrix(g + "attn_q.weight", a + "q_proj.weight", 2 * q_width, h);  // query/gate interleaved
      matrix(g + "attn_k.weight", a + "k_proj.weight", kv_width, h);
      matrix(g + "attn_v.weight", a + "v_proj.weight", kv_width, h);
      matrix(g + "attn_output.weight", a + "o_proj.weight", h, q_width);
      norm(g + "attn_q_norm.weight", a + "q_norm.weight", c.head_dim);
      norm(g + "attn_k_norm.weight", a + "k_norm.weight", c.head_dim);
    } else {
      const std::string la = p + "linear_attn.";
      const QkvzLayout qkvz{c.linear_k_heads, c.linear_k_dim, c.linear_v_dim,
                            c.linear_v_heads / c.linear_k_heads};
      const int64_t kw = c.linear_key_width();
      const int64_t vw = c.linear_value_width();
      const int64_t channels = c.conv_channels();
      const int64_t v_heads = c.linear_v_heads;
      const HfWeight* in_proj = w.require(la + "in_proj_qkvz.weight", {2 * kw + 2 * vw, h});
      if (layout == DeltaNetLayout::ssm_in) {
        fills[g + "ssm_in.weight"] = rows_of(in_proj, h);
      } else {
        fills[g + "attn_qkv.weight"] =
            remapped_rows(in_proj, h, [qkvz](int64_t r) { return qkvz.qkv_row(r); });
        fills[g + "attn_gate.weight"] =
            remapped_rows(in_proj, h, [qkvz](int64_t r) { return qkvz.gate_row(r); });
      }
      // conv1d [channels, 1, kernel] squeezed to GGUF {kernel, channels}; [channels, kernel] too.
      const std::string conv = la + "conv1d.weight";
      const SafetensorsTensor* conv_t = w.dir().find(conv);
      const bool squeezed = conv_t && conv_t->shape.size() == 2;
      fills[g + "ssm_conv1d.weight"] =
          rows_of(w.require(conv, squeezed ? std::vector<int64_t>{channels, c.conv_kernel}
                                           : std::vector<int64_t>{channels, 1, c.conv_kernel}),
                  c.conv_kernel);
      fills[g + "ssm_dt.bias"] = rows_of(w.require(la + "dt_bias", {v_heads}), v_heads);
      fills[g + "ssm_a"] =
          transformed(rows_of(w.require(la + "A_log", {v_heads}), v_heads), v_heads, neg_exp);
      matrix(g + "ssm_ba.weight", la + "in_proj_ba.weight", 2 * v_heads, h);
      fills[g + "ssm_norm.weight"] =  // the gated norm is not zero-centred: no +1
          rows_of(w.require(la + "norm.weight", {c.linear_v_dim}), c.linear_v_dim);
      matrix(g + "ssm_out.weight", la + "out_proj.weight", h, vw);
    }
    const std::string m = p + "mlp.";
    matrix(g + "ffn_gate_inp.weight", m + "gate.weight", c.n_experts, h);
    experts.clear();
    plan_experts(m + "experts.", c.n_experts, h, c.expert_ffn, g, w, experts);
    for (PlannedTensor& e : experts) fills[e.spec.name] = std::move(e.fill);
    matrix(g + "ffn_gate_inp_shexp.weight", m + "shared_expert_gate.weight", 1, h);
    matrix(g + "ffn_gate_shexp.weight", m + "shared_expert.gate_proj.weight", c.shared_ffn, h);
    matrix(g + "ffn_up_shexp.weight", m + "shared_expert.up_proj.weight", c.shared_ffn, h);
    matrix(g + "ffn_down_shexp.weight", m + "shared_expert.down_proj.weight", h, c.shared_ffn);
  }

  std::vector<PlannedTensor> plan;
  for (TensorSpec& spec : qwen3_next_tensor_specs(c, layout)) {
    auto it = fills.find(spec.name);
    if (it == fills.end()) fail("convert: no recipe for qwen3next tensor '{}'", spec.name);
    plan.push_back({std::move(spec), std::move(it->second)});
    fills.erase(it);
  }
  if (!fills.empty())
    fail("convert: recipe for '{}' has no qwen3next tensor", fills.begin()->first);
  return plan;
}

}  // namespace moerun
