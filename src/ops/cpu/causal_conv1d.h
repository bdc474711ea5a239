// Causal depthwise 1-D convolution with a carried state, followed by SiLU (Gated DeltaNet's conv).
#pragma once

#include <cstdint>

namespace moerun {

// For the n new tokens of one sequence:
//   y[t, c] = silu(sum_j w[j, c] * in[t - (kernel - 1) + j, c]), j in [0, kernel),
// where in[s] is x[s] for s >= 0 and state[kernel - 1 + s] for s < 0 (tap kernel-1 is the current
// token). x, y [n, channels] f32 (distinct buffers); w [kernel, channels] f32 (GGUF's ssm_conv1d
// {kernel, channels} transposed); state [kernel - 1, channels] f32, oldest row first, replaced by
// the last kernel-1 inputs.
void causal_conv1d_silu(const float* x, int64_t n, int64_t channels, const float* w, int64_t kernel,
                        float* state, float* y);

// The same for channels [c_begin, c_end) only (x, y, w and state keep their full row strides), so
// that threads can split the channels of one sequence.
void causal_conv1d_silu_channels(const float* x, int64_t n, int64_t channels, const float* w,
                                 int64_t kernel, float* state, float* y, int64_t c_begin,
                                 int64_t c_end);

}  // namespace moerun
