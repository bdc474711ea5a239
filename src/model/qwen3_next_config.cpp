#include "model/qwen3_next_config.h"

#include "core/error.h"
#include "io/gguf_file.h"
#include "io/gguf_writer.h"

namespace moerun {
namespace {

constexpr const char* kArch = "qwen3next";

std::string key(const char* name) {
  return std::string(kArch) + "." + name;
}

int64_t read_int(const GgufFile& file, const char* name) {
  const std::string k = key(name);
  const uint64_t v = file.get(k).as_uint(k);
  if (v > (uint64_t{1} << 40)) fail("{}: metadata '{}' = {} is out of range", file.path(), k, v);
  return static_cast<int64_t>(v);
}

float read_float(const GgufFile& file, const char* name) {
  const std::string k = key(name);
  return static_cast<float>(file.get(k).as_number(k));
}

}  // namespace

void Qwen3NextConfig::validate(const std::string& origin) const {
  auto positive = [&](int64_t v, const char* what) {
    if (v <= 0) fail("{}: {} must be positive (got {})", origin, what, v);
  };
  positive(n_layers, "block_count");
  positive(hidden, "embedding_length");
  positive(vocab, "vocabulary size");
  positive(full_attention_interval, "full_attention_interval");
  positive(n_heads, "attention.head_count");
  positive(n_kv_heads, "attention.head_count_kv");
  positive(head_dim, "attention.key_length");
  positive(linear_k_heads, "ssm.group_count");
  positive(linear_v_heads, "ssm.time_step_rank");
  positive(linear_k_dim, "ssm.state_size");
  positive(linear_v_dim, "ssm.inner_size / ssm.time_step_rank");
  positive(conv_kernel, "ssm.conv_kernel");
  positive(n_experts, "expert_count");
  positive(n_experts_used, "expert_used_count");
  positive(expert_ffn, "expert_feed_forward_length");
  if (n_heads % n_kv_heads != 0) {
    fail("{}: head_count {} is not a multiple of head_count_kv {}", origin, n_heads, n_kv_heads);
  }
  if (linear_v_heads % linear_k_heads != 0) {
    fail("{}: ssm.time_step_rank {} is not a multiple of ssm.group_count {}", origin,
         linear_v_heads, linear_k_heads);
  }
  if (rope_dims < 0 || rope_dims > head_dim || rope_dims % 2 != 0) {
    fail("{}: rope.dimension_count {} must be even and at most key_length {}", origin, rope_dims,
         head_dim);
  }
  if (n_experts_used > n_experts) {
    fail("{}: expert_used_count {} exceeds expert_count {}", origin, n_experts_used, n_experts);
  }
  if (!(rms_eps > 0.0f) || !(rope_theta > 0.0f)) {
    fail("{}: rms epsilon and rope.freq_base must be positive", origin);
  }
}

void write_qwen3_next_config(GgufWriter& w, const Qwen3NextConfig& c) {
  auto u32 = [](int64_t v) { return GgufValue::of_u32(static_cast<uint32_t>(v)); };
  w.set("general.architecture", GgufValue::of_string(kArch));
  w.set(key("block_count"), u32(c.n_layers));
  w.set(key("context_length"), u32(c.context_length));
  w.set(key("embedding_length"), u32(c.hidden));
  w.set(key("feed_forward_length"), u32(c.dense_ffn));
  w.set(key("attention.head_count"), u32(c.n_heads));
  w.set(key("attention.head_count_kv"), u32(c.n_kv_heads));
  w.set(key("attention.key_length"), u32(c.head_dim));
  w.set(key("attention.value_length"), u32(c.head_dim));
  w.set(key("rope.freq_base"), GgufValue::of_f32(c.rope_theta));
  w.set(key("rope.dimension_count"), u32(c.rope_dims));
  w.set(key("attention.layer_norm_rms_epsilon"), GgufValue::of_f32(c.rms_eps));
  w.set(key("expert_count"), u32(c.n_experts));
  w.set(key("expert_used_count"), u32(c.n_experts_used));
  w.set(key("expert_feed_forward_length"), u32(c.expert_ffn));
  w.set(key("expert_shared_feed_forward_length"), u32(c.shared_ffn));
  w.set(key("ssm.conv_kernel"), u32(c.conv_kernel));
  w.set(key("ssm.state_size"), u32(c.linear_k_dim));
  w.set(key("ssm.group_count"), u32(c.linear_k_heads));
  w.set(key("ssm.time_step_rank"), u32(c.linear_v_heads));
  w.set(key("ssm.inner_size"), u32(c.linear_value_width()));
  w.set(key("full_attention_interval"), u32(c.full_attention_interval));
}

Qwen3NextConfig read_qwen3_next_config(const GgufFile& file) {
  const std::string& arch = file.get("general.architecture").as_string("general.architecture");
  if (arch != kArch) {
    fail("{}: general.architecture is '{}', expected '{}'", file.path(), arch, kArch);
  }
  Qwen3NextConfig c;
  c.n_layers = read_int(file, "block_count");
  c.hidden = read_int(file, "embedding_length");
  c.context_length = read_int(file, "context_length");
  c.n_heads = read_int(file, "attention.head_count");
  c.n_kv_heads = read_int(file, "attention.head_count_kv");
  c.head_dim = read_int(file, "attention.key_length");
  if (read_int(file, "attention.value_length") != c.head_dim) {
    fail("{}: attention.value_length differs from key_length", file.path());
  }
  c.rope_dims = read_int(file, "rope.dimension_count");
  c.rope_theta = read_float(file, "rope.freq_base");
  c.rms_eps = read_float(file, "attention.layer_norm_rms_epsilon");
  c.n_experts = read_int(file, "expert_count");
  c.n_experts_used = read_int(file, "expert_used_count");
  c.expert_ffn = read_int(file, "expert_feed_forward_length");
  c.shared_ffn = read_int(file, "expert_shared_feed_forward_length");
  c.conv_kernel = read_int(file, "ssm.conv_kernel");
  c.linear_k_dim = read_int(file, "ssm.state_size");
  c.linear_k_heads = read_int(file, "ssm.group_count");
  c.linear_v_heads = read_int(file, "ssm.time_step_rank");
  const int64_t inner = read_int(file, "ssm.inner_size");
  if (c.linear_v_heads <= 0 || inner % c.linear_v_heads != 0) {
    fail("{}: ssm.inner_size {} is not a multiple of ssm.time_step_rank {}", file.path(), inner,
         c.linear_v_heads);
  }
  c.linear_v_dim = inner / c.linear_v_heads;
  if (const GgufValue* v = file.find(key("full_attention_interval"))) {
    c.full_attention_interval = static_cast<int64_t>(v->as_uint(key("full_attention_interval")));
  }
  if (const GgufValue* v = file.find(key("feed_forward_length"))) {
    c.dense_ffn = static_cast<int64_t>(v->as_uint(key("feed_forward_length")));
  }
  c.vocab = file.tensor("token_embd.weight").view.ne[1];
  c.validate(file.path());
  return c;
}

}  // namespace moerun
