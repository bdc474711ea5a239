// Qwen3-Next's Gated DeltaNet layer over a batch: input projections (either GGUF layout), causal
// conv + SiLU with conv state, L2-normalised q/k, gated delta rule with recurrent state, gated
// RMSNorm with z, output projection.
#pragma once

#include <cstdint>
#include <vector>

#include "model/qwen3_next_tensors.h"
#include "ops/cpu/matmul.h"

namespace moerun {

class ThreadPool;
struct BatchPlan;

// Shape of the DeltaNet layers of a model.
struct DeltaNetConfig {
  int64_t hidden = 0;
  int64_t k_heads = 0;  // key (and query) heads
  int64_t v_heads = 0;  // value heads; value head h uses key head h / (v_heads / k_heads)
  int64_t k_dim = 0;
  int64_t v_dim = 0;
  int64_t conv_kernel = 0;
  float rms_eps = 1e-6f;  // of the gated norm

  // Value heads per key head.
  int64_t ratio() const { return v_heads / k_heads; }
  // Width of all query (or key) heads.
  int64_t key_width() const { return k_heads * k_dim; }
  // Width of all value heads.
  int64_t value_width() const { return v_heads * v_dim; }
  // Conv channels: [q all heads | k all heads | v all heads].
  int64_t channels() const { return 2 * key_width() + value_width(); }
  // Floats of one sequence's conv state for one layer.
  int64_t conv_floats() const { return (conv_kernel - 1) * channels(); }
  // Floats of one sequence's recurrent state for one layer.
  int64_t ssm_floats() const { return v_heads * k_dim * v_dim; }
};

// Weights of one DeltaNet layer.
struct DeltaNetWeights {
  DeltaNetLayout layout = DeltaNetLayout::qkv_gate;
  WeightMatrix ssm_in;      // ssm_in layout: [2 key_width + 2 value_width, hidden], grouped per key
                            // head g: q_g | k_g | v of its ratio value heads | z of them
  WeightMatrix qkv;         // qkv_gate layout: [channels, hidden] = [q all | k all | v all]
  WeightMatrix gate;        // qkv_gate layout: [value_width, hidden] = z, value heads in order
  WeightMatrix ba;          // [2 v_heads, hidden], per key head g: b of its value heads, then a
  std::vector<float> conv;  // [conv_kernel, channels] (ssm_conv1d transposed)
  std::vector<float> dt_bias;  // [v_heads]
  std::vector<float> a;        // [v_heads] ssm_a = -exp(A_log)
  std::vector<float> norm;     // [v_dim] gated norm weight (not zero-centred)
  WeightMatrix out;            // [hidden, value_width]
};

// Working buffers of deltanet_layer, grown on demand and kept.
struct DeltaNetScratch {
  std::vector<float> proj;      // [n, 2 key_width + 2 value_width] (ssm_in layout)
  std::vector<float> mixed;     // [n, channels] conv input
  std::vector<float> z;         // [n, value_width]
  std::vector<float> ba;        // [n, 2 v_heads]
  std::vector<float> conv;      // [n, channels] conv output: q | k | v
  std::vector<float> beta;      // [n, v_heads]
  std::vector<float> decay;     // [n, v_heads] log decay g
  std::vector<float> core;      // [n, value_width]
  std::vector<MatmulJob> jobs;  // the input projections
  MatmulWorkspace workspace;
};

// x [n, hidden] f32 (normalised input) -> out [n, hidden] f32 for the batch in `plan`, advancing
// conv and recurrent states of DeltaNet layer `layer` (counting DeltaNet layers) of each sequence.
void deltanet_layer(const DeltaNetConfig& config, const DeltaNetWeights& w, int64_t layer,
                    const float* x, const BatchPlan& plan, ThreadPool& pool, DeltaNetScratch& s,
                    float* out);

}  // namespace moerun
