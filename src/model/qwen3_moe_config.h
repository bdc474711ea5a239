// Hyperparameters of a Qwen3-MoE model (Qwen3-30B-A3B, Qwen3-235B-A22B), as `qwen3moe.*` keys.
#pragma once

#include <cstdint>
#include <string>

namespace moerun {

class GgufFile;
class GgufWriter;

// The shape of a Qwen3-MoE model (spec/qwen3-next.md, section 7).
struct Qwen3MoeConfig {
  int64_t n_layers = 48;
  int64_t hidden = 2048;
  int64_t vocab = 151936;
  int64_t context_length = 40960;
  int64_t n_heads = 32;
  int64_t n_kv_heads = 4;
  int64_t head_dim = 128;
  float rope_theta = 1e6f;
  float rms_eps = 1e-6f;
  int64_t n_experts = 128;
  int64_t n_experts_used = 8;
  int64_t expert_ffn = 768;
  int64_t dense_ffn = 6144;      // feed_forward_length (unused: every layer is MoE)
  bool tied_embeddings = false;  // no `output` tensor: token_embd is the output matrix

  // Throws Error naming the field when the shape is inconsistent.
  void validate(const std::string& origin) const;
};

// Writes `general.architecture` = qwen3moe and every `qwen3moe.*` hyperparameter key.
void write_qwen3_moe_config(GgufWriter& writer, const Qwen3MoeConfig& config);

// Reads and validates the hyperparameters of a qwen3moe GGUF; throws Error naming the key.
Qwen3MoeConfig read_qwen3_moe_config(const GgufFile& file);

}  // namespace moerun
