// Test helper: tiny Hugging Face checkpoint directories (config.json + safetensors) for Qwen3-Next
// and Qwen3-MoE, with distinct deterministic values in every tensor, written per expert or with
// transformers-v5 fused experts, in one file or two shards, optionally bf16 or NF4.
#pragma once

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../io/safetensors_test_writer.h"
#include "core/half.h"

namespace moerun::test {

// One tensor of the checkpoint: torch shape and f32 values (row-major).
struct HfTensor {
  std::vector<int64_t> shape;
  std::vector<float> values;
};

// A checkpoint being built: config and tensors by HF name.
struct HfCheckpoint {
  nlohmann::json config;
  std::map<std::string, HfTensor> tensors;
  uint32_t next_seed = 1;

  // Adds a tensor of distinct pseudo-random values in about [-1, 1] (+ `bias`).
  void add(const std::string& name, std::vector<int64_t> shape, float bias = 0.0f) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    HfTensor t{std::move(shape), std::vector<float>(static_cast<size_t>(n))};
    uint32_t s = next_seed++ * 2654435761u;
    for (float& v : t.values) {
      s = s * 1664525u + 1013904223u;
      v = bias + static_cast<float>(static_cast<int32_t>(s >> 8) - (1 << 23)) /
                     static_cast<float>(1 << 23);
    }
    tensors[name] = std::move(t);
  }
  // The values of `name` (which must exist).
  const std::vector<float>& at(const std::string& name) const { return tensors.at(name).values; }

  // Rounds every tensor's values to bf16 in place (what a bf16 checkpoint holds).
  void round_to_bf16() {
    for (auto& [name, t] : tensors) {
      for (float& v : t.values) v = bf16_to_f32(f32_to_bf16(v));
    }
  }

  // Writes config.json and the tensors: `dtype` "F32", "BF16" or "F16"; `shards` 1 (model.
  // safetensors) or more (with model.safetensors.index.json); names in `nf4` are NF4-packed and
  // their values replaced by the exact dequantisation.
  void write(const std::string& dir, const std::string& dtype = "F32", int shards = 1,
             const std::set<std::string>& nf4 = {}) {
    namespace fs = std::filesystem;
    fs::remove_all(dir);
    fs::create_directories(dir);
    std::ofstream(dir + "/config.json") << config.dump(1);
    std::vector<std::string> names;
    for (const auto& [name, t] : tensors) names.push_back(name);
    const size_t per =
        (names.size() + static_cast<size_t>(shards) - 1) / static_cast<size_t>(shards);
    nlohmann::json weight_map = nlohmann::json::object();
    for (int s = 0; s < shards; ++s) {
      SafetensorsBuilder b;
      const std::string file = shards == 1 ? "model.safetensors"
                                           : "model-0000" + std::to_string(s + 1) + "-of-0000" +
                                                 std::to_string(shards) + ".safetensors";
      for (size_t i = static_cast<size_t>(s) * per;
           i < std::min(names.size(), (static_cast<size_t>(s) + 1) * per); ++i) {
        HfTensor& t = tensors[names[i]];
        if (nf4.count(names[i])) {
          const Nf4Packed p = nf4_pack(t.values, t.shape);
          p.add_to(b, names[i]);
          t.values = p.dequantized;
          for (const char* suffix : {"", ".absmax", ".nested_absmax", ".nested_quant_map",
                                     ".quant_map", ".quant_state.bitsandbytes__nf4"}) {
            weight_map[names[i] + suffix] = file;
          }
          continue;
        }
        if (dtype == "BF16") {
          b.add_bf16(names[i], t.shape, t.values);
          for (float& v : t.values) v = bf16_to_f32(f32_to_bf16(v));
        } else if (dtype == "F16") {
          b.add_f16(names[i], t.shape, t.values);
          for (float& v : t.values) v = fp16_to_f32(f32_to_fp16(v));
        } else {
          b.add_f32(names[i], t.shape, t.values);
        }
        weight_map[names[i]] = file;
      }
      b.write(dir + "/" + file);
    }
    if (shards > 1) {
      std::ofstream(dir + "/model.safetensors.index.json") << nlohmann::json{
          {"metadata", nlohmann::json::object()},
          {"weight_map", weight_map}}.dump(1);
    }
  }
};

