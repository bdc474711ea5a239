// GPU dequantisation against the CPU scalar reference, on random rows of every supported format.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/quant.h"
#include "ops/cuda/dequantize.h"

namespace moerun {
namespace {

bool has_gpu() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return count > 0;
}

class DequantizeCuda : public ::testing::TestWithParam<DType> {};

TEST_P(DequantizeCuda, MatchesCpuReferenceBitExactly) {
  if (!has_gpu()) GTEST_SKIP() << "no CUDA device";
  const DType type = GetParam();
  std::mt19937 rng(1234);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  // Odd numbers of blocks, so partial thread blocks and tails are exercised.
  for (int64_t blocks : {1, 3, 37, 1001}) {
    const int64_t n =
        blocks * dtype_info(type).block_elems * (dtype_info(type).block_elems == 1 ? 97 : 1);
    std::vector<float> x(static_cast<size_t>(n));
    for (float& v : x) v = normal(rng);
    std::vector<uint8_t> packed(static_cast<size_t>(row_bytes(type, n)));
    quantize_row(type, x.data(), packed.data(), n);
    std::vector<float> expected(static_cast<size_t>(n));
    dequantize_row(type, packed.data(), expected.data(), n);

    void* d_src = nullptr;
    float* d_dst = nullptr;
    ASSERT_EQ(cudaMalloc(&d_src, packed.size()), cudaSuccess);
    ASSERT_EQ(cudaMalloc(reinterpret_cast<void**>(&d_dst), n * sizeof(float)), cudaSuccess);
    ASSERT_EQ(cudaMemcpy(d_src, packed.data(), packed.size(), cudaMemcpyHostToDevice), cudaSuccess);
    // Poison the output (all-ones bytes are NaN) so an element the kernel skips shows up.
    ASSERT_EQ(cudaMemset(d_dst, 0xff, n * sizeof(float)), cudaSuccess);
    dequantize_cuda(type, d_src, d_dst, n, nullptr);
    std::vector<float> got(static_cast<size_t>(n));
    ASSERT_EQ(cudaMemcpy(got.data(), d_dst, n * sizeof(float), cudaMemcpyDeviceToHost),
              cudaSuccess);
    cudaFree(d_src);
    cudaFree(d_dst);
    // Tolerance: both sides compute d * sc * q - dmin * m in f32; the GPU may contract to an FMA,
    // which changes the last bit, so allow a few ulps relative to the block's magnitude.
    for (int64_t i = 0; i < n; ++i) {
      ASSERT_FALSE(std::isnan(got[i])) << "element " << i << " not written";
      ASSERT_NEAR(got[i], expected[i], 1e-6f * (1.0f + std::fabs(expected[i])))
          << dtype_name(type) << " element " << i << " of " << n;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllFormats, DequantizeCuda,
                         ::testing::Values(DType::F32, DType::F16, DType::BF16, DType::Q8_0,
                                           DType::Q4_0, DType::Q4_K, DType::Q5_K, DType::Q6_K),
                         [](const auto& param_info) {
                           return std::string(dtype_name(param_info.param));
                         });

}  // namespace
}  // namespace moerun
