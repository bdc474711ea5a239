// Gated DeltaNet on the GPU: the ssm_in layout's ungrouping, the causal conv + SiLU with its
// state, and the gated delta rule (gates, L2 norms, recurrent state, gated RMSNorm) per run.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

#include "ops/cuda/device_batch.h"
#include "ops/cuda/host_device.h"

namespace moerun {

// Shape of the DeltaNet layers (as the CPU DeltaNetConfig).
struct DeltaNetShape {
  int64_t k_heads = 0;
  int64_t v_heads = 0;      // a multiple of k_heads
  int64_t k_dim = 0;        // at most 256
  int64_t v_dim = 0;        // at most 1024
  int64_t conv_kernel = 0;  // at most 8
  float rms_eps = 1e-6f;

  MOERUN_HOST_DEVICE int64_t key_width() const { return k_heads * k_dim; }
  MOERUN_HOST_DEVICE int64_t value_width() const { return v_heads * v_dim; }
  MOERUN_HOST_DEVICE int64_t channels() const { return 2 * key_width() + value_width(); }
  MOERUN_HOST_DEVICE int64_t conv_floats() const { return (conv_kernel - 1) * channels(); }
  MOERUN_HOST_DEVICE int64_t ssm_floats() const { return v_heads * k_dim * v_dim; }
};

// proj [n, k_heads, 2 k_dim + 2 ratio v_dim] (grouped by key head: q, k, v, z) -> mixed [n, q all
// | k all | v all] and z [n, value_width].
void deltanet_ungroup_cuda(const DeltaNetShape& shape, const float* proj, int64_t n, float* mixed,
                           float* z, cudaStream_t stream);

// y [n, channels] = silu(causal depthwise conv of mixed [n, channels] with w [kernel, channels]),
// continuing each run's conv state of DeltaNet layer `layer` (its first conv_floats floats) and
// leaving the last kernel - 1 inputs there.
void deltanet_conv_cuda(const DeltaNetShape& shape, const DeviceBatch& batch, int64_t layer,
                        const float* mixed, const float* w, float* y, cudaStream_t stream);

// Per value head of each run, token by token: q, k = L2-normalised conv outputs (q also / sqrt
// k_dim), beta = sigmoid(b), g = a * softplus(a_in + dt_bias), the gated delta rule on the run's
// recurrent state of layer `layer`, then core = norm_w * rms_norm(o) * silu(z). conv [n, channels],
// ba [n, 2 v_heads] (per key head: b of its value heads, then a_in), z and core [n, value_width],
// dt_bias, a [v_heads], norm_w [v_dim].
void deltanet_recurrent_cuda(const DeltaNetShape& shape, const DeviceBatch& batch, int64_t layer,
                             const float* conv, const float* ba, const float* z,
                             const float* dt_bias, const float* a, const float* norm_w, float* core,
                             cudaStream_t stream);

}  // namespace moerun
