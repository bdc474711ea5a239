// Causal GQA attention over a cache against a double-precision reference, with and without a pool.
#include "ops/cpu/attention.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/thread_pool.h"
#include "ops_test_util.h"

namespace moerun {
namespace {

// Reference for one query row of one head.
std::vector<double> reference(const AttentionDims& d, const float* q, const float* k,
                              const float* v, int64_t n_keys, int64_t h) {
  const int64_t kvh = h / (d.n_heads / d.n_kv_heads);
  const int64_t stride = d.n_kv_heads * d.head_dim;
  std::vector<double> s(static_cast<size_t>(n_keys));
  double mx = -1e300;
  for (int64_t j = 0; j < n_keys; ++j) {
    double acc = 0;
    for (int64_t i = 0; i < d.head_dim; ++i)
      acc += double(q[i]) * k[j * stride + kvh * d.head_dim + i];
    s[j] = acc / std::sqrt(double(d.head_dim));
    mx = std::max(mx, s[j]);
  }
  double sum = 0;
  for (double& x : s) sum += (x = std::exp(x - mx));
  std::vector<double> out(static_cast<size_t>(d.head_dim), 0.0);
  for (int64_t j = 0; j < n_keys; ++j) {
    for (int64_t i = 0; i < d.head_dim; ++i)
      out[i] += s[j] / sum * v[j * stride + kvh * d.head_dim + i];
  }
  return out;
}

// Two sequences with their own caches; query tokens at the ends of each (causal: key count =
// position + 1). Tolerance 1e-5 absolute on outputs of unit scale. A scores stride of 2 or 4 times
// the longest context lets the AVX-512 path run 2 or 4 heads per task.
void check(ThreadPool* pool, int64_t stride = 40) {
  const AttentionDims d{8, 2, 64};
  const int64_t ctx0 = 37, ctx1 = 5;
  const int64_t kv_stride = d.n_kv_heads * d.head_dim;
  const auto k0 = test::random_vector(ctx0 * kv_stride, 1);
  const auto v0 = test::random_vector(ctx0 * kv_stride, 2);
  const auto k1 = test::random_vector(ctx1 * kv_stride, 3);
  const auto v1 = test::random_vector(ctx1 * kv_stride, 4);
  // Queries: three new tokens of sequence 0 (positions 34..36), two of sequence 1 (3, 4).
  const int64_t n_q = 5;
  const auto q = test::random_vector(n_q * d.n_heads * d.head_dim, 5, 0.3f);
  const float* keys[] = {k0.data(), k0.data(), k0.data(), k1.data(), k1.data()};
  const float* values[] = {v0.data(), v0.data(), v0.data(), v1.data(), v1.data()};
  const int64_t n_keys[] = {35, 36, 37, 4, 5};
  std::vector<float> out(q.size());
  const int threads = pool ? pool->size() : 1;
  std::vector<float> scores(static_cast<size_t>(threads * stride));
  causal_attention(d, q.data(), n_q, keys, values, n_keys, out.data(), scores.data(), stride, pool);
  double worst = 0;
  for (int64_t t = 0; t < n_q; ++t) {
    for (int64_t h = 0; h < d.n_heads; ++h) {
      const int64_t off = (t * d.n_heads + h) * d.head_dim;
      const auto ref = reference(d, q.data() + off, keys[t], values[t], n_keys[t], h);
      for (int64_t i = 0; i < d.head_dim; ++i) {
        worst = std::max(worst, std::abs(ref[i] - out[off + i]));
      }
    }
  }
  EXPECT_LT(worst, 1e-5);
}

TEST(Attention, MatchesReferenceSingleThread) {
  check(nullptr);
}

TEST(Attention, MatchesReferenceOnPool) {
  ThreadPool pool(2, false);
  check(&pool);
}

TEST(Attention, MatchesReferenceWithSeveralHeadsPerTask) {
  ThreadPool pool(2, false);
  for (int64_t stride : {80, 160}) check(&pool, stride);
  check(nullptr, 160);
}

// The fused output gate equals the ungated result times sigmoid(gate), on a pool; head_dim 32 runs
// the portable path, 64 the AVX-512 one where the CPU has it.
TEST(Attention, OutputGateMultipliesBySigmoid) {
  for (int64_t hd : {32, 64}) {
    const AttentionDims d{4, 2, hd};
    const int64_t ctx = 9, kv_stride = d.n_kv_heads * d.head_dim, width = d.n_heads * d.head_dim;
    const auto k = test::random_vector(ctx * kv_stride, 11);
    const auto v = test::random_vector(ctx * kv_stride, 12);
    const auto q = test::random_vector(2 * width, 13, 0.3f);
    const auto gate = test::random_vector(2 * width, 14, 3.0f);
    const float* keys[] = {k.data(), k.data()};
    const float* values[] = {v.data(), v.data()};
    const int64_t n_keys[] = {8, 9};
    ThreadPool pool(2, false);
    std::vector<float> plain(q.size()), gated(q.size()), scores(2 * 16);
    causal_attention(d, q.data(), 2, keys, values, n_keys, plain.data(), scores.data(), 16, &pool);
    causal_attention(d, q.data(), 2, keys, values, n_keys, gated.data(), scores.data(), 16, &pool,
                     gate.data());
    for (size_t i = 0; i < q.size(); ++i) {
      EXPECT_NEAR(gated[i], plain[i] / (1.0f + std::exp(-gate[i])), 1e-6f) << hd << " " << i;
    }
  }
}

TEST(Attention, OneKeyReturnsItsValue) {
  const AttentionDims d{2, 1, 16};
  const auto k = test::random_vector(16, 6), v = test::random_vector(16, 7);
  const auto q = test::random_vector(32, 8, 10.0f);
  const float* keys[] = {k.data()};
  const float* values[] = {v.data()};
  const int64_t n_keys[] = {1};
  std::vector<float> out(32), scores(4);
  causal_attention(d, q.data(), 1, keys, values, n_keys, out.data(), scores.data(), 4, nullptr);
  for (int i = 0; i < 16; ++i) {
    EXPECT_FLOAT_EQ(out[i], v[i]);
    EXPECT_FLOAT_EQ(out[16 + i], v[i]);
  }
}

}  // namespace
}  // namespace moerun
