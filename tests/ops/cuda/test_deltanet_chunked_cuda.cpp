// The chunked gated delta rule on the GPU against the CPU ops (gates, L2 norms, recurrent delta
// rule, gated RMSNorm) and against the GPU's recurrent kernel: runs of 1 to 513 tokens (partial
// chunks), several runs per batch, states continuing from non-zero values, checked after the run.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <vector>

#include "../ops_test_util.h"
#include "deltanet_reference.h"
#include "gpu_test_util.h"
#include "ops/cuda/deltanet_chunked_cuda.h"
#include "ops/cuda/deltanet_cuda.h"

namespace moerun {
namespace {

using test::DeviceArray;

constexpr int64_t kLayers = 2;
constexpr int64_t kLayer = 1;

// Tolerance, relative to 1 + |expected|: both sides are f32, but the chunked form sums in another
// order (products over k_dim in blocks, a triangular solve over up to 32 rows, state updates once
// per chunk) and decays by exp(G_s - G_r) of cumulative log decays instead of a product of
// per-token expf (error about |G| * 2^-24 relative); a CPU prototype of the same algorithm
// differed from the recurrent form by about 1e-6 relative over 513 tokens. The gated RMSNorm
// rescales o to unit size, so 1e-4 leaves room for rows with a small rms.
constexpr double kTolerance = 1e-4;

// Inputs of one layer step: conv output, gate inputs, z, weights, and one state per run.
struct Inputs {
  std::vector<float> conv;                 // [n, channels] conv + SiLU output
  std::vector<float> ba;                   // [n, 2 v_heads]
  std::vector<float> z;                    // [n, value_width]
  std::vector<float> dt_bias;              // [v_heads]
  std::vector<float> a;                    // [v_heads] -exp(A_log) * decay_scale
  std::vector<float> norm_w;               // [v_dim]
  std::vector<std::vector<float>> states;  // per run [kLayers, conv + ssm floats]
};

// Random inputs for n tokens and `runs` states; decay_scale < 1 gives long memory (slow decay).
Inputs make_inputs(const DeltaNetShape& s, int64_t n, size_t runs, float decay_scale,
                   float state_scale, uint32_t seed) {
  Inputs in;
  in.conv = test::random_vector(n * s.channels(), seed + 1);
  in.ba = test::random_vector(n * 2 * s.v_heads, seed + 2);
  in.z = test::random_vector(n * s.value_width(), seed + 3);
  in.dt_bias = test::random_vector(s.v_heads, seed + 4, 0.5f);
  in.a = test::random_vector(s.v_heads, seed + 5, 0.5f);
  for (float& x : in.a) x = -std::exp(x) * decay_scale;
  in.norm_w = test::random_vector(s.v_dim, seed + 6, 0.2f, 1.0f);
  const int64_t per_layer = s.conv_floats() + s.ssm_floats();
  for (size_t r = 0; r < runs; ++r) {
    in.states.push_back(
        test::random_vector(kLayers * per_layer, seed + 10 + static_cast<uint32_t>(r), 1.0f));
    for (float& x : in.states.back()) x *= state_scale;
  }
  return in;
}

// CPU reference of tokens [begin, begin + count) on `state` (the layer's conv | ssm floats):
// gates, L2 norms (q / sqrt(k_dim)), the recurrent delta rule per value head, gated RMSNorm.
void reference_run(const DeltaNetShape& s, const Inputs& in, int64_t begin, int64_t count,
                   float* state, std::vector<float>& core) {
  const int64_t ch = s.channels();
  std::vector<float> y(in.conv.begin() + begin * ch, in.conv.begin() + (begin + count) * ch);
  test::reference_gated_delta_rule(s, y.data(), in.ba, in.z, in.dt_bias, in.a, in.norm_w, begin,
                                   count, state + s.conv_floats(), core);
}

using DeltaNetFn = void (*)(const DeltaNetShape&, const DeviceBatch&, int64_t, const float*,
                            const float*, const float*, const float*, const float*, const float*,
                            float*, cudaStream_t);

// One GPU call of `fn` over the runs (begin, count) of tokens [0, n) on copies of the states;
// returns core [n, value_width] (NaN where no run wrote) and updates `states`.
std::vector<float> run_gpu(DeltaNetFn fn, const DeltaNetShape& s, const Inputs& in, int64_t n,
                           const std::vector<int32_t>& begins, const std::vector<int32_t>& counts,
                           std::vector<std::vector<float>>& states) {
  std::vector<std::unique_ptr<DeviceArray<float>>> dstates;
  std::vector<float*> ptrs;
  for (const auto& st : states) {
    dstates.push_back(std::make_unique<DeviceArray<float>>(st));
    ptrs.push_back(dstates.back()->get());
  }
  std::vector<int32_t> token_run(static_cast<size_t>(n), 0);
  for (size_t r = 0; r < begins.size(); ++r) {
    for (int32_t t = begins[r]; t < begins[r] + counts[r]; ++t) {
      token_run[static_cast<size_t>(t)] = static_cast<int32_t>(r);
    }
  }
  DeviceArray<float*> drec(ptrs);
  DeviceArray<int32_t> dpos(std::vector<int32_t>(static_cast<size_t>(n), 0)), drun(token_run),
      dbegin(begins), dcount(counts);
  DeviceBatch b;
  b.n_tokens = n;
  b.n_runs = static_cast<int64_t>(begins.size());
  b.positions = dpos.get();
  b.token_run = drun.get();
  b.run_begin = dbegin.get();
  b.run_count = dcount.get();
  b.recurrent = drec.get();
  DeviceArray<float> dconv(in.conv), dba(in.ba), dz(in.z), ddt(in.dt_bias), da(in.a),
      dnorm(in.norm_w), dcore(static_cast<size_t>(n * s.value_width()));  // core starts as NaN
  fn(s, b, kLayer, dconv.get(), dba.get(), dz.get(), ddt.get(), da.get(), dnorm.get(), dcore.get(),
     nullptr);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  for (size_t r = 0; r < states.size(); ++r) states[r] = dstates[r]->download();
  return dcore.download();
}

// Expects got == want within kTolerance * (1 + |want|), and no NaN.
void expect_close(const std::vector<float>& got, const std::vector<float>& want, const char* what) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_FALSE(std::isnan(got[i])) << what << " " << i << " not written";
    ASSERT_NEAR(got[i], want[i], kTolerance * (1.0 + std::abs(want[i]))) << what << " " << i;
  }
}

