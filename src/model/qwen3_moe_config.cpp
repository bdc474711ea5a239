#include "model/qwen3_moe_config.h"

#include "core/error.h"
#include "io/gguf_file.h"
#include "io/gguf_writer.h"

namespace moerun {
namespace {

constexpr const char* kArch = "qwen3moe";

std::string key(const char* name) {
  return std::string(kArch) + "." + name;
}

int64_t read_int(const GgufFile& file, const char* name) {
  const std::string k = key(name);
  const uint64_t v = file.get(k).as_uint(k);
  if (v > (uint64_t{1} << 40)) fail("{}: metadata '{}' = {} is out of range", file.path(), k, v);
  return static_cast<int64_t>(v);
}

}  // namespace

void Qwen3MoeConfig::validate(const std::string& origin) const {
  auto positive = [&](int64_t v, const char* what) {
    if (v <= 0) fail("{}: {} must be positive (got {})", origin, what, v);
  };
  positive(n_layers, "block_count");
  positive(hidden, "embedding_length");
  positive(vocab, "vocabulary size");
  positive(n_heads, "attention.head_count");
  positive(n_kv_heads, "attention.head_count_kv");
  positive(head_dim, "attention.key_length");
  positive(n_experts, "expert_count");
  positive(n_experts_used, "expert_used_count");
  positive(expert_ffn, "expert_feed_forward_length");
  if (n_heads % n_kv_heads != 0) {
    fail("{}: head_count {} is not a multiple of head_count_kv {}", origin, n_heads, n_kv_heads);
  }
  if (head_dim % 2 != 0) fail("{}: key_length {} must be even for RoPE", origin, head_dim);
  if (n_experts_used > n_experts) {
    fail("{}: expert_used_count {} exceeds expert_count {}", origin, n_experts_used, n_experts);
  }
  if (!(rms_eps > 0.0f) || !(rope_theta > 0.0f)) {
    fail("{}: rms epsilon and rope.freq_base must be positive", origin);
  }
}

void write_qwen3_moe_config(GgufWriter& w, const Qwen3MoeConfig& c) {
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
  w.set(key("attention.layer_norm_rms_epsilon"), GgufValue::of_f32(c.rms_eps));
  w.set(key("expert_count"), u32(c.n_experts));
  w.set(key("expert_used_count"), u32(c.n_experts_used));
  w.set(key("expert_feed_forward_length"), u32(c.expert_ffn));
}

Qwen3MoeConfig read_qwen3_moe_config(const GgufFile& file) {
  const std::string& arch = file.get("general.architecture").as_string("general.architecture");
  if (arch != kArch) {
    fail("{}: general.architecture is '{}', expected '{}'", file.path(), arch, kArch);
  }
  Qwen3MoeConfig c;
  c.n_layers = read_int(file, "block_count");
  c.hidden = read_int(file, "embedding_length");
  c.context_length = read_int(file, "context_length");
  c.n_heads = read_int(file, "attention.head_count");
  c.n_kv_heads = read_int(file, "attention.head_count_kv");
  c.head_dim = file.find(key("attention.key_length")) ? read_int(file, "attention.key_length")
                                                      : c.hidden / c.n_heads;
  c.rope_theta =
      static_cast<float>(file.get(key("rope.freq_base")).as_number(key("rope.freq_base")));
  c.rms_eps = static_cast<float>(file.get(key("attention.layer_norm_rms_epsilon"))
                                     .as_number(key("attention.layer_norm_rms_epsilon")));
  c.n_experts = read_int(file, "expert_count");
  c.n_experts_used = read_int(file, "expert_used_count");
  c.expert_ffn = read_int(file, "expert_feed_forward_length");
  if (file.find(key("feed_forward_length"))) c.dense_ffn = read_int(file, "feed_forward_length");
  c.tied_embeddings = file.find_tensor("output.weight") == nullptr;
  c.vocab = file.tensor("token_embd.weight").view.ne[1];
  c.validate(file.path());
  return c;
}

}  // namespace moerun
