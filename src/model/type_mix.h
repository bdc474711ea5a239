// Storage-type policies of whole files ("q4_k_m", "q8_0", ...): which type each tensor gets.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "core/dtype.h"
#include "model/qwen3_next_tensors.h"

namespace moerun {

// Storage types of a whole file, named like llama.cpp's file types.
enum class TypeMix { q4_k_m, q8_0, bf16, f32 };

// Parses "q4_k_m", "q8_0", "bf16" or "f32".
std::optional<TypeMix> parse_type_mix(const std::string& name);

// The storage type a tensor gets in a mix (falls back to Q8_0 or F32 when ne[0] does not divide
// into the preferred type's blocks).
DType tensor_type_in_mix(TypeMix mix, const TensorSpec& spec);

// llama.cpp's `general.file_type` (llama_ftype) value for a mix.
uint32_t llama_file_type(TypeMix mix);

}  // namespace moerun
