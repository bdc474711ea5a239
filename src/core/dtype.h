// Tensor element types (ggml's type ids, as stored in GGUF) and their block geometry.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace moerun {

// ggml_type ids exactly as GGUF stores them.
enum class DType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ2_XXS = 16,
  IQ2_XS = 17,
  IQ3_XXS = 18,
  IQ1_S = 19,
  IQ4_NL = 20,
  IQ3_S = 21,
  IQ2_S = 22,
  IQ4_XS = 23,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  IQ1_M = 29,
  BF16 = 30,
  TQ1_0 = 34,
  TQ2_0 = 35,
  MXFP4 = 39,
};

// Block geometry of a type: `block_elems` weights are stored in `block_bytes` bytes.
struct DTypeInfo {
  std::string_view name;  // ggml's name, e.g. "q4_K"
  int64_t block_elems;    // weights per block (1 for plain types)
  int64_t block_bytes;    // bytes per block
  bool supported;         // moerun can dequantise and compute with it
};

// Geometry of a known type id; nullopt for ids ggml does not define.
std::optional<DTypeInfo> dtype_info(uint32_t id);

// Geometry of a type that is known to be valid.
const DTypeInfo& dtype_info(DType type);

// ggml's name of the type, e.g. "q4_K"; "type<N>" for unknown ids.
std::string_view dtype_name(DType type);

// Parses a type name as ggml writes it (case-insensitive, e.g. "q4_k", "bf16").
std::optional<DType> parse_dtype(std::string_view name);

// Bytes of one row of n elements; n must be a multiple of the block size (checked by callers).
inline int64_t row_bytes(DType type, int64_t n) {
  const DTypeInfo& info = dtype_info(type);
  return n / info.block_elems * info.block_bytes;
}

}  // namespace moerun