// Runs of the given lengths in one batch: chunked vs CPU and vs the recurrent GPU kernel, outputs
// and states.
void run_case(const DeltaNetShape& s, const std::vector<int32_t>& lengths, float decay_scale,
              float state_scale, uint32_t seed) {
  std::vector<int32_t> begins;
  int32_t n = 0;
  for (const int32_t len : lengths) {
    begins.push_back(n);
    n += len;
  }
  const Inputs in = make_inputs(s, n, lengths.size(), decay_scale, state_scale, seed);
  const int64_t per_layer = s.conv_floats() + s.ssm_floats();

  std::vector<float> want_core(static_cast<size_t>(n * s.value_width()));
  std::vector<std::vector<float>> want_states = in.states;
  for (size_t r = 0; r < lengths.size(); ++r) {
    reference_run(s, in, begins[r], lengths[r], want_states[r].data() + kLayer * per_layer,
                  want_core);
  }
  std::vector<std::vector<float>> chunked_states = in.states, recurrent_states = in.states;
  const auto chunked = run_gpu(&deltanet_chunked_cuda, s, in, n, begins, lengths, chunked_states);
  const auto recurrent =
      run_gpu(&deltanet_recurrent_cuda, s, in, n, begins, lengths, recurrent_states);

  SCOPED_TRACE(testing::Message() << "k_dim " << s.k_dim << " v_dim " << s.v_dim << " heads "
                                  << s.k_heads << "/" << s.v_heads << " decay " << decay_scale);
  expect_close(chunked, want_core, "core vs cpu");
  expect_close(chunked, recurrent, "core vs recurrent gpu");
  for (size_t r = 0; r < lengths.size(); ++r) {
    SCOPED_TRACE(testing::Message() << "run " << r << " of " << lengths[r] << " tokens");
    expect_close(chunked_states[r], want_states[r], "state vs cpu");
    expect_close(chunked_states[r], recurrent_states[r], "state vs recurrent gpu");
  }
}

