// Converting tiny Qwen3-MoE checkpoints: llama.cpp's qwen3moe names, plain norms (no +1), stacked
// experts, tied embeddings without an output tensor.
#include <gtest/gtest.h>

#include <map>

#include "convert_test_util.h"
#include "hf_checkpoint_builder.h"
#include "model/qwen3_moe_config.h"

namespace moerun {
namespace {

using test::HfCheckpoint;
using test::TinyMoeShape;
using Values = std::vector<float>;

void check_moe(const std::string& name, const TinyMoeShape& s, TypeMix mix) {
  HfCheckpoint c = test::tiny_qwen3_moe(s);
  const std::string dir = test::convert_temp(name);
  c.write(dir);
  std::unique_ptr<GgufFile> f = test::convert_and_open(dir, mix);
  EXPECT_EQ(f->get_string("general.architecture"), "qwen3moe");
  const Qwen3MoeConfig cfg = read_qwen3_moe_config(*f);
  EXPECT_EQ(cfg.n_layers, s.layers);
  EXPECT_EQ(cfg.hidden, s.hidden);
  EXPECT_EQ(cfg.vocab, s.vocab);
  EXPECT_EQ(cfg.n_heads, s.heads);
  EXPECT_EQ(cfg.n_kv_heads, s.kv_heads);
  EXPECT_EQ(cfg.head_dim, s.head_dim);
  EXPECT_EQ(cfg.n_experts, s.experts);
  EXPECT_EQ(cfg.n_experts_used, s.top_k);
  EXPECT_EQ(cfg.expert_ffn, s.ffn);
  EXPECT_EQ(cfg.context_length, 4096);
  EXPECT_EQ(cfg.rope_theta, 1e6f);
  EXPECT_EQ(cfg.tied_embeddings, s.tied);

  std::map<std::string, Values> e;
  e["token_embd.weight"] = c.at("model.embed_tokens.weight");
  e["output_norm.weight"] = c.at("model.norm.weight");  // plain RMSNorm: no +1
  if (!s.tied) e["output.weight"] = c.at("lm_head.weight");
  for (int64_t i = 0; i < s.layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    const std::string g = "blk." + std::to_string(i) + ".";
    e[g + "attn_norm.weight"] = c.at(p + "input_layernorm.weight");
    e[g + "ffn_norm.weight"] = c.at(p + "post_attention_layernorm.weight");
    e[g + "attn_q.weight"] = c.at(p + "self_attn.q_proj.weight");
    e[g + "attn_k.weight"] = c.at(p + "self_attn.k_proj.weight");
    e[g + "attn_v.weight"] = c.at(p + "self_attn.v_proj.weight");
    e[g + "attn_output.weight"] = c.at(p + "self_attn.o_proj.weight");
    e[g + "attn_q_norm.weight"] = c.at(p + "self_attn.q_norm.weight");
    e[g + "attn_k_norm.weight"] = c.at(p + "self_attn.k_norm.weight");
    e[g + "ffn_gate_inp.weight"] = c.at(p + "mlp.gate.weight");
    for (const char* proj : {"gate", "up", "down"}) {
      Values stacked;
      for (int64_t x = 0; x < s.experts; ++x) {
        const Values& v =
            c.at(p + "mlp.experts." + std::to_string(x) + "." + proj + "_proj.weight");
        stacked.insert(stacked.end(), v.begin(), v.end());
      }
      e[g + "ffn_" + proj + "_exps.weight"] = stacked;
    }
  }
  EXPECT_EQ(f->tensors().size(), e.size());
  for (const auto& [tensor, values] : e) {
    ASSERT_NE(f->find_tensor(tensor), nullptr) << tensor;
    test::expect_tensor_values(*f, tensor, values);
  }
  const GgufTensorInfo& exps = f->tensor("blk.1.ffn_down_exps.weight");
  EXPECT_EQ(exps.view.n_dims, 3);
  EXPECT_EQ(exps.view.ne[0], s.ffn);
  EXPECT_EQ(exps.view.ne[1], s.hidden);
  EXPECT_EQ(exps.view.ne[2], s.experts);
  EXPECT_EQ(f->tensor("blk.0.ffn_gate_inp.weight").view.type, DType::F32);  // routers stay F32
  std::filesystem::remove_all(dir);
  std::filesystem::remove(dir + ".gguf");
}

TEST(ConvertQwen3Moe, F32) {
  check_moe("moe_f32", TinyMoeShape{}, TypeMix::f32);
}

TEST(ConvertQwen3Moe, TiedEmbeddingsWriteNoOutputTensor) {
  TinyMoeShape s;
  s.tied = true;
  check_moe("moe_tied", s, TypeMix::q8_0);
}

}  // namespace
}  // namespace moerun
