// Synthetic Qwen3-Next GGUF files: the real shape and tokenizer, random weights with sane
// statistics.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "core/dtype.h"
#include "model/qwen3_next_config.h"
#include "model/qwen3_next_tensors.h"
#include "model/type_mix.h"

namespace moerun {

class ThreadPool;

// Named shapes: "qwen3-next-80b-a3b" (the real model) and "tiny" (same layer pattern, toy sizes).
std::optional<Qwen3NextConfig> synth_preset(const std::string& name);

// Everything that defines a synthetic file; the same options give the same bytes.
struct SynthOptions {
  Qwen3NextConfig config;
  TypeMix types = TypeMix::q4_k_m;
  DeltaNetLayout layout = DeltaNetLayout::qkv_gate;
  uint64_t seed = 1;
  std::string tokenizer_dir;  // holds tokenizer.json and tokenizer_config.json
  std::string name = "synthetic";
};

// Called after each tensor is written: bytes of tensor data written so far, and in total.
using SynthProgress = std::function<void(uint64_t done, uint64_t total)>;

// Writes the file at `path`, generating tensors in parallel on `pool` while the previous one is
// written, so memory stays at about two tensors. Throws Error on bad options or I/O failure.
void write_synthetic_model(const SynthOptions& options, const std::string& path, ThreadPool& pool,
                           const SynthProgress& progress = {});

}  // namespace moerun
