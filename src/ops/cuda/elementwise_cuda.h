// Elementwise steps of the MoE block on the GPU: the SwiGLU product and the shared-expert merge.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

namespace moerun {

// out [n] = silu(gate [n]) * up [n] (f32, device); out may equal gate.
void silu_mul_cuda(const float* gate, const float* up, int64_t n, float* out, cudaStream_t stream);

// out[t] += sigmoid(scale[t]) * shared[t] for t < rows; out, shared [rows, dim], scale [rows].
void add_gated_shared_cuda(float* out, const float* shared, const float* scale, int64_t rows,
                           int64_t dim, cudaStream_t stream);

// dst [n] += src [n] (f32, device).
void add_into_cuda(float* dst, const float* src, int64_t n, cudaStream_t stream);

}  // namespace moerun
