// Activations quantised to int8 in groups of 32 for the GPU's integer dot products (dp4a).
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

namespace moerun {

// For each group of 32 values of x [n_rows, cols] f32 (cols a multiple of 32, device): scale d =
// max|x| / 127, q = round-half-even(x / d) (0 when d is 0) into q [n_rows, cols] int8, and the pair
// (d, d * sum(q)) into ds [n_rows, cols / 32, 2] f32. Asynchronous on `stream`; no allocation.
void quantize_activations_q8_cuda(const float* x, int64_t n_rows, int64_t cols, int8_t* q,
                                  float* ds, cudaStream_t stream);

}  // namespace moerun
