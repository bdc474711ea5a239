#include "model/arch_keys.h"

#include "core/error.h"
#include "io/gguf_file.h"
#include "io/gguf_writer.h"

namespace moerun {

void ArchKeys::expect_architecture(const GgufFile& file) const {
  const std::string& arch = file.get_string("general.architecture");
  if (arch != arch_) {
    fail("{}: general.architecture is '{}', expected '{}'", file.path(), arch, arch_);
  }
}

int64_t ArchKeys::read_int(const GgufFile& file, const char* name) const {
  const std::string k = key(name);
  const uint64_t v = file.get_uint(k);
  if (v > (uint64_t{1} << 40)) fail("{}: metadata '{}' = {} is out of range", file.path(), k, v);
  return static_cast<int64_t>(v);
}

std::optional<int64_t> ArchKeys::read_optional_int(const GgufFile& file, const char* name) const {
  if (!file.find(key(name))) return std::nullopt;
  return read_int(file, name);
}

float ArchKeys::read_float(const GgufFile& file, const char* name) const {
  return static_cast<float>(file.get_number(key(name)));
}

void ArchKeys::write_architecture(GgufWriter& writer) const {
  writer.set("general.architecture", GgufValue::of_string(arch_));
}

void ArchKeys::write_u32(GgufWriter& writer, const char* name, int64_t value) const {
  writer.set(key(name), GgufValue::of_u32(static_cast<uint32_t>(value)));
}

void ArchKeys::write_f32(GgufWriter& writer, const char* name, float value) const {
  writer.set(key(name), GgufValue::of_f32(value));
}

void validate_moe_shape(const std::string& origin, const MoeShape& s) {
  auto positive = [&](int64_t v, const char* what) {
    if (v <= 0) fail("{}: {} must be positive (got {})", origin, what, v);
  };
  positive(s.n_layers, "block_count");
  positive(s.hidden, "embedding_length");
  positive(s.vocab, "vocabulary size");
  positive(s.n_heads, "attention.head_count");
  positive(s.n_kv_heads, "attention.head_count_kv");
  positive(s.head_dim, "attention.key_length");
  positive(s.n_experts, "expert_count");
  positive(s.n_experts_used, "expert_used_count");
  positive(s.expert_ffn, "expert_feed_forward_length");
  if (s.n_heads % s.n_kv_heads != 0) {
    fail("{}: head_count {} is not a multiple of head_count_kv {}", origin, s.n_heads,
         s.n_kv_heads);
  }
  if (s.n_experts_used > s.n_experts) {
    fail("{}: expert_used_count {} exceeds expert_count {}", origin, s.n_experts_used, s.n_experts);
  }
  if (!(s.rms_eps > 0.0f) || !(s.rope_theta > 0.0f)) {
    fail("{}: rms epsilon and rope.freq_base must be positive", origin);
  }
}

}  // namespace moerun
