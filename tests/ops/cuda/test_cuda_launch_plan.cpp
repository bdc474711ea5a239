// The host-side launch planning of the CUDA matmul and expert kernels (runs without a GPU).
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "ops/cuda/launch_plan.h"

namespace moerun::cuda_plan {
namespace {

TEST(CudaLaunchPlan, SplitKFollowsChunkCount) {
  EXPECT_EQ(gemv_split_k(DType::Q4_K, 256), 1);
  EXPECT_EQ(gemv_split_k(DType::Q4_K, 1024), 1);
  EXPECT_EQ(gemv_split_k(DType::Q4_K, 2048), 2);
  EXPECT_EQ(gemv_split_k(DType::Q4_K, 3072), 2);
  EXPECT_EQ(gemv_split_k(DType::Q4_K, 4096), 4);
  EXPECT_EQ(gemv_split_k(DType::BF16, 2048), 4);  // 512-column chunks
  EXPECT_EQ(gemv_split_k(DType::BF16, 33), 1);
  for (DType t : {DType::F32, DType::Q8_0, DType::Q6_K}) {
    for (int64_t n = 1; n <= kMaxGemvTokens; ++n) {
      for (int64_t cols : {32, 512, 2048, 8192}) {
        const int64_t rpb = gemv_rows_per_block(t, n, cols);
        EXPECT_EQ(rpb * gemv_split_k(t, cols), kGemvWarps * gemv_rows_per_warp(t, n));
        EXPECT_GE(rpb, 1);
      }
    }
  }
}

// Large launches of block formats at one or two tokens take 2 rows per warp (the lm_head, the
// DeltaNet input projection); float formats, small matrices and more tokens keep the default.
TEST(CudaLaunchPlan, LargeDecodeLaunchesTakeTwoRowsPerWarp) {
  EXPECT_EQ(gemv_launch_rows_per_warp(DType::Q6_K, 1, 2048, 151936), 2);
  EXPECT_EQ(gemv_launch_rows_per_warp(DType::Q4_K, 2, 2048, 12288), 2);
  EXPECT_EQ(gemv_launch_rows_per_warp(DType::Q4_K, 1, 2048, 512), 1);
  EXPECT_EQ(gemv_launch_rows_per_warp(DType::Q6_K, 1, 512, 8192), 1);
  EXPECT_EQ(gemv_launch_rows_per_warp(DType::BF16, 1, 2048, 8192), 1);
  for (int64_t n = 3; n <= kMaxGemvTokens; ++n) {
    EXPECT_EQ(gemv_launch_rows_per_warp(DType::Q4_K, n, 2048, 151936),
              gemv_rows_per_warp(DType::Q4_K, n));
  }
}

TEST(CudaLaunchPlan, FusedGemvTakesTheModelShapesWithinSharedMemory) {
  for (DType t : {DType::Q4_0, DType::Q8_0, DType::Q4_K, DType::Q5_K, DType::Q6_K}) {
    EXPECT_EQ(fused_stage_bytes(t) % 16, 0);
    EXPECT_GE(fused_stage_bytes(t), 1024 / block_elems_of(t) * block_bytes_of(t));
    for (int64_t n = 1; n <= kMaxGemvTokens; ++n) {
      EXPECT_TRUE(fused_gemv_fits(t, n, 2048)) << n;  // every decode projection of hidden 2048
      EXPECT_TRUE(fused_gemv_fits(t, n, 512)) << n;   // the shared expert's down projection
      if (fused_gemv_fits(t, n, 4096)) {
        EXPECT_LE(fused_stage_smem(t, kMaxFusedRows) + fused_x_smem(n, 4096), kFusedGemvSmemBytes);
      }
    }
    EXPECT_TRUE(fused_gemv_fits(t, 1, 4096));
    EXPECT_FALSE(fused_gemv_fits(t, 9, 2048));  // prefill goes through cuBLAS
  }
  for (DType t : {DType::F32, DType::F16, DType::BF16}) EXPECT_FALSE(fused_gemv_fits(t, 1, 2048));
  EXPECT_EQ(fused_seg_rows(512, true), 2);
  EXPECT_EQ(fused_seg_rows(256, true), 4);
  EXPECT_EQ(fused_seg_rows(32, true), 32);
  EXPECT_EQ(fused_seg_rows(512, false), 1);  // padded rows are not contiguous
  EXPECT_EQ(fused_seg_rows(96, true), 1);    // 3 groups do not divide a warp
  EXPECT_EQ(fused_seg_rows(1024, true), 1);
  EXPECT_EQ(fused_seg_rows(2048, true), 1);
  EXPECT_EQ(fused_rows_per_warp(8192), kMaxFusedRows);
  EXPECT_EQ(fused_rows_per_warp(512), 1);
}

TEST(CudaLaunchPlan, PrefillTilesCoverLmHeadWithinTheBudget) {
  const int64_t rows = 151936, cols = 2048;
  const int64_t tile = prefill_tile_rows(rows, cols, kPrefillTileBytes);
  EXPECT_EQ(tile, 16384);
  EXPECT_LE(tile * cols * 2, kPrefillTileBytes);
  EXPECT_EQ(prefill_tile_rows(100, cols, kPrefillTileBytes), 100);
  EXPECT_EQ(prefill_tile_rows(10, int64_t{1} << 40, kPrefillTileBytes), 1);  // at least a row
  // The buffer sized for the largest matrix covers every smaller one.
  const int64_t buffer = prefill_tile_buffer_bytes(rows, cols, kPrefillTileBytes);
  for (int64_t r : {1, 7, 16384, 20000, 151936}) {
    for (int64_t c : {32, 512, 2048}) {
      EXPECT_LE(prefill_tile_rows(r, c, kPrefillTileBytes) * c * 2, buffer) << r << " x " << c;
    }
  }
}

TEST(CudaLaunchPlan, ExpertGroupBoundHoldsForRandomRoutings) {
  std::mt19937 rng(3);
  for (int trial = 0; trial < 200; ++trial) {
    const int64_t n_experts = 1 + static_cast<int64_t>(rng() % 600);
    const int64_t n_tokens = 1 + static_cast<int64_t>(rng() % 600);
    const int64_t top_k = 1 + static_cast<int64_t>(rng() % 10);
    const int group = expert_group_size(n_tokens);
    std::vector<int64_t> counts(static_cast<size_t>(n_experts), 0);
    // Skewed routing: half the choices go to a few experts.
    for (int64_t i = 0; i < n_tokens * top_k; ++i) {
      const int64_t e = (rng() % 2) ? static_cast<int64_t>(rng() % std::min<int64_t>(4, n_experts))
                                    : static_cast<int64_t>(rng() % n_experts);
      ++counts[static_cast<size_t>(e)];
    }
    int64_t groups = 0;
    for (int64_t c : counts) groups += (c + group - 1) / group;
    EXPECT_LE(groups, expert_group_bound(n_tokens * top_k, group, n_experts));
  }
  EXPECT_EQ(expert_group_size(1), 1);
  EXPECT_EQ(expert_group_size(2), 2);
  EXPECT_EQ(expert_group_size(3), 4);
  EXPECT_EQ(expert_group_size(512), kMaxExpertGroup);
}

}  // namespace
}  // namespace moerun::cuda_plan