// Shape of a tiny Qwen3-Next.
struct TinyNextShape {
  int64_t hidden = 64, layers = 4, interval = 2, vocab = 96;
  int64_t heads = 2, kv_heads = 1, head_dim = 32;
  int64_t k_heads = 2, v_heads = 4, k_dim = 16, v_dim = 8, conv = 4;
  int64_t experts = 4, top_k = 2, ffn = 32, shared = 48;
  bool fused_experts = false;
  bool v4_config = false;  // rope_theta/partial_rotary_factor at top level, no layer_types
};

// A tiny Qwen3-Next checkpoint (zero-centred norms near 0, an mtp tensor that must be ignored).
inline HfCheckpoint tiny_qwen3_next(const TinyNextShape& s) {
  HfCheckpoint c;
  nlohmann::json layer_types = nlohmann::json::array();
  for (int64_t i = 0; i < s.layers; ++i) {
    layer_types.push_back((i + 1) % s.interval == 0 ? "full_attention" : "linear_attention");
  }
  c.config = {{"architectures", {"Qwen3NextForCausalLM"}},
              {"model_type", "qwen3_next"},
              {"vocab_size", s.vocab},
              {"hidden_size", s.hidden},
              {"intermediate_size", 2 * s.hidden},
              {"num_hidden_layers", s.layers},
              {"num_attention_heads", s.heads},
              {"num_key_value_heads", s.kv_heads},
              {"head_dim", s.head_dim},
              {"max_position_embeddings", 2048},
              {"rms_norm_eps", 1e-6},
              {"tie_word_embeddings", false},
              {"linear_conv_kernel_dim", s.conv},
              {"linear_key_head_dim", s.k_dim},
              {"linear_value_head_dim", s.v_dim},
              {"linear_num_key_heads", s.k_heads},
              {"linear_num_value_heads", s.v_heads},
              {"moe_intermediate_size", s.ffn},
              {"shared_expert_intermediate_size", s.shared},
              {"num_experts", s.experts},
              {"num_experts_per_tok", s.top_k},
              {"norm_topk_prob", true},
              {"full_attention_interval", s.interval},
              {"decoder_sparse_step", 1},
              {"mlp_only_layers", nlohmann::json::array()},
              {"hidden_act", "silu"},
              {"dtype", "float32"}};
  if (s.v4_config) {
    c.config["rope_theta"] = 10000.0;
    c.config["partial_rotary_factor"] = 0.25;
  } else {
    c.config["rope_parameters"] = {
        {"rope_type", "default"}, {"rope_theta", 10000.0}, {"partial_rotary_factor", 0.25}};
    c.config["layer_types"] = layer_types;
  }
  const int64_t h = s.hidden;
  const int64_t kw = s.k_heads * s.k_dim, vw = s.v_heads * s.v_dim;
  c.add("model.embed_tokens.weight", {s.vocab, h});
  c.add("lm_head.weight", {s.vocab, h});
  c.add("model.norm.weight", {h}, 0.0f);
  c.add("mtp.fc.weight", {h, 2 * h});
  for (int64_t i = 0; i < s.layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    c.add(p + "input_layernorm.weight", {h});
    c.add(p + "post_attention_layernorm.weight", {h});
    if ((i + 1) % s.interval == 0) {
      c.add(p + "self_attn.q_proj.weight", {2 * s.heads * s.head_dim, h});
      c.add(p + "self_attn.k_proj.weight", {s.kv_heads * s.head_dim, h});
      c.add(p + "self_attn.v_proj.weight", {s.kv_heads * s.head_dim, h});
      c.add(p + "self_attn.o_proj.weight", {h, s.heads * s.head_dim});
      c.add(p + "self_attn.q_norm.weight", {s.head_dim});
      c.add(p + "self_attn.k_norm.weight", {s.head_dim});
    } else {
      c.add(p + "linear_attn.in_proj_qkvz.weight", {2 * kw + 2 * vw, h});
      c.add(p + "linear_attn.in_proj_ba.weight", {2 * s.v_heads, h});
      c.add(p + "linear_attn.conv1d.weight", {2 * kw + vw, 1, s.conv});
      c.add(p + "linear_attn.dt_bias", {s.v_heads});
      c.add(p + "linear_attn.A_log", {s.v_heads});
      c.add(p + "linear_attn.norm.weight", {s.v_dim}, 1.0f);
      c.add(p + "linear_attn.out_proj.weight", {h, vw});
    }
    c.add(p + "mlp.gate.weight", {s.experts, h});
    if (s.fused_experts) {
      c.add(p + "mlp.experts.gate_up_proj", {s.experts, 2 * s.ffn, h});
      c.add(p + "mlp.experts.down_proj", {s.experts, h, s.ffn});
    } else {
      for (int64_t e = 0; e < s.experts; ++e) {
        const std::string x = p + "mlp.experts." + std::to_string(e) + ".";
        c.add(x + "gate_proj.weight", {s.ffn, h});
        c.add(x + "up_proj.weight", {s.ffn, h});
        c.add(x + "down_proj.weight", {h, s.ffn});
      }
    }
    c.add(p + "mlp.shared_expert.gate_proj.weight", {s.shared, h});
    c.add(p + "mlp.shared_expert.up_proj.weight", {s.shared, h});
    c.add(p + "mlp.shared_expert.down_proj.weight", {h, s.shared});
    c.add(p + "mlp.shared_expert_gate.weight", {1, h});
  }
  return c;
}

