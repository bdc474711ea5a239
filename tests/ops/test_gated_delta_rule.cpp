// The gated delta rule against a double-precision reference; a prefill run over many tokens equals
// token-by-token decoding.
#include "ops/cpu/gated_delta_rule.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "ops/cpu/norms.h"
#include "ops_test_util.h"

namespace moerun {
namespace {

struct Inputs {
  int64_t n, kd, vd;
  std::vector<float> q, k, v, g, beta;
};

Inputs make_inputs(int64_t n, int64_t kd, int64_t vd, uint32_t seed) {
  Inputs in{n,
            kd,
            vd,
            test::random_vector(n * kd, seed),
            test::random_vector(n * kd, seed + 1),
            test::random_vector(n * vd, seed + 2),
            test::random_vector(n, seed + 3, 1.0f),
            test::random_vector(n, seed + 4, 2.0f)};
  l2_norm(in.q.data(), n, kd, 1e-6f);
  l2_norm(in.k.data(), n, kd, 1e-6f);
  const float scale = 1.0f / std::sqrt(float(kd));
  for (float& x : in.q) x *= scale;
  for (float& x : in.g) x = -std::abs(x);  // log decay <= 0
  for (float& x : in.beta) x = 1.0f / (1.0f + std::exp(-x));
  return in;
}

DeltaRuleInputs view(const Inputs& in, int64_t t0) {
  DeltaRuleInputs d;
  d.q = in.q.data() + t0 * in.kd;
  d.k = in.k.data() + t0 * in.kd;
  d.v = in.v.data() + t0 * in.vd;
  d.q_stride = d.k_stride = in.kd;
  d.v_stride = in.vd;
  d.g = in.g.data() + t0;
  d.beta = in.beta.data() + t0;
  return d;
}

// v_dim 24 runs the portable kernel; 256 (two blocks of 128) the AVX-512 one where the CPU has it.
TEST(GatedDeltaRule, MatchesDoubleReference) {
  for (const int64_t vd : {24, 256}) {
    const int64_t kd = 32, n = 20;
    const Inputs in = make_inputs(n, kd, vd, 1);
    std::vector<float> state(static_cast<size_t>(kd * vd), 0.0f), o(static_cast<size_t>(n * vd));
    gated_delta_rule(state.data(), kd, vd, n, view(in, 0), o.data(), vd);
    std::vector<double> S(state.size(), 0.0), ref(o.size());
    for (int64_t t = 0; t < n; ++t) {
      const double decay = std::exp(double(in.g[t]));
      std::vector<double> kv(static_cast<size_t>(vd), 0.0);
      for (int64_t i = 0; i < kd; ++i) {
        for (int64_t j = 0; j < vd; ++j) {
          S[i * vd + j] *= decay;
          kv[j] += in.k[t * kd + i] * S[i * vd + j];
        }
      }
      for (int64_t i = 0; i < kd; ++i) {
        for (int64_t j = 0; j < vd; ++j) {
          S[i * vd + j] += in.k[t * kd + i] * (in.v[t * vd + j] - kv[j]) * in.beta[t];
        }
      }
      for (int64_t j = 0; j < vd; ++j) {
        double acc = 0;
        for (int64_t i = 0; i < kd; ++i) acc += in.q[t * kd + i] * S[i * vd + j];
        ref[t * vd + j] = acc;
      }
    }
    // Tolerance 1e-5 absolute: q is scaled to norm 1/sqrt(32) and the state stays of unit scale.
    EXPECT_LT(test::max_abs_diff(o, ref), 1e-5) << vd;
    EXPECT_LT(test::max_abs_diff(state, S), 1e-5) << vd;
    EXPECT_GT(test::max_abs(ref), 0.05) << vd;
  }
}

TEST(GatedDeltaRule, PrefillEqualsTokenByTokenDecode) {
  const int64_t n = 33, kd = 64, vd = 64;
  const Inputs in = make_inputs(n, kd, vd, 10);
  std::vector<float> s_prefill(kd * vd, 0.0f), s_decode(kd * vd, 0.0f);
  std::vector<float> o_prefill(n * vd), o_decode(n * vd);
  // Prefill: 30 tokens at once, then 3 single steps; decode: all single steps.
  gated_delta_rule(s_prefill.data(), kd, vd, 30, view(in, 0), o_prefill.data(), vd);
  for (int64_t t = 30; t < n; ++t) {
    gated_delta_rule(s_prefill.data(), kd, vd, 1, view(in, t), o_prefill.data() + t * vd, vd);
  }
  for (int64_t t = 0; t < n; ++t) {
    gated_delta_rule(s_decode.data(), kd, vd, 1, view(in, t), o_decode.data() + t * vd, vd);
  }
  EXPECT_LT(test::max_abs_diff(o_prefill, o_decode), 1e-6);
  EXPECT_LT(test::max_abs_diff(s_prefill, s_decode), 1e-6);
}

TEST(GatedDeltaRule, StridedInputsAndStrongDecayForget) {
  // g = -50 wipes the state: the output is then beta * (q . k) * v of the current token only.
  const int64_t kd = 8, vd = 4;
  std::vector<float> state(kd * vd, 3.0f);
  std::vector<float> qk(2 * kd, 0.0f);  // one row [q | k], both the unit vector e0
  qk[0] = 1.0f;
  qk[kd] = 1.0f;
  const std::vector<float> v = {1, 2, 3, 4};
  const float g = -50.0f, beta = 0.5f;
  DeltaRuleInputs d;
  d.q = qk.data();
  d.k = qk.data() + kd;
  d.v = v.data();
  d.q_stride = d.k_stride = 2 * kd;
  d.v_stride = vd;
  d.g = &g;
  d.beta = &beta;
  std::vector<float> o(vd);
  gated_delta_rule(state.data(), kd, vd, 1, d, o.data(), vd);
  for (int j = 0; j < vd; ++j) EXPECT_NEAR(o[j], 0.5f * v[j], 1e-6);
}

}  // namespace
}  // namespace moerun
