// bitsandbytes NF4 weights in safetensors checkpoints (`...-bnb-4bit` repositories): validation of
// the companion tensors and dequantisation to f32 (spec/qwen3-next.md, section 5).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "io/safetensors.h"

namespace moerun {

// True when `weight_name` (e.g. "model.layers.0.mlp.gate_proj.weight") is stored as NF4, that is
// when `<weight_name>.quant_state.bitsandbytes__nf4` exists.
bool is_nf4_weight(const SafetensorsDir& dir, const std::string& weight_name);

// True for the companion tensors of a bitsandbytes weight (absmax, quant_map, quant_state, ...).
bool is_bnb_companion(const std::string& name);

// One NF4 weight with its companions resolved and every size checked against the declared shape.
class Nf4Weight {
 public:
  // Resolves and validates `weight_name`; throws Error naming the tensor and the problem.
  Nf4Weight(const SafetensorsDir& dir, const std::string& weight_name);

  const std::string& name() const { return name_; }
  // The dequantised shape (torch order, from the quant state).
  const std::vector<int64_t>& shape() const { return shape_; }
  // Number of weights.
  int64_t numel() const { return numel_; }
  // Dequantises weights [first, first + count) of the row-major matrix into out [count] f32.
  void dequantize(int64_t first, int64_t count, float* out) const;
  // Drops the mapped pages of the packed weights from the resident set (see release_pages).
  void release_pages() const { moerun::release_pages(*packed_); }

 private:
  float block_absmax(int64_t block) const;

  std::string name_;
  std::vector<int64_t> shape_;
  int64_t numel_ = 0;
  int64_t blocksize_ = 64;
  int64_t nested_blocksize_ = 256;
  float nested_offset_ = 0.0f;
  bool double_quant_ = false;                  // absmax holds uint8 codes of a nested quantisation
  std::array<float, 16> quant_map_{};          // the NF4 code book
  std::array<float, 256> nested_map_{};        // nested code book (double quantisation only)
  const SafetensorsTensor* packed_ = nullptr;  // U8 [ceil(numel / 2)], high nibble first
  const SafetensorsTensor* absmax_ = nullptr;  // [n_blocks] U8 codes or floats
  const SafetensorsTensor* nested_absmax_ = nullptr;  // [ceil(n_blocks / nested_blocksize)] float
};

}  // namespace moerun
