// The `<architecture>.<name>` hyperparameter keys of a GGUF, read with range checks and written
// with the types llama.cpp uses; shared by the configs of every architecture.
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

}  // namespace moerun
