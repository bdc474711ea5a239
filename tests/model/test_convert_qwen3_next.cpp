// Converting tiny Qwen3-Next checkpoints: every tensor present with the right shape and type, and
// every value where the spec puts it (+1 norms, -exp(A_log), regrouped qkv, stacked experts).
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "convert_test_util.h"
#include "hf_checkpoint_builder.h"
#include "model/qwen3_next_config.h"
#include "model/qwen3_next_tensors.h"

namespace moerun {
namespace {

using test::HfCheckpoint;
using test::TinyNextShape;

using Values = std::vector<float>;

Values plus_one(Values v) {
  for (float& x : v) x += 1.0f;
  return v;
}

// Rows [first, first + n) of a row-major matrix with `cols` columns.
Values rows(const Values& m, int64_t cols, int64_t first, int64_t n) {
  return Values(m.begin() + first * cols, m.begin() + (first + n) * cols);
}

void append(Values& out, const Values& more) {
  out.insert(out.end(), more.begin(), more.end());
}

// What every GGUF tensor must hold, derived from the checkpoint as the spec describes it.
std::map<std::string, Values> expected_tensors(const HfCheckpoint& c, const TinyNextShape& s,
                                               DeltaNetLayout layout) {
  std::map<std::string, Values> e;
  const int64_t h = s.hidden;
  e["token_embd.weight"] = c.at("model.embed_tokens.weight");
  e["output.weight"] = c.at("lm_head.weight");
  e["output_norm.weight"] = plus_one(c.at("model.norm.weight"));
  for (int64_t i = 0; i < s.layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    const std::string g = "blk." + std::to_string(i) + ".";
    e[g + "attn_norm.weight"] = plus_one(c.at(p + "input_layernorm.weight"));
    e[g + "post_attention_norm.weight"] = plus_one(c.at(p + "post_attention_layernorm.weight"));
    if ((i + 1) % s.interval == 0) {
      e[g + "attn_q.weight"] = c.at(p + "self_attn.q_proj.weight");
      e[g + "attn_k.weight"] = c.at(p + "self_attn.k_proj.weight");
      e[g + "attn_v.weight"] = c.at(p + "self_attn.v_proj.weight");
      e[g + "attn_output.weight"] = c.at(p + "self_attn.o_proj.weight");
      e[g + "attn_q_norm.weight"] = plus_one(c.at(p + "self_attn.q_norm.weight"));
      e[g + "attn_k_norm.weight"] = plus_one(c.at(p + "self_attn.k_norm.weight"));
    } else {
      const Values& qkvz = c.at(p + "linear_attn.in_proj_qkvz.weight");
      if (layout == DeltaNetLayout::ssm_in) {
        e[g + "ssm_in.weight"] = qkvz;
      } else {
        // Per key head g: q_g | k_g | v of its value heads | z of them.
        const int64_t ratio = s.v_heads / s.k_heads;
        const int64_t group = 2 * s.k_dim + 2 * ratio * s.v_dim;
        Values q, k, v, z;
        for (int64_t kh = 0; kh < s.k_heads; ++kh) {
          append(q, rows(qkvz, h, kh * group, s.k_dim));
          append(k, rows(qkvz, h, kh * group + s.k_dim, s.k_dim));
          append(v, rows(qkvz, h, kh * group + 2 * s.k_dim, ratio * s.v_dim));
          append(z, rows(qkvz, h, kh * group + 2 * s.k_dim + ratio * s.v_dim, ratio * s.v_dim));
        }
        Values qkv = q;
        append(qkv, k);
        append(qkv, v);
        e[g + "attn_qkv.weight"] = qkv;
        e[g + "attn_gate.weight"] = z;
      }
      e[g + "ssm_conv1d.weight"] = c.at(p + "linear_attn.conv1d.weight");
      e[g + "ssm_dt.bias"] = c.at(p + "linear_attn.dt_bias");
      Values a = c.at(p + "linear_attn.A_log");
      for (float& x : a) x = -std::exp(x);
      e[g + "ssm_a"] = a;
      e[g + "ssm_ba.weight"] = c.at(p + "linear_attn.in_proj_ba.weight");
      e[g + "ssm_norm.weight"] = c.at(p + "linear_attn.norm.weight");  // no +1
      e[g + "ssm_out.weight"] = c.at(p + "linear_attn.out_proj.weight");
    }
    e[g + "ffn_gate_inp.weight"] = c.at(p + "mlp.gate.weight");
    Values gate, up, down;
    for (int64_t x = 0; x < s.experts; ++x) {
      if (s.fused_experts) {
        const Values& gu = c.at(p + "mlp.experts.gate_up_proj");
        append(gate, rows(gu, h, x * 2 * s.ffn, s.ffn));
        append(up, rows(gu, h, x * 2 * s.ffn + s.ffn, s.ffn));
        append(down, rows(c.at(p + "mlp.experts.down_proj"), s.ffn, x * h, h));
      } else {
        const std::string ex = p + "mlp.experts." + std::to_string(x) + ".";
        append(gate, c.at(ex + "gate_proj.weight"));
        append(up, c.at(ex + "up_proj.weight"));
        append(down, c.at(ex + "down_proj.weight"));
      }
    }
    e[g + "ffn_gate_exps.weight"] = gate;
    e[g + "ffn_up_exps.weight"] = up;
    e[g + "ffn_down_exps.weight"] = down;
    e[g + "ffn_gate_inp_shexp.weight"] = c.at(p + "mlp.shared_expert_gate.weight");
    e[g + "ffn_gate_shexp.weight"] = c.at(p + "mlp.shared_expert.gate_proj.weight");
    e[g + "ffn_up_shexp.weight"] = c.at(p + "mlp.shared_expert.up_proj.weight");
    e[g + "ffn_down_shexp.weight"] = c.at(p + "mlp.shared_expert.down_proj.weight");
  }
  return e;
}

Qwen3NextConfig config_of(const TinyNextShape& s) {
  Qwen3NextConfig c;
  c.n_layers = s.layers;
  c.hidden = s.hidden;
  c.vocab = s.vocab;
  c.context_length = 2048;
  c.full_attention_interval = s.interval;
  c.n_heads = s.heads;
  c.n_kv_heads = s.kv_heads;
  c.head_dim = s.head_dim;
  c.rope_dims = s.head_dim / 4;
  c.rope_theta = 10000.0f;
  c.linear_k_heads = s.k_heads;
  c.linear_v_heads = s.v_heads;
  c.linear_k_dim = s.k_dim;
  c.linear_v_dim = s.v_dim;
  c.conv_kernel = s.conv;
  c.n_experts = s.experts;
  c.n_experts_used = s.top_k;
  c.expert_ffn = s.ffn;
  c.shared_ffn = s.shared;
  c.dense_ffn = 2 * s.hidden;
  return c;
}

// Converts a checkpoint built from `s` and checks structure, metadata and every value.
void convert_and_check(const std::string& name, const TinyNextShape& s, TypeMix mix,
                       DeltaNetLayout layout = DeltaNetLayout::qkv_gate,
                       const std::string& dtype = "F32", int shards = 1,
                       const std::set<std::string>& nf4 = {}) {
  HfCheckpoint c = test::tiny_qwen3_next(s);
  const std::string dir = test::convert_temp(name);
  c.write(dir, dtype, shards, nf4);  // leaves c holding the values as stored
  ConvertOptions options;
  options.layout = layout;
  std::unique_ptr<GgufFile> f = test::convert_and_open(dir, mix, options);

  EXPECT_EQ(f->get_string("general.architecture"), "qwen3next");
  EXPECT_EQ(f->get_string("general.name"), std::filesystem::path(dir).filename().string());
  const Qwen3NextConfig want = config_of(s);
  const Qwen3NextConfig got = read_qwen3_next_config(*f);
  EXPECT_EQ(got.n_layers, want.n_layers);
  EXPECT_EQ(got.hidden, want.hidden);
  EXPECT_EQ(got.vocab, want.vocab);
  EXPECT_EQ(got.context_length, want.context_length);
  EXPECT_EQ(got.full_attention_interval, want.full_attention_interval);
  EXPECT_EQ(got.head_dim, want.head_dim);
  EXPECT_EQ(got.rope_dims, want.rope_dims);
  EXPECT_EQ(got.rope_theta, want.rope_theta);
  EXPECT_EQ(got.linear_v_dim, want.linear_v_dim);
  EXPECT_EQ(got.linear_v_heads, want.linear_v_heads);
  EXPECT_EQ(got.shared_ffn, want.shared_ffn);
  EXPECT_EQ(f->find("tokenizer.ggml.tokens"), nullptr);  // no tokenizer.json in the directory

  const std::vector<TensorSpec> specs = qwen3_next_tensor_specs(want, layout);
  EXPECT_EQ(f->tensors().size(), specs.size());
  const std::map<std::string, Values> expected = expected_tensors(c, s, layout);
  for (const TensorSpec& spec : specs) {
    SCOPED_TRACE(spec.name);
    const GgufTensorInfo* t = f->find_tensor(spec.name);
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->view.n_dims, static_cast<int>(spec.ne.size()));
    for (size_t d = 0; d < spec.ne.size(); ++d) EXPECT_EQ(t->view.ne[d], spec.ne[d]);
    EXPECT_EQ(t->view.type, tensor_type_in_mix(mix, spec));
    ASSERT_TRUE(expected.count(spec.name));
    test::expect_tensor_values(*f, spec.name, expected.at(spec.name));
  }
  std::filesystem::remove_all(dir);
  std::filesystem::remove(dir + ".gguf");
}

TEST(ConvertQwen3Next, PerExpertF32) {
  convert_and_check("next_f32", TinyNextShape{}, TypeMix::f32);
}

TEST(ConvertQwen3Next, FusedExpertsInTwoBf16Shards) {
  TinyNextShape s;
  s.fused_experts = true;
  s.v_heads = 6;  // three value heads per key head
  s.interval = 4;
  convert_and_check("next_fused", s, TypeMix::f32, DeltaNetLayout::qkv_gate, "BF16", 2);
}

TEST(ConvertQwen3Next, OlderSsmInLayoutAndV4Config) {
  TinyNextShape s;
  s.v4_config = true;
  convert_and_check("next_ssm_in", s, TypeMix::f32, DeltaNetLayout::ssm_in, "F16");
}

TEST(ConvertQwen3Next, Bf16AndQ8_0Mixes) {
  convert_and_check("next_bf16", TinyNextShape{}, TypeMix::bf16);
  convert_and_check("next_q8", TinyNextShape{}, TypeMix::q8_0);
}

TEST(ConvertQwen3Next, Q4KMMixOnKQuantSizes) {
  TinyNextShape s;
  s.hidden = 256;
  s.ffn = 256;
  s.shared = 256;
  s.head_dim = 64;
  s.heads = 4;
  s.k_dim = 32;
  s.v_dim = 32;
  convert_and_check("next_q4km", s, TypeMix::q4_k_m);
}

TEST(ConvertQwen3Next, Nf4WeightsAreDequantisedExactly) {
  TinyNextShape s;
  std::set<std::string> nf4;
  for (const auto& [name, t] : test::tiny_qwen3_next(s).tensors) {
    const bool linear = name.find("proj") != std::string::npos && t.shape.size() == 2;
    if (linear) nf4.insert(name);
  }
  ASSERT_GT(nf4.size(), 20u);
  convert_and_check("next_nf4", s, TypeMix::f32, DeltaNetLayout::qkv_gate, "F32", 1, nf4);
}

}  // namespace
}  // namespace moerun
