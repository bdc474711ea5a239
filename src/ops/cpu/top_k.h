// The k largest logits of each row on the CPU: the reference of top_k_cuda and the host side of
// LanguageModel::forward_top.
#pragma once

#include <cstdint>

namespace moerun {

// Whether (a, id_a) ranks before (b, id_b): larger value first, equal values (-0 equals +0) by
// lower id; NaN ranks below -inf.
inline bool ranks_before(float a, int32_t id_a, float b, int32_t id_b) {
  const bool nan_a = a != a;
  const bool nan_b = b != b;
  if (nan_a || nan_b) return nan_a == nan_b ? id_a < id_b : nan_b;
  return a > b || (a == b && id_a < id_b);
}

// For each of `rows` rows of x [rows, cols] f32: the k largest (1 <= k <= cols) as values
// [rows, k] f32 and ids [rows, k] i32 in the order of ranks_before (so ids[r][0] is the argmax
// that picks the lowest id on ties).
void top_k_rows(const float* x, int64_t rows, int64_t cols, int64_t k, float* values, int32_t* ids);

}  // namespace moerun
