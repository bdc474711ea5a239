// GPU norms, elementwise steps and the router against the CPU ops on random inputs.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "../ops_test_util.h"
#include "gpu_test_util.h"
#include "ops/cpu/activations.h"
#include "ops/cpu/norms.h"
#include "ops/cpu/router.h"
#include "ops/cuda/elementwise_cuda.h"
#include "ops/cuda/norms_cuda.h"
#include "ops/cuda/router_cuda.h"

namespace moerun {
namespace {

using test::DeviceArray;

// The GPU sums squares in another order than the CPU: relative differences of a few f32 ulps per
// element (1e-5 relative to the row's largest value is far above that and far below a real bug).
void expect_close(const std::vector<float>& got, const std::vector<float>& want, double rel,
                  const char* what) {
  ASSERT_EQ(got.size(), want.size());
  const double scale = std::max(1.0, test::max_abs(want));
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_FALSE(std::isnan(got[i])) << what << ": element " << i << " not written";
    ASSERT_NEAR(got[i], want[i], rel * scale) << what << ": element " << i;
  }
}

TEST(NormsCuda, AddRmsNormMatchesCpu) {
  if (!test::has_gpu()) GTEST_SKIP() << "no CUDA device";
  for (const int64_t dim : {7, 256, 2048, 2049}) {
    const int64_t rows = 5;
    auto h = test::random_vector(rows * dim, 1);
    const auto delta = test::random_vector(rows * dim, 2);
    const auto w = test::random_vector(dim, 3, 0.5f, 1.0f);
    DeviceArray<float> dh(h), dd(delta), dw(w), dy(static_cast<size_t>(rows * dim));
    add_rms_norm_cuda(dh.get(), dd.get(), dw.get(), rows, dim, 1e-6f, dy.get(), nullptr);
    for (size_t i = 0; i < h.size(); ++i) h[i] += delta[i];
    std::vector<float> want(h.size());
    rms_norm(h.data(), w.data(), rows, dim, 1e-6f, want.data());
    expect_close(dh.download(), h, 1e-6, "residual");
    expect_close(dy.download(), want, 1e-5, "normalised");

    // Without a residual, and of chosen rows only.
    DeviceArray<float> dy2(static_cast<size_t>(rows * dim));
    add_rms_norm_cuda(dh.get(), nullptr, dw.get(), rows, dim, 1e-6f, dy2.get(), nullptr);
    expect_close(dy2.download(), want, 1e-5, "normalised, no residual");
    const std::vector<int32_t> pick = {4, 1};
    DeviceArray<int32_t> dpick(pick);
    DeviceArray<float> dr(2 * static_cast<size_t>(dim));
    rms_norm_rows_cuda(dh.get(), dpick.get(), 2, dw.get(), dim, 1e-6f, dr.get(), nullptr);
    std::vector<float> want_rows(want.begin() + 4 * dim, want.begin() + 5 * dim);
    want_rows.insert(want_rows.end(), want.begin() + dim, want.begin() + 2 * dim);
    expect_close(dr.download(), want_rows, 1e-5, "chosen rows");
  }
}

TEST(ElementwiseCuda, SiluMulAndGatedSharedMatchCpu) {
  if (!test::has_gpu()) GTEST_SKIP() << "no CUDA device";
  const int64_t rows = 3, dim = 1001;
  const auto gate = test::random_vector(rows * dim, 4, 3.0f);
  const auto up = test::random_vector(rows * dim, 5);
  DeviceArray<float> dg(gate), du(up), dout(static_cast<size_t>(rows * dim));
  silu_mul_cuda(dg.get(), du.get(), rows * dim, dout.get(), nullptr);
  std::vector<float> want(gate.size());
  silu_mul(gate.data(), up.data(), rows * dim, want.data());
  expect_close(dout.download(), want, 1e-6, "silu_mul");

  auto out = test::random_vector(rows * dim, 6);
  const auto shared = test::random_vector(rows * dim, 7);
  const auto scale = test::random_vector(rows, 8, 2.0f);
  DeviceArray<float> dso(out), dsh(shared), dsc(scale);
  add_gated_shared_cuda(dso.get(), dsh.get(), dsc.get(), rows, dim, nullptr);
  for (int64_t t = 0; t < rows; ++t) {
    for (int64_t i = 0; i < dim; ++i) out[t * dim + i] += sigmoid(scale[t]) * shared[t * dim + i];
  }
  expect_close(dso.download(), out, 1e-6, "shared expert merge");
}

TEST(RouterCuda, SoftmaxTopKMatchesCpu) {
  if (!test::has_gpu()) GTEST_SKIP() << "no CUDA device";
  // 40: a warp with fewer experts than top_k; 1500: several experts per thread.
  for (const int64_t n_experts : {8, 40, 100, 512, 1500}) {
    for (const bool normalize : {true, false}) {
      const int64_t n = 7, top_k = std::min<int64_t>(10, n_experts);
      const auto logits = test::random_vector(n * n_experts, 9, 2.0f);
      DeviceArray<float> dl(logits), dw(static_cast<size_t>(n * top_k));
      DeviceArray<int32_t> di(static_cast<size_t>(n * top_k));
      softmax_top_k_cuda(dl.get(), n, n_experts, top_k, normalize, di.get(), dw.get(), nullptr);
      std::vector<int32_t> ids(static_cast<size_t>(n * top_k));
      std::vector<float> weights(ids.size()), probs(static_cast<size_t>(n_experts));
      softmax_top_k(logits.data(), n, n_experts, top_k, normalize, ids.data(), weights.data(),
                    probs.data());
      EXPECT_EQ(di.download(), ids) << n_experts << " experts";
      expect_close(dw.download(), weights, 1e-5, "routing weights");
    }
  }
  // Equal logits: lower index first, like the CPU and torch.topk.
  const std::vector<float> flat(16, 0.5f);
  DeviceArray<float> dl(flat), dw(4);
  DeviceArray<int32_t> di(4);
  softmax_top_k_cuda(dl.get(), 1, 16, 4, true, di.get(), dw.get(), nullptr);
  EXPECT_EQ(di.download(), (std::vector<int32_t>{0, 1, 2, 3}));
  // Ties spread over warps: 300 equal logits, a larger one at 290; top 5 = 290, 0, 1, 2, 3.
  std::vector<float> wide(300, 0.25f);
  wide[290] = 1.0f;
  DeviceArray<float> dl2(wide), dw2(5);
  DeviceArray<int32_t> di2(5);
  softmax_top_k_cuda(dl2.get(), 1, 300, 5, false, di2.get(), dw2.get(), nullptr);
  EXPECT_EQ(di2.download(), (std::vector<int32_t>{290, 0, 1, 2, 3}));
}

}  // namespace
}  // namespace moerun
