#include "model/qwen3_next_config.h"

#include "core/error.h"
#include "io/gguf_file.h"
#include "model/arch_keys.h"

namespace moerun {
namespace {

const ArchKeys kKeys("qwen3next");

}  // namespace

void Qwen3NextConfig::validate(const std::string& origin) const {
  validate_moe_shape(origin, {n_layers, hidden, vocab, n_heads, n_kv_heads, head_dim, n_experts,
                              n_experts_used, expert_ffn, rms_eps, rope_theta});
  auto positive = [&](int64_t v, const char* what) {
    if (v <= 0) fail("{}: {} must be positive (got {})", origin, what, v);
  };
  positive(full_attention_interval, "full_attention_interval");
  positive(linear_k_heads, "ssm.group_count");
  positive(linear_v_heads, "ssm.time_step_rank");
  positive(linear_k_dim, "ssm.state_size");
  positive(linear_v_dim, "ssm.inner_size / ssm.time_step_rank");
  positive(conv_kernel, "ssm.conv_kernel");
  if (linear_v_heads % linear_k_heads != 0) {
    fail("{}: ssm.time_step_rank {} is not a multiple of ssm.group_count {}", origin,
         linear_v_heads, linear_k_heads);
  }
  if (rope_dims < 0 || rope_dims > head_dim || rope_dims % 2 != 0) {
    fail("{}: rope.dimension_count {} must be even and at most key_length {}", origin, rope_dims,
         head_dim);
  }
}

void write_qwen3_next_config(GgufWriter& w, const Qwen3NextConfig& c) {
  const ArchKeys& k = kKeys;
  write_moe_keys(k, w, c, c.rope_dims);
  k.write_u32(w, "expert_shared_feed_forward_length", c.shared_ffn);
  k.write_u32(w, "ssm.conv_kernel", c.conv_kernel);
  k.write_u32(w, "ssm.state_size", c.linear_k_dim);
  k.write_u32(w, "ssm.group_count", c.linear_k_heads);
  k.write_u32(w, "ssm.time_step_rank", c.linear_v_heads);
  k.write_u32(w, "ssm.inner_size", c.linear_value_width());
  k.write_u32(w, "full_attention_interval", c.full_attention_interval);
}

Qwen3NextConfig read_qwen3_next_config(const GgufFile& file) {
  const ArchKeys& k = kKeys;
  Qwen3NextConfig c = read_moe_keys<Qwen3NextConfig>(k, file, KeyLength::required);
  if (k.read_int(file, "attention.value_length") != c.head_dim) {
    fail("{}: attention.value_length differs from key_length", file.path());
  }
  c.rope_dims = k.read_int(file, "rope.dimension_count");
  c.shared_ffn = k.read_int(file, "expert_shared_feed_forward_length");
  c.conv_kernel = k.read_int(file, "ssm.conv_kernel");
  c.linear_k_dim = k.read_int(file, "ssm.state_size");
  c.linear_k_heads = k.read_int(file, "ssm.group_count");
  c.linear_v_heads = k.read_int(file, "ssm.time_step_rank");
  const int64_t inner = k.read_int(file, "ssm.inner_size");
  if (c.linear_v_heads <= 0 || inner % c.linear_v_heads != 0) {
    fail("{}: ssm.inner_size {} is not a multiple of ssm.time_step_rank {}", file.path(), inner,
         c.linear_v_heads);
  }
  c.linear_v_dim = inner / c.linear_v_heads;
  c.full_attention_interval =
      k.read_optional_int(file, "full_attention_interval").value_or(c.full_attention_interval);
  c.dense_ffn = k.read_optional_int(file, "feed_forward_length").value_or(c.dense_ffn);
  c.vocab = file.tensor("token_embd.weight").view.ne[1];
  c.validate(file.path());
  return c;
}

}  // namespace moerun
