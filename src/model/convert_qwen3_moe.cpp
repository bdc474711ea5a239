// The qwen3moe plan: llama.cpp's tensor names for a Qwen3-MoE checkpoint (plain norms, no +1).
#include <fmt/format.h>

#include "model/convert_plan.h"

namespace moerun {

std::vector<PlannedTensor> plan_qwen3_moe(const Qwen3MoeConfig& c, HfWeights& w) {
  std::vector<PlannedTensor> plan;
  const int64_t h = c.hidden;
  auto vector = [&](const std::string& gguf, const std::string& hf, int64_t n) {
    plan.push_back({{gguf, {n}, TensorRole::norm}, rows_of(w.require(hf, {n}), n)});
  };
  auto matrix = [&](const std::string& gguf, const std::string& hf, int64_t out, int64_t in,
                    TensorRole role) {
    plan.push_back({{gguf, {in, out}, role}, rows_of(w.require(hf, {out, in}), in)});
  };

  matrix("token_embd.weight", "model.embed_tokens.weight", c.vocab, h, TensorRole::embedding);
  for (int64_t i = 0; i < c.n_layers; ++i) {
    const std::string p = fmt::format("model.layers.{}.", i);
    const std::string g = fmt::format("blk.{}.", i);
    const std::string a = p + "self_attn.";
    const int64_t q_width = c.n_heads * c.head_dim;
    const int64_t kv_width = c.n_kv_heads * c.head_dim;
    vector(g + "attn_norm.weight", p + "input_layernorm.weight", h);
    matrix(g + "attn_q.weight", a + "q_proj.weight", q_width, h, TensorRole::projection);
    matrix(g + "attn_k.weight", a + "k_proj.weight", kv_width, h, TensorRole::projection);
    matrix(g + "attn_v.weight", a + "v_proj.weight", kv_width, h, TensorRole::value_proj);
    matrix(g + "attn_output.weight", a + "o_proj.weight", h, q_width, TensorRole::out_projection);
    vector(g + "attn_q_norm.weight", a + "q_norm.weight", c.head_dim);
    vector(g + "attn_k_norm.weight", a + "k_norm.weight", c.head_dim);
    vector(g + "ffn_norm.weight", p + "post_attention_layernorm.weight", h);
    matrix(g + "ffn_gate_inp.weight", p + "mlp.gate.weight", c.n_experts, h, TensorRole::router);
    plan_experts(p + "mlp.experts.", c.n_experts, h, c.expert_ffn, g, w, plan);
  }
  vector("output_norm.weight", "model.norm.weight", h);
  if (!c.tied_embeddings) {
    matrix("output.weight", "lm_head.weight", c.vocab, h, TensorRole::output);
  }
  return plan;
}

}  // namespace moerun
