// CpuMoeDispatcher against a double-precision reference over dequantised expert weights, for
// several batch sizes, formats and repeated calls (scratch reuse).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/error.h"
#include "core/quant.h"
#include "core/thread_pool.h"
#include "moe/moe_dispatcher.h"

namespace moerun {
namespace {

// A stacked expert tensor {cols, rows, n} in `type`, and its dequantised values.
struct Stacked {
  std::vector<uint8_t> bytes;
  std::vector<float> deq;  // [n, rows, cols]
  Tensor view;
};

Stacked make_stacked(DType type, int64_t cols, int64_t rows, int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f / std::sqrt(float(cols)));
  Stacked s;
  const int64_t rb = row_bytes(type, cols);
  s.bytes.resize(static_cast<size_t>(rb * rows * n));
  s.deq.resize(static_cast<size_t>(cols * rows * n));
  std::vector<float> row(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows * n; ++r) {
    for (float& v : row) v = normal(rng);
    quantize_row(type, row.data(), s.bytes.data() + r * rb, cols);
    dequantize_row(type, s.bytes.data() + r * rb, s.deq.data() + r * cols, cols);
  }
  s.view.type = type;
  s.view.n_dims = 3;
  s.view.ne = {cols, rows, n, 1};
  s.view.data = s.bytes.data();
  return s;
}

void check(DType type, double tolerance) {
  const int64_t hidden = 64, ffn = 96, n_experts = 6, top_k = 2;
  const Stacked gate = make_stacked(type, hidden, ffn, n_experts, 1);
  const Stacked up = make_stacked(type, hidden, ffn, n_experts, 2);
  const Stacked down = make_stacked(type, ffn, hidden, n_experts, 3);
  ThreadPool pool(2, false);
  // Two layers: layer 1 swaps gate and up, so the layer index must be honoured.
  CpuMoeDispatcher d(
      {LayerExperts{gate.view, up.view, down.view}, LayerExperts{up.view, gate.view, down.view}},
      pool);
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int64_t layer : {0, 1}) {
    for (int64_t n : {1, 5, 37, 3}) {
      std::vector<float> x(static_cast<size_t>(n * hidden));
      for (float& v : x) v = normal(rng);
      std::vector<int32_t> ids(static_cast<size_t>(n * top_k));
      std::vector<float> w(ids.size());
      for (int64_t t = 0; t < n; ++t) {
        ids[t * top_k] = static_cast<int32_t>(rng() % n_experts);
        ids[t * top_k + 1] =
            static_cast<int32_t>((ids[t * top_k] + 1 + rng() % (n_experts - 1)) % n_experts);
        w[t * top_k] = 0.7f;
        w[t * top_k + 1] = 0.3f;
      }
      std::vector<float> out(x.size(), 123.0f);  // overwritten, not accumulated into
      d.run(layer, x.data(), n, ids.data(), w.data(), top_k, out.data());
      const Stacked& g = layer == 0 ? gate : up;
      const Stacked& u = layer == 0 ? up : gate;
      double worst = 0, scale = 0;
      for (int64_t t = 0; t < n; ++t) {
        std::vector<double> ref(static_cast<size_t>(hidden), 0.0);
        for (int64_t k = 0; k < top_k; ++k) {
          const int64_t e = ids[t * top_k + k];
          std::vector<double> act(static_cast<size_t>(ffn));
          for (int64_t r = 0; r < ffn; ++r) {
            double gv = 0, uv = 0;
            for (int64_t i = 0; i < hidden; ++i) {
              gv += double(g.deq[(e * ffn + r) * hidden + i]) * x[t * hidden + i];
              uv += double(u.deq[(e * ffn + r) * hidden + i]) * x[t * hidden + i];
            }
            act[r] = gv / (1 + std::exp(-gv)) * uv;
          }
          for (int64_t r = 0; r < hidden; ++r) {
            double acc = 0;
            for (int64_t i = 0; i < ffn; ++i) acc += down.deq[(e * hidden + r) * ffn + i] * act[i];
            ref[r] += w[t * top_k + k] * acc;
          }
        }
        for (int64_t r = 0; r < hidden; ++r) {
          worst = std::max(worst, std::abs(ref[r] - out[t * hidden + r]));
          scale = std::max(scale, std::abs(ref[r]));
        }
      }
      EXPECT_LT(worst, tolerance * scale) << dtype_name(type) << " layer " << layer << " n " << n;
    }
  }
}

// f32 weights: 1e-5 of the largest output; q8_0 (8-bit activations in the kernel): 3%.
TEST(CpuMoeDispatcher, MatchesReferenceF32) {
  check(DType::F32, 1e-5);
}

TEST(CpuMoeDispatcher, MatchesReferenceQ8_0) {
  check(DType::Q8_0, 0.03);
}

// A mask splits the work (as the hybrid dispatcher splits it between CPU and GPU): the masked run
// and the run of the complement add up to the full run, and an all-clear mask writes zeros.
TEST(CpuMoeDispatcher, MaskedRunsAddUpToTheFullRun) {
  const int64_t hidden = 64, ffn = 96, n_experts = 6, top_k = 2, n = 9;
  const Stacked gate = make_stacked(DType::F32, hidden, ffn, n_experts, 1);
  const Stacked up = make_stacked(DType::F32, hidden, ffn, n_experts, 2);
  const Stacked down = make_stacked(DType::F32, ffn, hidden, n_experts, 3);
  ThreadPool pool(2, false);
  CpuMoeDispatcher d({LayerExperts{gate.view, up.view, down.view}}, pool);
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n * hidden));
  for (float& v : x) v = normal(rng);
  std::vector<int32_t> ids(static_cast<size_t>(n * top_k));
  std::vector<float> w(ids.size());
  std::vector<uint8_t> mask(ids.size()), complement(ids.size()), none(ids.size(), 0);
  for (size_t i = 0; i < ids.size(); ++i) {
    ids[i] = static_cast<int32_t>((i % 2 == 0 ? i / 2 : i / 2 + 3) % n_experts);
    w[i] = i % 2 == 0 ? 0.6f : 0.4f;
    mask[i] = static_cast<uint8_t>(rng() % 2);
    complement[i] = static_cast<uint8_t>(1 - mask[i]);
  }
  std::vector<float> full(x.size()), a(x.size()), b(x.size()), zero(x.size(), 5.0f);
  d.run(0, x.data(), n, ids.data(), w.data(), top_k, full.data());
  d.run_masked(0, x.data(), n, ids.data(), w.data(), top_k, mask.data(), a.data());
  d.run_masked(0, x.data(), n, ids.data(), w.data(), top_k, complement.data(), b.data());
  d.run_masked(0, x.data(), n, ids.data(), w.data(), top_k, none.data(), zero.data());
  double worst = 0, scale = 0;
  for (size_t i = 0; i < full.size(); ++i) {
    worst = std::max(worst, std::abs(double(a[i]) + b[i] - full[i]));
    scale = std::max(scale, std::abs(double(full[i])));
    ASSERT_EQ(zero[i], 0.0f);
  }
  EXPECT_LT(worst, 1e-6 * scale);
}

TEST(CpuMoeDispatcher, RejectsMismatchedExperts) {
  const Stacked gate = make_stacked(DType::F32, 64, 32, 4, 1);
  const Stacked down = make_stacked(DType::F32, 64, 32, 4, 2);  // should be {32, 64, 4}
  ThreadPool pool(1, false);
  EXPECT_THROW(CpuMoeDispatcher({LayerExperts{gate.view, gate.view, down.view}}, pool), Error);
}

}  // namespace
}  // namespace moerun
