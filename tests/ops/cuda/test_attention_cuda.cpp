// GPU attention (q/k norm, RoPE, KV cache write, split-key causal attention, output gate) against
// the CPU ops, for a batch of two sequences at different positions.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "../ops_test_util.h"
#include "gpu_test_util.h"
#include "ops/cpu/attention.h"
#include "ops/cpu/norms.h"
#include "ops/cpu/rope.h"
#include "ops/cuda/attention_cuda.h"

namespace moerun {
namespace {

using test::DeviceArray;

struct Case {
  int64_t n_heads, n_kv_heads, head_dim, rope_dims;
  bool gate;
  int64_t splits;
};

void run_case(const Case& c) {
  const AttentionShape s{c.n_heads, c.n_kv_heads, c.head_dim, c.rope_dims, 1e-6f, c.gate};
  const int64_t hd = c.head_dim, kvw = c.n_kv_heads * hd, qw = c.n_heads * hd;
  const int64_t n_layers = 2, layer = 1;
  // Sequence 0: 34 tokens cached, 3 new (positions 34..36); sequence 1: 3 cached, 2 new (3, 4).
  const int64_t cap[2] = {64, 16};
  const int64_t start[2] = {34, 3};
  const int64_t count[2] = {3, 2};
  const int64_t n = 5;
  const std::vector<int32_t> positions = {34, 35, 36, 3, 4};
  const std::vector<int32_t> token_run = {0, 0, 0, 1, 1};
  std::vector<std::vector<float>> cache(2);
  for (int r = 0; r < 2; ++r) {
    cache[r] = test::random_vector(n_layers * 2 * cap[r] * kvw, 10 + r);
  }
  const int64_t q_rows = qw * (c.gate ? 2 : 1);
  const auto q_proj = test::random_vector(n * q_rows, 20);
  const auto k = test::random_vector(n * kvw, 21);
  const auto v = test::random_vector(n * kvw, 22);
  const auto q_norm = test::random_vector(hd, 23, 0.2f, 1.0f);
  const auto k_norm = test::random_vector(hd, 24, 0.2f, 1.0f);
  std::vector<float> inv_freq(static_cast<size_t>(c.rope_dims / 2));
  rope_inv_freq(10000.0f, c.rope_dims, inv_freq.data());

  // CPU reference.
  std::vector<float> q(static_cast<size_t>(n * qw)), gate(q.size()), kk = k;
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t h = 0; h < c.n_heads; ++h) {
      const float* src = q_proj.data() + t * q_rows + h * hd * (c.gate ? 2 : 1);
      for (int64_t i = 0; i < hd; ++i) {
        q[(t * c.n_heads + h) * hd + i] = src[i];
        if (c.gate) gate[(t * c.n_heads + h) * hd + i] = src[hd + i];
      }
    }
  }
  const std::vector<int64_t> pos64(positions.begin(), positions.end());
  rms_norm(q.data(), q_norm.data(), n * c.n_heads, hd, 1e-6f, q.data());
  rms_norm(kk.data(), k_norm.data(), n * c.n_kv_heads, hd, 1e-6f, kk.data());
  rope_neox(q.data(), n, c.n_heads, hd, c.rope_dims, pos64.data(), inv_freq.data());
  rope_neox(kk.data(), n, c.n_kv_heads, hd, c.rope_dims, pos64.data(), inv_freq.data());
  std::vector<std::vector<float>> want_cache = cache;
  std::vector<const float*> keys(n), values(n);
  std::vector<int64_t> n_keys(n);
  for (int64_t t = 0; t < n; ++t) {
    const int r = token_run[t];
    float* kc = want_cache[r].data() + (2 * layer) * cap[r] * kvw;
    float* vc = want_cache[r].data() + (2 * layer + 1) * cap[r] * kvw;
    for (int64_t i = 0; i < kvw; ++i) {
      kc[positions[t] * kvw + i] = kk[t * kvw + i];
      vc[positions[t] * kvw + i] = v[t * kvw + i];
    }
    keys[t] = kc;
    values[t] = vc;
    n_keys[t] = positions[t] + 1;
  }
  std::vector<float> want(static_cast<size_t>(n * qw)), scores(64);
  causal_attention(AttentionDims{c.n_heads, c.n_kv_heads, hd}, q.data(), n, keys.data(),
                   values.data(), n_keys.data(), want.data(), scores.data(), 64, nullptr,
                   c.gate ? gate.data() : nullptr);

  // GPU.
  DeviceArray<float> c0(cache[0]), c1(cache[1]);
  const std::vector<float*> kv_ptrs = {c0.get(), c1.get()};
  DeviceArray<float*> dkv(kv_ptrs);
  DeviceArray<int32_t> dpos(positions), drun(token_run), dbegin(std::vector<int32_t>{0, 3}),
      dcount(std::vector<int32_t>{3, 2}),
      dcap(std::vector<int32_t>{static_cast<int32_t>(cap[0]), static_cast<int32_t>(cap[1])});
  DeviceBatch b;
  b.n_tokens = n;
  b.n_runs = 2;
  b.positions = dpos.get();
  b.token_run = drun.get();
  b.run_begin = dbegin.get();
  b.run_count = dcount.get();
  b.kv = dkv.get();
  b.capacity = dcap.get();
  DeviceArray<float> dqp(q_proj), dk(k), dv(v), dqn(q_norm), dkn(k_norm), dfreq(inv_freq);
  DeviceArray<float> dq(q.size()), dgate(q.size()), dout(want.size());
  DeviceArray<float> ws(static_cast<size_t>(attention_workspace_floats(s, n, c.splits)));
  attention_prepare_cuda(s, b, layer, dqp.get(), dk.get(), dv.get(), dqn.get(), dkn.get(),
                         dfreq.get(), dq.get(), c.gate ? dgate.get() : nullptr, nullptr);
  attention_cuda(s, b, layer, dq.get(), c.gate ? dgate.get() : nullptr, c.splits, ws.get(),
                 dout.get(), nullptr);

  // Prepared queries and caches: same f32 formulas up to summation order and cosf/sinf ulps.
  const auto got_q = dq.download();
  EXPECT_LT(test::max_abs_diff(got_q, q), 1e-4);
  const auto got_c0 = c0.download();
  const auto got_c1 = c1.download();
  EXPECT_LT(test::max_abs_diff(got_c0, want_cache[0]), 1e-4);
  EXPECT_LT(test::max_abs_diff(got_c1, want_cache[1]), 1e-4);
  // Attention outputs are convex combinations of unit-scale values: 1e-4 absolute covers the
  // reordered f32 softmax sums and the inputs' own 1e-4 differences.
  const auto got = dout.download();
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_FALSE(std::isnan(got[i])) << "output " << i << " not written";
    ASSERT_NEAR(got[i], want[i], 1e-4) << "output " << i;
  }
  (void)start;
  (void)count;
}

TEST(AttentionCuda, GatedPartialRopeMatchesCpu) {
  if (!test::has_gpu()) GTEST_SKIP() << "no CUDA device";
  run_case(Case{4, 2, 64, 16, true, 1});
  run_case(Case{4, 2, 64, 16, true, 7});
  run_case(Case{16, 2, 256, 64, true, 32});  // Qwen3-Next-80B geometry
}

TEST(AttentionCuda, PlainFullRopeMatchesCpu) {
  if (!test::has_gpu()) GTEST_SKIP() << "no CUDA device";
  run_case(Case{8, 4, 128, 128, false, 3});  // Qwen3-MoE style
  run_case(Case{2, 1, 16, 16, false, 64});   // tiny heads, more splits than keys
}

}  // namespace
}  // namespace moerun
