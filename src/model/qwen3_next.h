// Qwen3-Next (`qwen3next` GGUF): gated attention and Gated DeltaNet layers with a sparse MoE and a
// shared expert, computed like transformers' Qwen3NextForCausalLM.
#pragma once

#include <memory>

#include "model/language_model.h"

namespace moerun {

// Binds every tensor of a qwen3next file (either DeltaNet layout) and returns the model; throws
// Error naming a missing or mis-shaped tensor.
std::unique_ptr<LanguageModel> load_qwen3_next(const GgufFile& file, const ModelOptions& options);

}  // namespace moerun
