// Tiny qwen3next / qwen3moe models for tests: random f32 weights under their GGUF names, written
// as GGUF in either DeltaNet layout and several storage types, and a straightforward double-
// precision reference forward pass written from the spec, independent of the engine's code.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "model/qwen3_moe_config.h"
#include "model/qwen3_next_config.h"

namespace moerun::test {

// One tensor: GGUF name, shape (ne[0] contiguous) and f32 values.
struct TinyTensor {
  std::string name;
  std::vector<int64_t> ne;
  std::vector<float> data;
};

// A whole model's tensors.
struct TinyModel {
  std::vector<TinyTensor> tensors;
  // The tensor called `name` (aborts the test binary when absent).
  const TinyTensor& get(const std::string& name) const;
  // True when present.
  bool has(const std::string& name) const;
};

// Small Qwen3-Next shape: hidden 64, 4 layers (DeltaNet, attention, DeltaNet, attention),
// k_dim 16 != v_dim 8, two value heads per key head, partial RoPE, 8 experts top-3, vocab 97.
Qwen3NextConfig tiny_next_config();
// Small Qwen3-MoE shape: hidden 64, 3 layers, 4 heads / 2 KV heads of 16, 8 experts top-3.
Qwen3MoeConfig tiny_moe_config();

// Random weights of a Qwen3-Next model, DeltaNet input in the `ssm_in` (HF grouped) layout.
TinyModel make_next_weights(const Qwen3NextConfig& c, uint64_t seed);
// The same weights with every ssm_in regrouped into attn_qkv ([q all | k all | v all]) and
// attn_gate (z of the value heads in order).
TinyModel to_qkv_gate_layout(const TinyModel& m, const Qwen3NextConfig& c);
// Random weights of a Qwen3-MoE model; `tied`: no output tensor.
TinyModel make_moe_weights(const Qwen3MoeConfig& c, uint64_t seed, bool tied);

// How write_tiny_gguf stores a model.
struct TinyWriteOptions {
  DType matrix_type = DType::F32;  // type of matrices whose rows divide into its blocks
  std::string skip;                // leave this tensor out
  std::string misshape;            // write this tensor with ne[0] doubled (random values)
  std::string architecture;        // overrides general.architecture when not empty
};

// Writes `m` with the metadata of `c` (qwen3next) at `path`.
void write_tiny_gguf(const TinyModel& m, const Qwen3NextConfig& c, const std::string& path,
                     const TinyWriteOptions& options = {});
// Writes `m` with the metadata of `c` (qwen3moe) at `path`.
void write_tiny_gguf(const TinyModel& m, const Qwen3MoeConfig& c, const std::string& path,
                     const TinyWriteOptions& options = {});

// Logits [tokens.size(), vocab] for one sequence, recomputing everything in double from `m`
// (any DeltaNet layout) as spec/qwen3-next.md describes.
std::vector<double> reference_logits(const TinyModel& m, const Qwen3NextConfig& c,
                                     const std::vector<int32_t>& tokens);
// The same for Qwen3-MoE.
std::vector<double> reference_logits(const TinyModel& m, const Qwen3MoeConfig& c,
                                     const std::vector<int32_t>& tokens);

// A path in the temporary directory, unique per test binary and name.
std::string temp_model_path(const std::string& name);

}  // namespace moerun::test
