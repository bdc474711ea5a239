// Qwen3-MoE (`qwen3moe` GGUF: Qwen3-30B-A3B, Qwen3-235B-A22B): plain GQA attention with q/k norms
// and full-head RoPE, and a sparse MoE without shared expert, computed like transformers'
// Qwen3MoeForCausalLM.
#pragma once

#include "model/moe_decoder.h"

namespace moerun {

// Binds every tensor of a qwen3moe file (output tied to token_embd when `output` is absent) and
// returns the weights; throws Error naming a missing or mis-shaped tensor.
DecoderWeights bind_qwen3_moe(const GgufFile& file);

}  // namespace moerun