// Shape of a tiny Qwen3-MoE.
struct TinyMoeShape {
  int64_t hidden = 64, layers = 2, vocab = 80, heads = 4, kv_heads = 2, head_dim = 16;
  int64_t experts = 4, top_k = 2, ffn = 32;
  bool tied = false;
};

// A tiny Qwen3-MoE checkpoint (plain norms near 1).
inline HfCheckpoint tiny_qwen3_moe(const TinyMoeShape& s) {
  HfCheckpoint c;
  c.config = {{"architectures", {"Qwen3MoeForCausalLM"}},
              {"model_type", "qwen3_moe"},
              {"vocab_size", s.vocab},
              {"hidden_size", s.hidden},
              {"intermediate_size", 2 * s.hidden},
              {"num_hidden_layers", s.layers},
              {"num_attention_heads", s.heads},
              {"num_key_value_heads", s.kv_heads},
              {"head_dim", s.head_dim},
              {"max_position_embeddings", 4096},
              {"rms_norm_eps", 1e-6},
              {"rope_theta", 1000000.0},
              {"tie_word_embeddings", s.tied},
              {"moe_intermediate_size", s.ffn},
              {"num_experts", s.experts},
              {"num_experts_per_tok", s.top_k},
              {"norm_topk_prob", true},
              {"decoder_sparse_step", 1},
              {"mlp_only_layers", nlohmann::json::array()},
              {"use_sliding_window", false}};
  const int64_t h = s.hidden;
  c.add("model.embed_tokens.weight", {s.vocab, h});
  if (!s.tied) c.add("lm_head.weight", {s.vocab, h});
  c.add("model.norm.weight", {h}, 1.0f);
  for (int64_t i = 0; i < s.layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    c.add(p + "input_layernorm.weight", {h}, 1.0f);
    c.add(p + "post_attention_layernorm.weight", {h}, 1.0f);
    c.add(p + "self_attn.q_proj.weight", {s.heads * s.head_dim, h});
    c.add(p + "self_attn.k_proj.weight", {s.kv_heads * s.head_dim, h});
    c.add(p + "self_attn.v_proj.weight", {s.kv_heads * s.head_dim, h});
    c.add(p + "self_attn.o_proj.weight", {h, s.heads * s.head_dim});
    c.add(p + "self_attn.q_norm.weight", {s.head_dim}, 1.0f);
    c.add(p + "self_attn.k_norm.weight", {s.head_dim}, 1.0f);
    c.add(p + "mlp.gate.weight", {s.experts, h});
    for (int64_t e = 0; e < s.experts; ++e) {
      const std::string x = p + "mlp.experts." + std::to_string(e) + ".";
      c.add(x + "gate_proj.weight", {s.ffn, h});
      c.add(x + "up_proj.weight", {s.ffn, h});
      c.add(x + "down_proj.weight", {h, s.ffn});
    }
  }
  return c;
}

}  // namespace moerun::test
