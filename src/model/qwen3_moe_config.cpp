#include "model/qwen3_moe_config.h"

#include "core/error.h"
#include "io/gguf_file.h"
#include "model/arch_keys.h"

namespace moerun {
namespace {

const ArchKeys kKeys("qwen3moe");

}  // namespace

void Qwen3MoeConfig::validate(const std::string& origin) const {
  validate_moe_shape(origin, {n_layers, hidden, vocab, n_heads, n_kv_heads, head_dim, n_experts,
                              n_experts_used, expert_ffn, rms_eps, rope_theta});
  if (head_dim % 2 != 0) fail("{}: key_length {} must be even for RoPE", origin, head_dim);
}

void write_qwen3_moe_config(GgufWriter& w, const Qwen3MoeConfig& c) {
  const ArchKeys& k = kKeys;
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
  k.write_f32(w, "attention.layer_norm_rms_epsilon", c.rms_eps);
  k.write_u32(w, "expert_count", c.n_experts);
  k.write_u32(w, "expert_used_count", c.n_experts_used);
  k.write_u32(w, "expert_feed_forward_length", c.expert_ffn);
}

Qwen3MoeConfig read_qwen3_moe_config(const GgufFile& file) {
  const ArchKeys& k = kKeys;
  k.expect_architecture(file);
  Qwen3MoeConfig c;
  c.n_layers = k.read_int(file, "block_count");
  c.hidden = k.read_int(file, "embedding_length");
  c.context_length = k.read_int(file, "context_length");
  c.n_heads = k.read_int(file, "attention.head_count");
  c.n_kv_heads = k.read_int(file, "attention.head_count_kv");
  // Older files leave key_length out: then it is hidden / heads (guarded: heads may be 0 here).
  c.head_dim = k.read_optional_int(file, "attention.key_length")
                   .value_or(c.n_heads > 0 ? c.hidden / c.n_heads : 0);
  c.rope_theta = k.read_float(file, "rope.freq_base");
  c.rms_eps = k.read_float(file, "attention.layer_norm_rms_epsilon");
  c.n_experts = k.read_int(file, "expert_count");
  c.n_experts_used = k.read_int(file, "expert_used_count");
  c.expert_ffn = k.read_int(file, "expert_feed_forward_length");
  c.dense_ffn = k.read_optional_int(file, "feed_forward_length").value_or(c.dense_ffn);
  c.tied_embeddings = file.find_tensor("output.weight") == nullptr;
  c.vocab = file.tensor("token_embd.weight").view.ne[1];
  c.validate(file.path());
  return c;
}

}  // namespace moerun
