// Binding of the blocks Qwen3-Next and Qwen3-MoE share, by their llama.cpp tensor names
// (blk.N.attn_*, blk.N.ffn_*).
#pragma once

#include <cstdint>
#include <string>

#include "model/attention_block.h"
#include "model/moe_block.h"
#include "moe/moe_dispatcher.h"

namespace moerun {

class WeightBinder;

// "blk.<layer>.<suffix>".
std::string layer_tensor(int64_t layer, const char* suffix);

// attn_q (with the gate rows when config.output_gate), attn_k, attn_v, attn_output, attn_q_norm,
// attn_k_norm of `layer`.
AttentionWeights bind_attention_weights(const WeightBinder& b, const AttentionConfig& config,
                                        int64_t layer);

// ffn_gate_inp, and the shared expert (ffn_{gate,up,down}_shexp, ffn_gate_inp_shexp) when
// config.shared_ffn > 0.
MoeWeights bind_moe_weights(const WeightBinder& b, const MoeConfig& config, int64_t layer);

// ffn_gate_exps, ffn_up_exps {hidden, ffn, n_experts} and ffn_down_exps {ffn, hidden, n_experts}.
LayerExperts bind_layer_experts(const WeightBinder& b, const MoeConfig& config, int64_t ffn,
                                int64_t layer);

}  // namespace moerun
