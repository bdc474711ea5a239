// The `<architecture>.<name>` hyperparameter keys of a GGUF, read with range checks and written
// with the types llama.cpp uses, and the keys every attention + MoE config has; shared by the
// configs of every architecture.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace moerun {

class GgufFile;
class GgufWriter;

// Key access for one architecture, e.g. ArchKeys("qwen3next").read_int(file, "block_count").
class ArchKeys {
 public:
  explicit ArchKeys(std::string arch) : arch_(std::move(arch)) {}

  // The full key, e.g. "qwen3next.block_count".
  std::string key(const char* name) const { return arch_ + "." + name; }
  // Throws Error unless general.architecture names this architecture.
  void expect_architecture(const GgufFile& file) const;
  // A non-negative integer key (at most 2^40); throws Error naming the key otherwise.
  int64_t read_int(const GgufFile& file, const char* name) const;
  // An integer key when present.
  std::optional<int64_t> read_optional_int(const GgufFile& file, const char* name) const;
  // A numeric key as f32; throws Error naming the key otherwise.
  float read_float(const GgufFile& file, const char* name) const;
  // Writes general.architecture.
  void write_architecture(GgufWriter& writer) const;
  // Writes a u32 key.
  void write_u32(GgufWriter& writer, const char* name, int64_t value) const;
  // Writes an f32 key.
  void write_f32(GgufWriter& writer, const char* name, float value) const;

 private:
  std::string arch_;
};

// The hyperparameters every attention + MoE architecture has, for the checks they share.
struct MoeShape {
  int64_t n_layers, hidden, vocab, n_heads, n_kv_heads, head_dim;
  int64_t n_experts, n_experts_used, expert_ffn;
  float rms_eps, rope_theta;
};

// Throws Error naming the field when the shared hyperparameters are inconsistent.
void validate_moe_shape(const std::string& origin, const MoeShape& shape);

// Writes general.architecture and the keys every attention + MoE config has, in llama.cpp's order;
// rope.dimension_count (partial RoPE) after rope.freq_base when given. Config: Qwen3MoeConfig,
// Qwen3NextConfig (fields of the same names).
template <typename Config>
void write_moe_keys(const ArchKeys& k, GgufWriter& w, const Config& c,
                    std::optional<int64_t> rope_dims) {
  k.write_architecture(w);
  k.write_u32(w, "block_count", c.n_layers);
  k.write_u32(w, "context_length", c.context_length);
  k.write_u32(w, "embedding_length", c.hidden);
  k.write_u32(w, "feed_forward_length", c.dense_ffn);
  k.write_u32(w, "attention.head_count", c.n_heads);
  k.write_u32(w, "attention.head_count_kv", c.n_kv_heads);
  k.write_u32(w, "attention.key_length", c.head_dim);
  k.write_u32(w, "attention.value_length", c.head_dim);
  k.write_f32(w, "rope.freq_base", c.rope_theta);
  if (rope_dims) {
    k.write_u32(w, "rope.dimension_count", *rope_dims);
  }
  k.write_f32(w, "attention.layer_norm_rms_epsilon", c.rms_eps);
  k.write_u32(w, "expert_count", c.n_experts);
  k.write_u32(w, "expert_used_count", c.n_experts_used);
  k.write_u32(w, "expert_feed_forward_length", c.expert_ffn);
}

// Whether attention.key_length must be present, or may be left out (older qwen3moe files): then
// head_dim is hidden / heads.
enum class KeyLength { required, optional };

// Checks general.architecture and reads the keys every attention + MoE config has (layers, widths,
// heads, head_dim, RoPE base, norm epsilon, experts) into a default Config; throws Error naming the
// key. The caller reads its own keys, the vocabulary and validates.
template <typename Config>
Config read_moe_keys(const ArchKeys& k, const GgufFile& file, KeyLength key_length) {
  k.expect_architecture(file);
  Config c;
  c.n_layers = k.read_int(file, "block_count");
  c.hidden = k.read_int(file, "embedding_length");
  c.context_length = k.read_int(file, "context_length");
  c.n_heads = k.read_int(file, "attention.head_count");
  c.n_kv_heads = k.read_int(file, "attention.head_count_kv");
  if (key_length == KeyLength::required) {
    c.head_dim = k.read_int(file, "attention.key_length");
  } else {
    // Guarded: heads may be 0 here (validate() reports it).
    c.head_dim = k.read_optional_int(file, "attention.key_length")
                     .value_or(c.n_heads > 0 ? c.hidden / c.n_heads : 0);
  }
  c.rope_theta = k.read_float(file, "rope.freq_base");
  c.rms_eps = k.read_float(file, "attention.layer_norm_rms_epsilon");
  c.n_experts = k.read_int(file, "expert_count");
  c.n_experts_used = k.read_int(file, "expert_used_count");
  c.expert_ffn = k.read_int(file, "expert_feed_forward_length");
  return c;
}

}  // namespace moerun
