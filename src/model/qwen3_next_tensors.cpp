#include "model/qwen3_next_tensors.h"

#include <fmt/format.h>

namespace moerun {

std::vector<TensorSpec> qwen3_next_tensor_specs(const Qwen3NextConfig& c, DeltaNetLayout layout) {
  std::vector<TensorSpec> t;
  const int64_t h = c.hidden;
  t.push_back({"token_embd.weight", {h, c.vocab}, TensorRole::embedding});
  for (int64_t i = 0; i < c.n_layers; ++i) {
    auto name = [i](const char* suffix) { return fmt::format("blk.{}.{}", i, suffix); };
    t.push_back({name("attn_norm.weight"), {h}, TensorRole::norm});
    if (c.is_attention_layer(i)) {
      const int64_t q_width = c.n_heads * c.head_dim;
      const int64_t kv_width = c.n_kv_heads * c.head_dim;
      t.push_back({name("attn_q.weight"), {h, 2 * q_width}, TensorRole::projection});
      t.push_back({name("attn_k.weight"), {h, kv_width}, TensorRole::projection});
      t.push_back({name("attn_v.weight"), {h, kv_width}, TensorRole::value_proj});
      t.push_back({name("attn_output.weight"), {q_width, h}, TensorRole::out_projection});
      t.push_back({name("attn_q_norm.weight"), {c.head_dim}, TensorRole::norm});
      t.push_back({name("attn_k_norm.weight"), {c.head_dim}, TensorRole::norm});
    } else {
      const int64_t kw = c.linear_key_width();
      const int64_t vw = c.linear_value_width();
      if (layout == DeltaNetLayout::ssm_in) {
        t.push_back({name("ssm_in.weight"), {h, 2 * kw + 2 * vw}, TensorRole::projection});
      } else {
        t.push_back({name("attn_qkv.weight"), {h, 2 * kw + vw}, TensorRole::projection});
        t.push_back({name("attn_gate.weight"), {h, vw}, TensorRole::projection});
      }
      t.push_back(
          {name("ssm_conv1d.weight"), {c.conv_kernel, c.conv_channels()}, TensorRole::conv});
      t.push_back({name("ssm_dt.bias"), {c.linear_v_heads}, TensorRole::ssm_dt_bias});
      t.push_back({name("ssm_a"), {c.linear_v_heads}, TensorRole::ssm_a});
      t.push_back({name("ssm_ba.weight"), {h, 2 * c.linear_v_heads}, TensorRole::ssm_ba});
      t.push_back({name("ssm_norm.weight"), {c.linear_v_dim}, TensorRole::norm});
      t.push_back({name("ssm_out.weight"), {vw, h}, TensorRole::out_projection});
    }
    t.push_back({name("post_attention_norm.weight"), {h}, TensorRole::norm});
    t.push_back({name("ffn_gate_inp.weight"), {h, c.n_experts}, TensorRole::router});
    t.push_back(
        {name("ffn_gate_exps.weight"), {h, c.expert_ffn, c.n_experts}, TensorRole::expert_in});
    t.push_back(
        {name("ffn_up_exps.weight"), {h, c.expert_ffn, c.n_experts}, TensorRole::expert_in});
    t.push_back(
        {name("ffn_down_exps.weight"), {c.expert_ffn, h, c.n_experts}, TensorRole::expert_down});
    t.push_back({name("ffn_gate_inp_shexp.weight"), {h}, TensorRole::shared_gate});
    t.push_back({name("ffn_gate_shexp.weight"), {h, c.shared_ffn}, TensorRole::shared_in});
    t.push_back({name("ffn_up_shexp.weight"), {h, c.shared_ffn}, TensorRole::shared_in});
    t.push_back({name("ffn_down_shexp.weight"), {c.shared_ffn, h}, TensorRole::shared_down});
  }
  t.push_back({"output_norm.weight", {h}, TensorRole::norm});
  t.push_back({"output.weight", {h, c.vocab}, TensorRole::output});
  return t;
}

}  // namespace moerun
