#include "ops/cpu/gated_delta_rule.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

// The state loops run at the widest vector width the CPU has: GCC emits AVX-512, AVX2 and baseline
// clones of the kernel and picks one at load time (the file itself stays baseline x86-64).
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define MOERUN_DELTA_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define MOERUN_DELTA_CLONES
#endif

namespace moerun {
namespace {

MOERUN_DELTA_CLONES
void delta_rule_kernel(float* __restrict state, int64_t k_dim, int64_t v_dim, int64_t n,
                       const DeltaRuleInputs& in, float* __restrict o, int64_t o_stride) {
  float delta[kMaxDeltaValueDim];  // [v_dim] kv, then (v - kv) * beta
  for (int64_t t = 0; t < n; ++t) {
    const float* q = in.q + t * in.q_stride;
    const float* k = in.k + t * in.k_stride;
    const float* v = in.v + t * in.v_stride;
    const float decay = std::exp(in.g[t * in.gb_stride]);
    const float beta = in.beta[t * in.gb_stride];
    float* __restrict out = o + t * o_stride;
    // Decay the state and read kv = S^T k in one pass.
    std::fill(delta, delta + v_dim, 0.0f);
    for (int64_t i = 0; i < k_dim; ++i) {
      float* __restrict row = state + i * v_dim;
      const float ki = k[i];
      for (int64_t j = 0; j < v_dim; ++j) {
        row[j] *= decay;
        delta[j] += ki * row[j];
      }
    }
    for (int64_t j = 0; j < v_dim; ++j) delta[j] = (v[j] - delta[j]) * beta;
    // Write k delta^T and read o = S^T q in a second pass.
    std::fill(out, out + v_dim, 0.0f);
    for (int64_t i = 0; i < k_dim; ++i) {
      float* __restrict row = state + i * v_dim;
      const float ki = k[i];
      const float qi = q[i];
      for (int64_t j = 0; j < v_dim; ++j) {
        row[j] += ki * delta[j];
        out[j] += qi * row[j];
      }
    }
  }
}

}  // namespace

void gated_delta_rule(float* state, int64_t k_dim, int64_t v_dim, int64_t n,
                      const DeltaRuleInputs& in, float* o, int64_t o_stride) {
  MOERUN_CHECK(v_dim <= kMaxDeltaValueDim);
  delta_rule_kernel(state, k_dim, v_dim, n, in, o, o_stride);
}

}  // namespace moerun
