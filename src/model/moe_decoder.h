// A decoder-only MoE language model as a stack of layers (norm, mixer, residual, norm, MoE,
// residual) whose mixer is attention or Gated DeltaNet: the forward pass shared by Qwen3-Next and
// Qwen3-MoE. The architecture files bind weights into DecoderWeights and call make_moe_decoder.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/tensor.h"
#include "model/attention_block.h"
#include "model/language_model.h"
#include "model/moe_block.h"
#include "model/qwen3_next_deltanet.h"
#include "moe/moe_dispatcher.h"

namespace moerun {

// One layer: which mixer it has (an index into the attention or DeltaNet weights) and its norms
// and MoE weights.
struct DecoderLayer {
  std::vector<float> mixer_norm;  // [hidden] input norm (GGUF attn_norm)
  std::vector<float> ffn_norm;    // [hidden] post-attention norm
  int64_t attention = -1;         // index into DecoderWeights::attention, or -1
  int64_t deltanet = -1;          // index into DecoderWeights::deltanet, or -1
  MoeWeights moe;
};

// Everything a MoE decoder computes with; matrices are views into the model file.
struct DecoderWeights {
  ModelInfo info;
  int64_t hidden = 0;
  float rms_eps = 1e-6f;           // of the layer norms and the final norm
  Tensor embedding;                // token_embd {hidden, vocab}
  std::vector<float> output_norm;  // [hidden]
  WeightMatrix output;             // [vocab, hidden]
  AttentionConfig attention_config;
  std::vector<AttentionWeights> attention;
  DeltaNetConfig deltanet_config;
  std::vector<DeltaNetWeights> deltanet;
  MoeConfig moe_config;
  std::vector<DecoderLayer> layers;
  std::vector<LayerExperts> experts;  // routed experts per layer, for the default dispatcher
};

// The LanguageModel running `weights`; uses options.experts or, when null, its own
// CpuMoeDispatcher on options.pool.
std::unique_ptr<LanguageModel> make_moe_decoder(DecoderWeights weights,
                                                const ModelOptions& options);

}  // namespace moerun
