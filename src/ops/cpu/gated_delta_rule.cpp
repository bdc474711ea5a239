#include "ops/cpu/gated_delta_rule.h"

#include <algorithm>
#include <cmath>

#include "core/cpu_features.h"
#include "core/error.h"

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define MOERUN_DELTA_AVX512 1
#endif

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

#ifdef MOERUN_DELTA_AVX512
// delta_rule_kernel with AVX-512 intrinsics for v_dim % 128 == 0: per block of 128 state columns,
// kv and then o stay in eight registers across all k_dim rows (same per-element order of
// operations as the portable kernel).
__attribute__((target("avx512f,fma"))) void delta_rule_avx512(float* __restrict state,
                                                              int64_t k_dim, int64_t v_dim,
                                                              int64_t n, const DeltaRuleInputs& in,
                                                              float* __restrict o,
                                                              int64_t o_stride) {
  constexpr int kRegs = 8;  // 8 x 16 = 128 columns per block
  for (int64_t t = 0; t < n; ++t) {
    const float* q = in.q + t * in.q_stride;
    const float* k = in.k + t * in.k_stride;
    const float* v = in.v + t * in.v_stride;
    const __m512 decay = _mm512_set1_ps(std::exp(in.g[t * in.gb_stride]));
    const __m512 beta = _mm512_set1_ps(in.beta[t * in.gb_stride]);
    float* out = o + t * o_stride;
    for (int64_t c = 0; c < v_dim; c += 16 * kRegs) {
      // Decay the state and read kv = S^T k.
      __m512 acc[kRegs];
      for (int r = 0; r < kRegs; ++r) acc[r] = _mm512_setzero_ps();
      for (int64_t i = 0; i < k_dim; ++i) {
        float* row = state + i * v_dim + c;
        const __m512 ki = _mm512_set1_ps(k[i]);
        for (int r = 0; r < kRegs; ++r) {
          const __m512 s = _mm512_mul_ps(_mm512_loadu_ps(row + 16 * r), decay);
          _mm512_storeu_ps(row + 16 * r, s);
          acc[r] = _mm512_fmadd_ps(ki, s, acc[r]);
        }
      }
      // delta = (v - kv) * beta; write k delta^T and read o = S^T q.
      __m512 delta[kRegs];
      for (int r = 0; r < kRegs; ++r) {
        delta[r] = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(v + c + 16 * r), acc[r]), beta);
        acc[r] = _mm512_setzero_ps();
      }
      for (int64_t i = 0; i < k_dim; ++i) {
        float* row = state + i * v_dim + c;
        const __m512 ki = _mm512_set1_ps(k[i]);
        const __m512 qi = _mm512_set1_ps(q[i]);
        for (int r = 0; r < kRegs; ++r) {
          const __m512 s = _mm512_fmadd_ps(ki, delta[r], _mm512_loadu_ps(row + 16 * r));
          _mm512_storeu_ps(row + 16 * r, s);
          acc[r] = _mm512_fmadd_ps(qi, s, acc[r]);
        }
      }
      for (int r = 0; r < kRegs; ++r) _mm512_storeu_ps(out + c + 16 * r, acc[r]);
    }
  }
}

// Whether this CPU (and OS) runs the AVX-512 kernel; read once.
bool use_avx512() {
  static const bool on = cpu_features().avx512f && cpu_features().fma;
  return on;
}
#endif

}  // namespace

void gated_delta_rule(float* state, int64_t k_dim, int64_t v_dim, int64_t n,
                      const DeltaRuleInputs& in, float* o, int64_t o_stride) {
  MOERUN_CHECK(v_dim <= kMaxDeltaValueDim);
#ifdef MOERUN_DELTA_AVX512
  if (use_avx512() && v_dim % 128 == 0) {
    delta_rule_avx512(state, k_dim, v_dim, n, in, o, o_stride);
    return;
  }
#endif
  delta_rule_kernel(state, k_dim, v_dim, n, in, o, o_stride);
}

}  // namespace moerun
