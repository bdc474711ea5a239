// Row normalisations of the model: RMSNorm, the gated RMSNorm of Gated DeltaNet, and L2 norm.
#pragma once

#include <cstdint>

namespace moerun {

// Sum of x[i]^2 over n values in f32 (16 partial sums, so the loop vectorises).
float sum_of_squares(const float* x, int64_t n);

// y [n_rows, dim] = x * rsqrt(mean(x^2) + eps) * w, per row, in f32. x [n_rows, dim], w [dim]
// (GGUF weights: the +1 of zero-centred norms is already added). y may equal x.
void rms_norm(const float* x, const float* w, int64_t n_rows, int64_t dim, float eps, float* y);

// y [n_rows, dim] = w * (o * rsqrt(mean(o^2) + eps)) * silu(z), per row. o, z [n_rows, dim],
// w [dim] (not zero-centred). y may equal o.
void gated_rms_norm(const float* o, const float* z, const float* w, int64_t n_rows, int64_t dim,
                    float eps, float* y);

// x [n_rows, dim] = x * rsqrt(sum(x^2) + eps), per row, in place (transformers' l2norm).
void l2_norm(float* x, int64_t n_rows, int64_t dim, float eps);

}  // namespace moerun
