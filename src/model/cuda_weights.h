// DecoderWeights copied to VRAM: every dense matrix and vector, and the routed experts with a
// device table of pointers per layer (what moe_experts_cuda reads to find each expert).
#pragma once

#include <cstdint>
#include <vector>

#include "core/weight_matrix.h"
#include "model/moe_decoder.h"
#include "ops/cuda/attention_cuda.h"
#include "ops/cuda/deltanet_cuda.h"
#include "ops/cuda/moe_experts_cuda.h"

namespace moerun {

class DeviceMemory;

// One attention layer on the GPU.
struct GpuAttention {
  WeightMatrix q, k, v, o;
  const float* q_norm = nullptr;  // [head_dim]
  const float* k_norm = nullptr;  // [head_dim]
};

// One DeltaNet layer on the GPU.
struct GpuDeltaNet {
  DeltaNetLayout layout = DeltaNetLayout::qkv_gate;
  WeightMatrix ssm_in, qkv, gate, ba, out;
  const float* conv = nullptr;     // [conv_kernel, channels]
  const float* dt_bias = nullptr;  // [v_heads]
  const float* a = nullptr;        // [v_heads]
  const float* norm = nullptr;     // [v_dim]
};

// One MoE block on the GPU: router, shared expert and the routed experts' table.
struct GpuMoe {
  WeightMatrix router, shared_gate, shared_up, shared_down, shared_scale;
  ExpertShape experts;
  DeviceExpertTable table;  // [n_experts] pointers each, in VRAM
};

// One decoder layer on the GPU.
struct GpuLayer {
  const float* mixer_norm = nullptr;  // [hidden]
  const float* ffn_norm = nullptr;    // [hidden]
  int64_t attention = -1;
  int64_t deltanet = -1;
  GpuMoe moe;
};

// Everything the GPU forward pass reads, in VRAM (the embedding table stays in host memory: rows
// are gathered on the host).
struct GpuWeights {
  const float* output_norm = nullptr;  // [hidden]
  WeightMatrix output;                 // [vocab, hidden]
  const float* inv_freq = nullptr;     // [rope_dims / 2]
  AttentionShape attention_shape;
  DeltaNetShape deltanet_shape;
  std::vector<GpuAttention> attention;
  std::vector<GpuDeltaNet> deltanet;
  std::vector<GpuLayer> layers;
};

// Copies `w` (all but the embedding table, and the routed experts only when `experts`) into memory
// from `memory`; throws Error when it does not fit the budget or a weight type has no GPU kernel.
// Without experts, each layer's expert table is left empty (the expert cache provides it).
GpuWeights upload_weights(const DecoderWeights& w, DeviceMemory& memory, bool experts);

// Bytes upload_weights(w, ..., true) allocates for the routed experts.
uint64_t routed_expert_bytes(const DecoderWeights& w);

}  // namespace moerun
