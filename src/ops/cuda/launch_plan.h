// Host-side launch planning of the CUDA matmul and expert kernels (pure C++: tested without a GPU).
#pragma once

#include <algorithm>
#include <cstdint>

#include "core/dtype.h"

namespace moerun::cuda_plan {

// Warps per thread block of the GEMV and expert kernels.
inline constexpr int kGemvWarps = 4;
// Most tokens the GEMV path takes; more go through dequantised tiles and cuBLAS.
inline constexpr int64_t kMaxGemvTokens = 8;
// Largest expert group (assignments of one expert multiplied in one pass over its weights).
inline constexpr int kMaxExpertGroup = 8;
// Bytes of the bf16 weight tile of the prefill path (lm_head takes several tiles).
inline constexpr int64_t kPrefillTileBytes = int64_t{64} << 20;

// F32, F16 and BF16 rows are read directly in f32; the block formats are multiplied with int8
// activations.
constexpr bool is_float_format(DType t) {
  return t == DType::F32 || t == DType::F16 || t == DType::BF16;
}

// Whether matmul_cuda and moe_experts_cuda support weights of this type.
constexpr bool gpu_matmul_supports(DType t) {
  return is_float_format(t) || t == DType::Q8_0 || t == DType::Q4_0 || t == DType::Q4_K ||
         t == DType::Q5_K || t == DType::Q6_K;
}

// Columns one warp takes per step: 32 groups of 32 weights (one per lane) for block formats, 512
// (4 x 128, four per lane) for float formats.
constexpr int64_t gemv_chunk_cols(DType t) {
  return is_float_format(t) ? 512 : 1024;
}

// Weight rows one warp multiplies at once (they share each activation load): more for more tokens.
constexpr int gemv_rows_per_warp(DType t, int64_t n_tokens) {
  if (n_tokens <= 2) return 1;
  if (n_tokens <= 4 || is_float_format(t)) return 2;
  return 4;
}

// Rows per warp of a decode GEMV launch whose matrices have `rows` rows in all: one or two tokens
// of a block format take 2 rows per warp when the launch is large (>= 4096 rows of >= 1024
// columns: measured 8-16% faster on the H100, e.g. the lm_head), else gemv_rows_per_warp. The
// result does not depend on it: each row's sum runs in the same order either way.
constexpr int gemv_launch_rows_per_warp(DType t, int64_t n_tokens, int64_t cols, int64_t rows) {
  if (n_tokens <= 2 && !is_float_format(t) && cols >= 1024 && rows >= 4096) return 2;
  return gemv_rows_per_warp(t, n_tokens);
}
// Warps of a block that split one row's columns (1, 2 or 4); the others take further rows.
constexpr int gemv_split_k(DType t, int64_t cols) {
  const int64_t chunks = (cols + gemv_chunk_cols(t) - 1) / gemv_chunk_cols(t);
  return chunks >= 4 ? 4 : chunks >= 2 ? 2 : 1;
}

// Rows of one thread block: (warps / split) row groups of rows_per_warp rows.
constexpr int64_t gemv_rows_per_block(DType t, int64_t n_tokens, int64_t cols) {
  return (kGemvWarps / gemv_split_k(t, cols)) * gemv_rows_per_warp(t, n_tokens);
}

// Weights and bytes of one block of a block format (Q8_0, Q4_0, Q4_K, Q5_K, Q6_K); 0 otherwise.
constexpr int64_t block_elems_of(DType t) {
  return t == DType::Q8_0 || t == DType::Q4_0                       ? 32
         : t == DType::Q4_K || t == DType::Q5_K || t == DType::Q6_K ? 256
                                                                    : 0;
}
constexpr int64_t block_bytes_of(DType t) {
  switch (t) {
    case DType::Q8_0:
      return 34;
    case DType::Q4_0:
      return 18;
    case DType::Q4_K:
      return 144;
    case DType::Q5_K:
      return 176;
    case DType::Q6_K:
      return 210;
    default:
      return 0;
  }
}

// Warps per thread block of a fused kernel that quantises x itself (the fused_* helpers below
// size the expert decode kernels' shared memory; the decode GEMV uses kGemvWarps).
inline constexpr int kFusedGemvWarps = 8;
// Most matrices one GEMV launch takes (matmul_cuda_batch cuts longer lists).
inline constexpr int kMaxGemvJobs = 8;
// Shared memory a block may use without opting in to more (static staging plus dynamic x).
inline constexpr int64_t kFusedGemvSmemBytes = 48 * 1024;

// Staging bytes of one 1024-column chunk of a block-format row, rounded up to 16.
constexpr int64_t fused_stage_bytes(DType t) {
  return (1024 / std::max<int64_t>(1, block_elems_of(t)) * block_bytes_of(t) + 15) / 16 * 16;
}

// Most rows one warp of the fused GEMV takes per tile.
inline constexpr int kMaxFusedRows = 2;

// Rows one warp of the fused GEMV takes per tile: 2 when there are enough (virtual) rows for
// about two tiles per warp of 132 SMs x 8 warps, else 1 (small matrices spread over more warps).
constexpr int fused_rows_per_warp(int64_t total_rows) {
  return total_rows >= 4096 ? kMaxFusedRows : 1;
}

// Static shared bytes of a fused GEMV block: each warp stages R rows of one chunk.
constexpr int64_t fused_stage_smem(DType t, int rows_per_warp) {
  return kFusedGemvWarps * rows_per_warp * fused_stage_bytes(t);
}

// Dynamic shared bytes of the fused GEMV's quantised activations: n_tokens x cols int8 plus a
// (d, d * sum q) f32 pair per 32.
constexpr int64_t fused_x_smem(int64_t n_tokens, int64_t cols) {
  return n_tokens * cols + n_tokens * (cols / 32) * 8;
}

// Whether the fused GEMV takes this product (block format, 1..8 tokens, x fits next to the
// largest staging area in kFusedGemvSmemBytes); otherwise x is quantised by its own kernel first.
// It does not depend on the row count, so a matrix takes the same path alone or in a batch.
constexpr bool fused_gemv_fits(DType t, int64_t n_tokens, int64_t cols) {
  return !is_float_format(t) && block_elems_of(t) > 0 && n_tokens >= 1 &&
         n_tokens <= kMaxGemvTokens && cols > 0 && cols % 32 == 0 &&
         fused_stage_smem(t, kMaxFusedRows) + fused_x_smem(n_tokens, cols) <= kFusedGemvSmemBytes;
}

// Rows of a fused GEMV "virtual row": when a row has fewer than 32 groups of 32 weights, a power
// of two of them, and rows are packed (stride = row bytes), 32 / groups consecutive rows share
// one warp chunk so that every lane works; else 1.
constexpr int fused_seg_rows(int64_t cols, bool packed) {
  const int64_t groups = cols / 32;
  if (!packed || groups <= 0 || groups >= 32 || (32 % groups) != 0) return 1;
  return static_cast<int>(32 / groups);
}

// Rows of one bf16 weight tile of the prefill path: all rows when they fit in tile_bytes, else as
// many as fit (at least one).
constexpr int64_t prefill_tile_rows(int64_t rows, int64_t cols, int64_t tile_bytes) {
  const int64_t fit = std::max<int64_t>(1, tile_bytes / std::max<int64_t>(1, 2 * cols));
  return std::min(rows, fit);
}

// Bytes of the bf16 tile buffer that covers every matrix up to max_rows x max_cols.
constexpr int64_t prefill_tile_buffer_bytes(int64_t max_rows, int64_t max_cols,
                                            int64_t tile_bytes) {
  return prefill_tile_rows(max_rows, max_cols, tile_bytes) * max_cols * 2;
}

// Group size of the expert kernels for a batch of n_tokens: 1, 2, 4 or 8 (a token normally
// chooses an expert at most once, so a group rarely holds more assignments than tokens).
constexpr int expert_group_size(int64_t n_tokens) {
  return n_tokens <= 1 ? 1 : n_tokens <= 2 ? 2 : n_tokens <= 4 ? 4 : kMaxExpertGroup;
}

// Upper bound on the number of groups when n_assign assignments over n_experts experts are cut
// into groups of at most `group`: sum over used experts of ceil(count / group).
constexpr int64_t expert_group_bound(int64_t n_assign, int group, int64_t n_experts) {
  return std::min(n_assign, n_assign / group + std::min(n_experts, n_assign));
}

}  // namespace moerun::cuda_plan
