// GPU Gated DeltaNet steps (ungrouping, causal conv with state, gated delta rule with gates,
// L2 norms and gated RMSNorm) against the CPU ops, for a batch of two runs with random states.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "../ops_test_util.h"
#include "deltanet_reference.h"
#include "gpu_test_util.h"
#include "ops/cpu/causal_conv1d.h"
#include "ops/cuda/deltanet_cuda.h"

namespace moerun {
namespace {

using test::DeviceArray;

// CPU reference of one run: conv + SiLU, then per value head the gates, L2 norms, delta rule and
// gated norm, as the CPU model computes them. state = [conv state | ssm state] of the layer.
void reference_run(const DeltaNetShape& s, const std::vector<float>& mixed,
                   const std::vector<float>& ba, const std::vector<float>& z,
                   const std::vector<float>& conv_w, const std::vector<float>& dt_bias,
                   const std::vector<float>& a, const std::vector<float>& norm_w, int64_t begin,
                   int64_t count, float* state, std::vector<float>& core) {
  const int64_t ch = s.channels();
  std::vector<float> y(static_cast<size_t>(count * ch));  // [count, channels]
  causal_conv1d_silu(mixed.data() + begin * ch, count, ch, conv_w.data(), s.conv_kernel, state,
                     y.data());
  test::reference_gated_delta_rule(s, y.data(), ba, z, dt_bias, a, norm_w, begin, count,
                                   state + s.conv_floats(), core);
}

void run_case(const DeltaNetShape& s) {
  const int64_t ch = s.channels(), vw = s.value_width();
  const int64_t per_layer = s.conv_floats() + s.ssm_floats();
  const int64_t n_layers = 2, layer = 1;
  const int64_t n = 4;  // run 0: tokens 0..2, run 1: token 3
  const auto mixed = test::random_vector(n * ch, 1);
  const auto ba = test::random_vector(n * 2 * s.v_heads, 2);
  const auto z = test::random_vector(n * vw, 3);
  const auto conv_w = test::random_vector(s.conv_kernel * ch, 4, 0.5f);
  const auto dt_bias = test::random_vector(s.v_heads, 5, 0.5f);
  auto a = test::random_vector(s.v_heads, 6, 0.5f);
  for (float& x : a) x = -std::exp(x);
  const auto norm_w = test::random_vector(s.v_dim, 7, 0.2f, 1.0f);
  std::vector<std::vector<float>> states = {test::random_vector(n_layers * per_layer, 8, 0.3f),
                                            test::random_vector(n_layers * per_layer, 9, 0.3f)};

  std::vector<float> want_core(static_cast<size_t>(n * vw));
  std::vector<std::vector<float>> want_states = states;
  reference_run(s, mixed, ba, z, conv_w, dt_bias, a, norm_w, 0, 3,
                want_states[0].data() + layer * per_layer, want_core);
  reference_run(s, mixed, ba, z, conv_w, dt_bias, a, norm_w, 3, 1,
                want_states[1].data() + layer * per_layer, want_core);

  DeviceArray<float> st0(states[0]), st1(states[1]);
  DeviceArray<float*> drec(std::vector<float*>{st0.get(), st1.get()});
  DeviceArray<int32_t> dpos(std::vector<int32_t>{5, 6, 7, 2}),
      drun(std::vector<int32_t>{0, 0, 0, 1}), dbegin(std::vector<int32_t>{0, 3}),
      dcount(std::vector<int32_t>{3, 1});
  DeviceBatch b;
  b.n_tokens = n;
  b.n_runs = 2;
  b.positions = dpos.get();
  b.token_run = drun.get();
  b.run_begin = dbegin.get();
  b.run_count = dcount.get();
  b.recurrent = drec.get();
  DeviceArray<float> dmixed(mixed), dba(ba), dz(z), dconvw(conv_w), ddt(dt_bias), da(a),
      dnorm(norm_w), dy(static_cast<size_t>(n * ch)), dcore(static_cast<size_t>(n * vw));
  deltanet_conv_cuda(s, b, layer, dmixed.get(), dconvw.get(), dy.get(), nullptr);
  deltanet_recurrent_cuda(s, b, layer, dy.get(), dba.get(), dz.get(), ddt.get(), da.get(),
                          dnorm.get(), dcore.get(), nullptr);

  // f32 on both sides with different summation orders (block reductions vs sequential loops) and
  // expf/log1pf ulps; outputs are of unit scale after the norm: 2e-4 absolute.
  const auto got = dcore.download();
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_FALSE(std::isnan(got[i])) << "core output " << i << " not written";
    ASSERT_NEAR(got[i], want_core[i], 2e-4) << "core output " << i;
  }
  EXPECT_LT(test::max_abs_diff(st0.download(), want_states[0]), 1e-4);
  EXPECT_LT(test::max_abs_diff(st1.download(), want_states[1]), 1e-4);
}

TEST(DeltaNetCuda, SmallHeadsMatchCpu) {
  if (!test::has_gpu()) GTEST_SKIP() << "no CUDA device";
  run_case(DeltaNetShape{2, 4, 32, 16, 4, 1e-6f});
  run_case(DeltaNetShape{1, 3, 48, 40, 3, 1e-6f});
}

TEST(DeltaNetCuda, Qwen3Next80bHeadsMatchCpu) {
  if (!test::has_gpu()) GTEST_SKIP() << "no CUDA device";
  run_case(DeltaNetShape{16, 32, 128, 128, 4, 1e-6f});
}

TEST(DeltaNetCuda, UngroupMatchesLayout) {
  if (!test::has_gpu()) GTEST_SKIP() << "no CUDA device";
  const DeltaNetShape s{2, 4, 8, 4, 4, 1e-6f};
  const int64_t n = 3, kd = s.k_dim, gv = 2 * s.v_dim, group = 2 * kd + 2 * gv;
  const auto proj = test::random_vector(n * s.k_heads * group, 11);
  std::vector<float> mixed(static_cast<size_t>(n * s.channels())),
      z(static_cast<size_t>(n * s.value_width()));
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t g = 0; g < s.k_heads; ++g) {
      const float* src = proj.data() + (t * s.k_heads + g) * group;
      for (int64_t i = 0; i < kd; ++i) {
        mixed[t * s.channels() + g * kd + i] = src[i];
        mixed[t * s.channels() + s.key_width() + g * kd + i] = src[kd + i];
      }
      for (int64_t i = 0; i < gv; ++i) {
        mixed[t * s.channels() + 2 * s.key_width() + g * gv + i] = src[2 * kd + i];
        z[t * s.value_width() + g * gv + i] = src[2 * kd + gv + i];
      }
    }
  }
  DeviceArray<float> dproj(proj), dmixed(mixed.size()), dz(z.size());
  deltanet_ungroup_cuda(s, dproj.get(), n, dmixed.get(), dz.get(), nullptr);
  EXPECT_EQ(dmixed.download(), mixed);
  EXPECT_EQ(dz.download(), z);
}

}  // namespace
}  // namespace moerun
