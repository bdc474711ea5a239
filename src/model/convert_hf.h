// Converting a Hugging Face checkpoint directory (Qwen3-Next or Qwen3-MoE; f32/f16/bf16 or
// bitsandbytes NF4 safetensors) into a GGUF file in llama.cpp's layout.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "model/qwen3_next_tensors.h"
#include "model/type_mix.h"

namespace moerun {

class ThreadPool;

// Choices beyond the type mix.
struct ConvertOptions {
  DeltaNetLayout layout = DeltaNetLayout::qkv_gate;  // Qwen3-Next DeltaNet input projection
  std::string name;                                  // general.name; empty: the directory's name
};

// Called after each tensor is written: bytes of tensor data written so far, in total, and the
// name of the tensor just written.
using ConvertProgress =
    std::function<void(uint64_t done, uint64_t total, const std::string& tensor)>;

// Converts `hf_dir` (config.json, safetensors shards, optional tokenizer.json) into `out_path`,
// one tensor at a time so memory stays at a few times the largest tensor. Everything that can be
// checked (config, every tensor's presence, shape and dtype, NF4 sizes, tokenizer) is checked
// before the output is created; on any error no partial output is left. Throws Error naming the
// problem (for missing tensors: all of them).
void convert_hf_checkpoint(const std::string& hf_dir, const std::string& out_path, TypeMix types,
                           ThreadPool& pool, const ConvertProgress& progress = {},
                           const ConvertOptions& options = {});

}  // namespace moerun
