// Rotary position embedding, NeoX pairing (dim i with i + rope_dims/2), over the first rope_dims
// dims of each head, computed in f32 like transformers.
#pragma once

#include <cstdint>

namespace moerun {

// Largest rope_dims supported by rope_neox.
inline constexpr int64_t kMaxRopeDims = 1024;

// inv_freq [rope_dims / 2]: inv_freq[i] = 1 / theta^(f32(2i) / rope_dims), in f32.
void rope_inv_freq(float theta, int64_t rope_dims, float* inv_freq);

// Rotates x [n_tokens, n_heads, head_dim] in place; token t is at positions[t]. For i <
// rope_dims/2, angle = f32(position) * inv_freq[i]: (a, b) = (x[i], x[i + half]) becomes (a cos - b
// sin, b cos + a sin). Dims from rope_dims on are left as they are.
void rope_neox(float* x, int64_t n_tokens, int64_t n_heads, int64_t head_dim, int64_t rope_dims,
               const int64_t* positions, const float* inv_freq);

}  // namespace moerun
