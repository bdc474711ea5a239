// The gated delta rule of Gated DeltaNet, recurrent form, for one value head over a run of tokens.
#pragma once

#include <cstdint>

namespace moerun {

// Largest value-head width supported (per-call scratch lives on the stack).
inline constexpr int64_t kMaxDeltaValueDim = 1024;

// Strided inputs of one head for n tokens: row t of each array starts at base + t * stride.
struct DeltaRuleInputs {
  const float* q = nullptr;  // [n, k_dim] rows, already L2-normalised and scaled
  const float* k = nullptr;  // [n, k_dim] rows, L2-normalised
  const float* v = nullptr;  // [n, v_dim] rows
  int64_t q_stride = 0;
  int64_t k_stride = 0;
  int64_t v_stride = 0;
  const float* g = nullptr;     // [n] log decay (<= 0), element t at g[t * gb_stride]
  const float* beta = nullptr;  // [n] write strength, element t at beta[t * gb_stride]
  int64_t gb_stride = 1;
};

// For each token in order, with state S [k_dim, v_dim] f32 (key index major):
//   S *= exp(g_t); kv = S^T k_t; delta = (v_t - kv) * beta_t; S += k_t delta^T; o_t = S^T q_t.
// o [n, v_dim] rows at o + t * o_stride. This is transformers' torch_recurrent_gated_delta_rule;
// prefill runs it over all new tokens with the state kept in cache.
void gated_delta_rule(float* state, int64_t k_dim, int64_t v_dim, int64_t n,
                      const DeltaRuleInputs& in, float* o, int64_t o_stride);

}  // namespace moerun
