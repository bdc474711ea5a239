// Human-readable description of a GGUF file: header, metadata, tensor table and totals.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "io/gguf_file.h"

namespace moerun {

// The text `moerun inspect` prints; `all` shows every array element and whole strings.
std::string describe_gguf(const GgufFile& file, bool all = false);

// Where moerun keeps a tensor, by name: the categories `inspect` totals.
enum class TensorCategory {
  routed_experts,  // "*_exps*": host RAM, cached in VRAM
  embeddings,      // "token_embd*"
  dense,           // everything else: GPU-resident and read for every token
};

// The category of the tensor named `name`.
TensorCategory tensor_category(std::string_view name);

// Bytes of a GGUF's tensors by category, and the size of one routed expert.
struct TensorBytes {
  uint64_t routed_experts = 0;
  uint64_t embeddings = 0;
  uint64_t dense = 0;
  int64_t moe_layers = 0;          // layers ("blk.N.") with routed-expert tensors
  int64_t experts_per_layer = 0;   // most experts of any such layer (ne[2] of the 3-D tensors)
  uint64_t expert_all_layers = 0;  // one expert's bytes (all its matrices) summed over the layers
  uint64_t largest_expert = 0;     // one expert's bytes in the layer where it is largest
};

// Totals the tensors of `file` by category.
TensorBytes tensor_bytes(const GgufFile& file);

// A byte count in binary units with two decimals, e.g. "1.50 GiB".
std::string format_bytes(uint64_t bytes);

}  // namespace moerun
