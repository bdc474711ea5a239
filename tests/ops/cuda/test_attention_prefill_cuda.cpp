// Tiled prefill attention on the GPU against the CPU causal_attention reference (the same op that
// checks attention_cuda) and against attention_cuda itself: head dims 16..256 (also ones that are
// not multiples of 32 or 4), GQA ratios 1..16, runs of 1..300 tokens, runs continuing a sequence,
// several runs per batch, with and without the output gate.
//
// Tolerance: |gpu - cpu| <= 1e-5 * (1 + |cpu|). Inputs are N(0, 1), so scores q.k / sqrt(head_dim)
// are about N(0, q_scale^2); the f32 rounding of a dot product of head_dim terms is ~1e-7 of that
// (a few 1e-6 in the worst case), which moves each softmax weight by that relative amount; the
// output is a convex combination of values |v| < 6 summed over <= 550 keys in a different order
// than the CPU (about sqrt(550) * 6e-8 relative, typically). Both effects are ~1e-6 absolute,
// ten times below the bound. Caches hold NaN everywhere the kernel must not read (other layer,
// positions past the run), and outputs start as NaN, so a skipped element or a stray read fails.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <memory>
#include <vector>

#include "../ops_test_util.h"
#include "gpu_test_util.h"
#include "ops/cpu/attention.h"
#include "ops/cuda/attention_cuda.h"
#include "ops/cuda/attention_prefill_cuda.h"