const std::vector<int32_t> kLengths = {1, 5, 64, 65, 200, 513};

TEST(DeltaNetChunkedCuda, SmallHeadsMatchCpuAndRecurrent) {
  if (!test::has_gpu()) GTEST_SKIP() << "no CUDA device";
  // Ratio 2, k_dim 64, v_dim 32 (one column tile).
  run_case(DeltaNetShape{2, 4, 64, 32, 4, 1e-6f}, kLengths, 1.0f, 0.3f, 100);
  // Ratio 1, k_dim 128, v_dim 128 (four tiles).
  run_case(DeltaNetShape{2, 2, 128, 128, 4, 1e-6f}, kLengths, 1.0f, 0.3f, 200);
  // Odd sizes: k_dim 48 (padded to 64), v_dim 40 (a partial tile), ratio 3.
  run_case(DeltaNetShape{1, 3, 48, 40, 4, 1e-6f}, kLengths, 1.0f, 0.3f, 300);
}

TEST(DeltaNetChunkedCuda, SlowDecayAndZeroStateMatch) {
  if (!test::has_gpu()) GTEST_SKIP() << "no CUDA device";
  // Decays near 1 carry the state across many chunks (the state grows).
  run_case(DeltaNetShape{2, 4, 64, 32, 4, 1e-6f}, kLengths, 0.01f, 0.3f, 400);
  run_case(DeltaNetShape{1, 2, 128, 128, 4, 1e-6f}, {513, 70}, 0.01f, 0.3f, 500);
  // A fresh sequence: state zero.
  run_case(DeltaNetShape{2, 4, 64, 32, 4, 1e-6f}, {1, 65, 200}, 1.0f, 0.0f, 600);
}

TEST(DeltaNetChunkedCuda, Qwen3Next80bHeadsMatch) {
  if (!test::has_gpu()) GTEST_SKIP() << "no CUDA device";
  run_case(DeltaNetShape{16, 32, 128, 128, 4, 1e-6f}, {513, 1, 37}, 1.0f, 0.3f, 700);
}

TEST(DeltaNetChunkedCuda, WideKeysFallBackToRecurrent) {
  if (!test::has_gpu()) GTEST_SKIP() << "no CUDA device";
  run_case(DeltaNetShape{1, 2, 256, 64, 4, 1e-6f}, {1, 40}, 1.0f, 0.3f, 800);
}

// A prompt processed in two calls (100 then 113 tokens) equals one pass of 213 tokens; the second
// call's batch covers only its own tokens and leaves the others' core rows alone.
TEST(DeltaNetChunkedCuda, ContinuesAcrossCalls) {
  if (!test::has_gpu()) GTEST_SKIP() << "no CUDA device";
  const DeltaNetShape s{2, 4, 64, 64, 4, 1e-6f};
  const int32_t n = 213;
  const Inputs in = make_inputs(s, n, 1, 1.0f, 0.3f, 900);
  const int64_t per_layer = s.conv_floats() + s.ssm_floats();
  std::vector<float> want_core(static_cast<size_t>(n * s.value_width()));
  std::vector<std::vector<float>> want_states = in.states;
  reference_run(s, in, 0, n, want_states[0].data() + kLayer * per_layer, want_core);

  std::vector<std::vector<float>> states = in.states;
  const auto first = run_gpu(&deltanet_chunked_cuda, s, in, n, {0}, {100}, states);
  const auto second = run_gpu(&deltanet_chunked_cuda, s, in, n, {100}, {113}, states);
  const auto vw = static_cast<size_t>(s.value_width());
  for (size_t i = 0; i < first.size(); ++i) {
    const bool in_first = i < 100 * vw;
    // Rows outside a call's run stay NaN (the poison).
    ASSERT_EQ(std::isnan(first[i]), !in_first) << i;
    ASSERT_EQ(std::isnan(second[i]), in_first) << i;
  }
  std::vector<float> got(first.begin(), first.begin() + 100 * static_cast<ptrdiff_t>(vw));
  got.insert(got.end(), second.begin() + 100 * static_cast<ptrdiff_t>(vw), second.end());
  expect_close(got, want_core, "core");
  expect_close(states[0], want_states[0], "state");
}

}  // namespace
}  // namespace moerun
