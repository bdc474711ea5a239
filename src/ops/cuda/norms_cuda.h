// Row normalisations on the GPU: the residual add fused with RMSNorm, and RMSNorm of chosen rows.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

namespace moerun {

// Per row r of h [rows, dim] f32 (device): h[r] += delta[r] when delta is not null, then
// y[r] = h[r] * rsqrt(mean(h[r]^2) + eps) * w (w [dim], zero-centred +1 already added). Same
// numerics as the CPU rms_norm up to summation order.
void add_rms_norm_cuda(float* h, const float* delta, const float* w, int64_t rows, int64_t dim,
                       float eps, float* y, cudaStream_t stream);

// y [n_out, dim] = rms_norm(x[rows[i]]) * w for i < n_out; rows [n_out] i32 (device) index into
// x [*, dim] f32.
void rms_norm_rows_cuda(const float* x, const int32_t* rows, int64_t n_out, const float* w,
                        int64_t dim, float eps, float* y, cudaStream_t stream);

}  // namespace moerun
