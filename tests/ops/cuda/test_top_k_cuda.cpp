// top_k_cuda against the CPU top_k_rows: exact ids and value bits, with ties, -0/+0 and -inf.
#include <gtest/gtest.h>

#include <cuda_runtime_api.h>

#include <bit>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "gpu_test_util.h"
#include "ops/cpu/top_k.h"
#include "ops/cuda/top_k_cuda.h"

namespace moerun {
namespace {

using test::DeviceArray;

// How a row is filled.
enum class Fill { normal, few_levels, with_inf, signed_zeros, all_equal, all_minus_inf };

std::vector<float> make_rows(int64_t rows, int64_t vocab, Fill fill, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::uniform_int_distribution<int> level(-3, 3);
  std::uniform_int_distribution<int> pick(0, 9);
  std::vector<float> x(static_cast<size_t>(rows * vocab));
  for (float& v : x) {
    switch (fill) {
      case Fill::normal:
        v = normal(rng);
        break;
      case Fill::few_levels:  // many exact ties, also at the k-th place
        v = 0.5f * static_cast<float>(level(rng));
        break;
      case Fill::with_inf:
        v = pick(rng) < 7 ? -INFINITY : normal(rng);
        break;
      case Fill::signed_zeros:
        v = pick(rng) < 5 ? (pick(rng) < 5 ? -0.0f : 0.0f) : -std::fabs(normal(rng)) - 1.0f;
        break;
      case Fill::all_equal:
        v = 1.25f;
        break;
      case Fill::all_minus_inf:
        v = -INFINITY;
        break;
    }
  }
  return x;
}

void check(int64_t rows, int64_t vocab, int64_t k, Fill fill, uint32_t seed) {
  SCOPED_TRACE(testing::Message() << "rows " << rows << " vocab " << vocab << " k " << k << " fill "
                                  << static_cast<int>(fill));
  const std::vector<float> x = make_rows(rows, vocab, fill, seed);
  std::vector<float> want_v(static_cast<size_t>(rows * k));
  std::vector<int32_t> want_i(static_cast<size_t>(rows * k));
  top_k_rows(x.data(), rows, vocab, k, want_v.data(), want_i.data());

  DeviceArray<float> dx(x);
  DeviceArray<uint8_t> ws(top_k_cuda_workspace_bytes(rows, vocab, k));
  DeviceArray<float> dv(static_cast<size_t>(rows * k));
  DeviceArray<int32_t> di(static_cast<size_t>(rows * k));
  top_k_cuda(dx.get(), rows, vocab, k, ws.get(), dv.get(), di.get(), nullptr);
  const std::vector<float> got_v = dv.download();
  const std::vector<int32_t> got_i = di.download();
  for (size_t j = 0; j < got_i.size(); ++j) {
    ASSERT_EQ(got_i[j], want_i[j]) << "row " << j / k << " place " << j % k;
    ASSERT_EQ(std::bit_cast<uint32_t>(got_v[j]), std::bit_cast<uint32_t>(want_v[j]))
        << "row " << j / k << " place " << j % k;
  }
}

TEST(TopKCuda, MatchesCpuOnRandomRows) {
  if (!test::has_gpu()) GTEST_SKIP() << "no CUDA device";
  uint32_t seed = 1;
  for (const int64_t vocab : {151936, 100003, 4099, 1000, 65, 64}) {
    for (const int64_t rows : {1, 3, 16}) {
      for (const int64_t k : {1, 20, 64}) {
        for (const Fill fill : {Fill::normal, Fill::few_levels, Fill::with_inf}) {
          check(rows, vocab, k, fill, seed++);
        }
      }
    }
  }
}

TEST(TopKCuda, TiesAndSpecialRows) {
  if (!test::has_gpu()) GTEST_SKIP() << "no CUDA device";
  uint32_t seed = 100;
  for (const int64_t vocab : {151936, 7777, 21, 1}) {
    for (const int64_t k : {1, 20, 64}) {
      if (k > vocab) continue;
      for (const Fill fill : {Fill::signed_zeros, Fill::all_equal, Fill::all_minus_inf}) {
        check(2, vocab, k, fill, seed++);
      }
    }
  }
}

TEST(TopKCuda, ManyRows) {
  if (!test::has_gpu()) GTEST_SKIP() << "no CUDA device";
  check(300, 5003, 64, Fill::normal, 7);
  check(300, 5003, 20, Fill::few_levels, 8);
}

// One row of Qwen3-Next's vocabulary: the decode step's case. Prints the time per call.
TEST(TopKCuda, OneRowTiming) {
  if (!test::has_gpu()) GTEST_SKIP() << "no CUDA device";
  const int64_t vocab = 151936;
  const int64_t k = 64;
  const std::vector<float> x = make_rows(1, vocab, Fill::normal, 11);
  DeviceArray<float> dx(x);
  DeviceArray<uint8_t> ws(top_k_cuda_workspace_bytes(1, vocab, k));
  DeviceArray<float> dv(static_cast<size_t>(k));
  DeviceArray<int32_t> di(static_cast<size_t>(k));
  for (int i = 0; i < 10; ++i) top_k_cuda(dx.get(), 1, vocab, k, ws.get(), dv.get(), di.get(), 0);
  cudaEvent_t start = nullptr, stop = nullptr;
  ASSERT_EQ(cudaEventCreate(&start), cudaSuccess);
  ASSERT_EQ(cudaEventCreate(&stop), cudaSuccess);
  const int reps = 200;
  ASSERT_EQ(cudaEventRecord(start, nullptr), cudaSuccess);
  for (int i = 0; i < reps; ++i) {
    top_k_cuda(dx.get(), 1, vocab, k, ws.get(), dv.get(), di.get(), nullptr);
  }
  ASSERT_EQ(cudaEventRecord(stop, nullptr), cudaSuccess);
  ASSERT_EQ(cudaEventSynchronize(stop), cudaSuccess);
  float ms = 0.0f;
  ASSERT_EQ(cudaEventElapsedTime(&ms, start, stop), cudaSuccess);
  std::printf("top_k_cuda: 1 row x %lld, k %lld: %.1f us per call\n", static_cast<long long>(vocab),
              static_cast<long long>(k), 1000.0 * ms / reps);
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::vector<float> want_v(static_cast<size_t>(k));
  std::vector<int32_t> want_i(static_cast<size_t>(k));
  top_k_rows(x.data(), 1, vocab, k, want_v.data(), want_i.data());
  EXPECT_EQ(di.download(), want_i);
}

}  // namespace
}  // namespace moerun