namespace moerun {
namespace {

using test::DeviceArray;

constexpr int64_t kLayers = 2;  // caches hold two attention layers; the test reads layer 1
constexpr int64_t kLayer = 1;

// One sequence's run in the batch: `count` new tokens at positions start, start + 1, ...
struct Run {
  int64_t start, count;
};

struct Case {
  int64_t n_heads, n_kv_heads, head_dim;
  bool gate;
  std::vector<Run> runs;
  float q_scale = 1.0f;  // larger: sharper softmax (tests the running-max rescaling)
};

// Host inputs, the CPU reference output and the same inputs on the device.
struct Problem {
  AttentionShape shape;
  int64_t n = 0;
  std::vector<float> q, gate, want;  // [n, n_heads, head_dim]
  std::vector<std::unique_ptr<DeviceArray<float>>> caches;
  std::unique_ptr<DeviceArray<float*>> kv;
  std::unique_ptr<DeviceArray<int32_t>> positions, token_run, run_begin, run_count, capacity;
  std::unique_ptr<DeviceArray<float>> dq, dgate;
  DeviceBatch batch;
};

std::unique_ptr<Problem> make_problem(const Case& c, uint32_t seed) {
  auto p = std::make_unique<Problem>();
  p->shape = AttentionShape{c.n_heads, c.n_kv_heads, c.head_dim, 0, 1e-6f, c.gate};
  const int64_t hd = c.head_dim, kvw = c.n_kv_heads * hd, qw = c.n_heads * hd;
  const auto n_runs = static_cast<int64_t>(c.runs.size());
  std::vector<int32_t> positions, token_run, run_begin, run_count, capacity;
  std::vector<std::vector<float>> caches(c.runs.size());
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (int64_t r = 0; r < n_runs; ++r) {
    const Run& run = c.runs[r];
    const int64_t cap = run.start + run.count + 3;  // 3 unused (NaN) positions at the end
    run_begin.push_back(static_cast<int32_t>(p->n));
    run_count.push_back(static_cast<int32_t>(run.count));
    capacity.push_back(static_cast<int32_t>(cap));
    for (int64_t i = 0; i < run.count; ++i) {
      positions.push_back(static_cast<int32_t>(run.start + i));
      token_run.push_back(static_cast<int32_t>(r));
    }
    p->n += run.count;
    // [kLayers, 2, cap, kvw]: keys and values of layer kLayer at positions [0, start + count) are
    // random (the cached prefix and this batch's own tokens), everything else NaN.
    std::vector<float>& cache = caches[r];
    cache.assign(static_cast<size_t>(kLayers * 2 * cap * kvw), nan);
    const int64_t filled = (run.start + run.count) * kvw;
    const auto k = test::random_vector(filled, seed + 100 + static_cast<uint32_t>(r));
    const auto v = test::random_vector(filled, seed + 200 + static_cast<uint32_t>(r));
    std::copy(k.begin(), k.end(), cache.begin() + 2 * kLayer * cap * kvw);
    std::copy(v.begin(), v.end(), cache.begin() + (2 * kLayer + 1) * cap * kvw);
  }
  const int64_t n = p->n;
  p->q = test::random_vector(n * qw, seed + 1, c.q_scale);
  p->gate = test::random_vector(n * qw, seed + 2);

  // CPU reference over the same caches.
  std::vector<const float*> keys(static_cast<size_t>(n)), values(keys.size());
  std::vector<int64_t> n_keys(keys.size());
  int64_t max_keys = 1;
  for (int64_t t = 0; t < n; ++t) {
    const int32_t r = token_run[t];
    const int64_t cap = capacity[r];
    keys[t] = caches[r].data() + 2 * kLayer * cap * kvw;
    values[t] = caches[r].data() + (2 * kLayer + 1) * cap * kvw;
    n_keys[t] = positions[t] + 1;
    max_keys = std::max(max_keys, n_keys[t]);
  }
  p->want.assign(static_cast<size_t>(n * qw), 0.0f);
  std::vector<float> scores(static_cast<size_t>(max_keys));
  causal_attention(AttentionDims{c.n_heads, c.n_kv_heads, hd}, p->q.data(), n, keys.data(),
                   values.data(), n_keys.data(), p->want.data(), scores.data(), max_keys, nullptr,
                   c.gate ? p->gate.data() : nullptr);

  // Device copies.
  std::vector<float*> kv_ptrs;
  for (const auto& cache : caches) {
    p->caches.push_back(std::make_unique<DeviceArray<float>>(cache));
    kv_ptrs.push_back(p->caches.back()->get());
  }
  p->kv = std::make_unique<DeviceArray<float*>>(kv_ptrs);
  p->positions = std::make_unique<DeviceArray<int32_t>>(positions);
  p->token_run = std::make_unique<DeviceArray<int32_t>>(token_run);
  p->run_begin = std::make_unique<DeviceArray<int32_t>>(run_begin);
  p->run_count = std::make_unique<DeviceArray<int32_t>>(run_count);
  p->capacity = std::make_unique<DeviceArray<int32_t>>(capacity);
  p->dq = std::make_unique<DeviceArray<float>>(p->q);
  p->dgate = std::make_unique<DeviceArray<float>>(p->gate);
  DeviceBatch& b = p->batch;
  b.n_tokens = n;
  b.n_runs = n_runs;
  b.positions = p->positions->get();
  b.token_run = p->token_run->get();
  b.run_begin = p->run_begin->get();
  b.run_count = p->run_count->get();
  b.kv = p->kv->get();
  b.capacity = p->capacity->get();
  return p;
}

// attention_prefill_cuda's output [n, n_heads, head_dim] (the buffer starts as NaN).
std::vector<float> run_prefill(const Problem& p) {
  DeviceArray<float> out(p.want.size());
  attention_prefill_cuda(p.shape, p.batch, kLayer, p.dq->get(),
                         p.shape.output_gate ? p.dgate->get() : nullptr, out.get(), nullptr);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
  return out.download();
}

// Checks got against want within 1e-5 * (1 + |want|) and reports the largest error.
void expect_close(const std::vector<float>& got, const std::vector<float>& want, const char* what) {
  ASSERT_EQ(got.size(), want.size());
  double worst = 0.0;
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_FALSE(std::isnan(got[i])) << what << ": output " << i << " not written";
    const double err = std::abs(static_cast<double>(got[i]) - want[i]);
    ASSERT_LE(err, 1e-5 * (1.0 + std::abs(want[i]))) << what << ": output " << i;
    worst = std::max(worst, err);
  }
  std::printf("  %s: %zu outputs, max |error| %.3g\n", what, got.size(), worst);
}

void run_case(const Case& c) {
  SCOPED_TRACE(testing::Message() << "heads " << c.n_heads << "/" << c.n_kv_heads << " head_dim "
                                  << c.head_dim << " gate " << c.gate << " runs " << c.runs.size());
  const auto p = make_problem(c, 7);
  expect_close(run_prefill(*p), p->want, "prefill vs CPU");
}

TEST(AttentionPrefillCuda, HeadDimsAndGqaRatios) {
  if (!test::has_gpu()) GTEST_SKIP() << "no CUDA device";
  run_case(Case{4, 4, 64, true, {{0, 17}}});      // GQA 1: 64 tokens per tile
  run_case(Case{8, 4, 128, false, {{0, 100}}});   // GQA 2
  run_case(Case{16, 2, 256, true, {{0, 300}}});   // Qwen3-Next-80B geometry, GQA 8
  run_case(Case{8, 1, 128, true, {{0, 17}}});     // GQA 8 at head_dim 128
  run_case(Case{16, 1, 256, false, {{0, 100}}});  // GQA 16: 4 tokens per tile
  run_case(Case{64, 1, 64, true, {{0, 33}}});     // GQA 64: one token per tile
}

TEST(AttentionPrefillCuda, OddShapes) {
  if (!test::has_gpu()) GTEST_SKIP() << "no CUDA device";
  run_case(Case{2, 1, 16, false, {{0, 1}}});           // one token, tiny head
  run_case(Case{6, 2, 80, true, {{3, 33}, {70, 2}}});  // GQA 3 (21 tokens, one padding row)
  run_case(Case{16, 1, 50, true, {{130, 65}}});        // head_dim not a multiple of 4
  run_case(Case{3, 3, 200, false, {{0, 70}}});         // head_dim 200 padded to 256
}

TEST(AttentionPrefillCuda, ContinuedRunsInOneBatch) {
  if (!test::has_gpu()) GTEST_SKIP() << "no CUDA device";
  // Runs continuing their sequences (cached keys before the first token), a decode token among
  // prompt chunks, tiles that end mid-run.
  run_case(Case{16, 2, 256, true, {{40, 17}, {7, 1}, {0, 100}, {250, 300}}});
  run_case(Case{4, 4, 64, false, {{5, 300}, {0, 1}}});
  run_case(Case{8, 2, 128, true, {{1, 1}, {63, 17}, {64, 65}}});
}

TEST(AttentionPrefillCuda, SharpSoftmax) {
  if (!test::has_gpu()) GTEST_SKIP() << "no CUDA device";
  // Scores of standard deviation 4: the running max changes often and by a lot.
  run_case(Case{16, 2, 256, true, {{0, 100}, {64, 40}}, 4.0f});
  run_case(Case{4, 2, 64, false, {{10, 200}}, 4.0f});
}

TEST(AttentionPrefillCuda, AgreesWithSplitKernel) {
  if (!test::has_gpu()) GTEST_SKIP() << "no CUDA device";
  for (const Case& c : {Case{16, 2, 256, true, {{0, 17}, {64, 300}, {3, 1}}},
                        Case{8, 4, 128, false, {{20, 100}}}}) {
    const auto p = make_problem(c, 11);
    const auto prefill = run_prefill(*p);
    for (const int64_t splits : {1, 8}) {
      DeviceArray<float> ws(
          static_cast<size_t>(attention_workspace_floats(p->shape, p->n, splits)));
      DeviceArray<float> out(p->want.size());
      attention_cuda(p->shape, p->batch, kLayer, p->dq->get(), c.gate ? p->dgate->get() : nullptr,
                     splits, ws.get(), out.get(), nullptr);
      EXPECT_EQ(cudaGetLastError(), cudaSuccess);
      expect_close(prefill, out.download(), "prefill vs attention_cuda");
    }
  }
}

}  // namespace
}  // namespace moerun
