// Gated DeltaNet's gated delta rule on the GPU in the chunked (WY) form, for prefill runs of many
// tokens; same meaning as deltanet_recurrent_cuda.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

#include "ops/cuda/deltanet_cuda.h"
#include "ops/cuda/device_batch.h"

namespace moerun {

// deltanet_recurrent_cuda computed per chunk of 32 tokens (same inputs, core output and update of
// the runs' recurrent states of layer `layer`, equal up to f32 rounding): blocks over (run, value
// head, 32 state columns), then a gated RMSNorm kernel. conv [n, channels], ba [n, 2 v_heads],
// z and core [n, value_width], dt_bias, a [v_heads], norm_w [v_dim]. k_dim above 128 runs the
// recurrent kernel.
void deltanet_chunked_cuda(const DeltaNetShape& shape, const DeviceBatch& batch, int64_t layer,
                           const float* conv, const float* ba, const float* z, const float* dt_bias,
                           const float* a, const float* norm_w, float* core, cudaStream_t stream);

}  // namespace moerun
