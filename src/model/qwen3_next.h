// Qwen3-Next (`qwen3next` GGUF): gated attention and Gated DeltaNet layers with a sparse MoE and a
// shared expert, computed like transformers' Qwen3NextForCausalLM.
#pragma once

#include "model/moe_decoder.h"

namespace moerun {

// Binds every tensor of a qwen3next file (either DeltaNet layout) and returns the weights; throws
// Error naming a missing or mis-shaped tensor.
DecoderWeights bind_qwen3_next(const GgufFile& file);

}  // namespace moerun
