// Hyperparameters of a Qwen3-Next model, as GGUF metadata (`qwen3next.*` keys) carries them.
#pragma once

#include <cstdint>
#include <string>

namespace moerun {

class GgufFile;
class GgufWriter;

// The shape of a Qwen3-Next model (spec/qwen3-next.md, sections 1 and 4).
struct Qwen3NextConfig {
  int64_t n_layers = 48;
  int64_t hidden = 2048;
  int64_t vocab = 151936;
  int64_t context_length = 262144;
  int64_t full_attention_interval = 4;  // layer i is attention when (i + 1) % interval == 0
  // Gated attention.
  int64_t n_heads = 16;
  int64_t n_kv_heads = 2;
  int64_t head_dim = 256;
  int64_t rope_dims = 64;
  float rope_theta = 1e7f;
  float rms_eps = 1e-6f;
  // Gated DeltaNet.
  int64_t linear_k_heads = 16;  // ssm.group_count
  int64_t linear_v_heads = 32;  // ssm.time_step_rank
  int64_t linear_k_dim = 128;   // ssm.state_size
  int64_t linear_v_dim = 128;   // ssm.inner_size / linear_v_heads
  int64_t conv_kernel = 4;
  // Mixture of experts.
  int64_t n_experts = 512;
  int64_t n_experts_used = 10;
  int64_t expert_ffn = 512;
  int64_t shared_ffn = 512;
  int64_t dense_ffn = 5120;  // feed_forward_length (unused: every layer is MoE)

  // True when layer `i` is full attention, false when it is Gated DeltaNet.
  bool is_attention_layer(int64_t i) const { return (i + 1) % full_attention_interval == 0; }
  // Width of the DeltaNet key projection (all key heads).
  int64_t linear_key_width() const { return linear_k_heads * linear_k_dim; }
  // Width of the DeltaNet value projection (all value heads).
  int64_t linear_value_width() const { return linear_v_heads * linear_v_dim; }
  // Number of DeltaNet conv channels (q, k and v together).
  int64_t conv_channels() const { return 2 * linear_key_width() + linear_value_width(); }

  // Throws Error naming the field when the shape is inconsistent (e.g. heads not dividing).
  void validate(const std::string& origin) const;
};

// Writes `general.architecture` = qwen3next and every `qwen3next.*` hyperparameter key.
void write_qwen3_next_config(GgufWriter& writer, const Qwen3NextConfig& config);

// Reads and validates the hyperparameters of a qwen3next GGUF; throws Error naming the key.
Qwen3NextConfig read_qwen3_next_config(const GgufFile& file);

}  // namespace moerun
