#include "ops/cpu/top_k.h"

#include "core/error.h"

namespace moerun {

void top_k_rows(const float* x, int64_t rows, int64_t cols, int64_t k, float* values,
                int32_t* ids) {
  MOERUN_CHECK(k >= 1 && k <= cols);
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * cols;
    float* v = values + r * k;
    int32_t* id = ids + r * k;
    // A sorted array of the best so far; a value enters only when it beats the last one, which
    // for real logits happens rarely after the first few thousand.
    int64_t n = 0;
    for (int64_t j = 0; j < cols; ++j) {
      const float l = row[j];
      const auto jj = static_cast<int32_t>(j);
      if (n == k && !ranks_before(l, jj, v[k - 1], id[k - 1])) continue;
      int64_t at = n < k ? n : k - 1;
      while (at > 0 && ranks_before(l, jj, v[at - 1], id[at - 1])) {
        v[at] = v[at - 1];
        id[at] = id[at - 1];
        --at;
      }
      v[at] = l;
      id[at] = jj;
      if (n < k) ++n;
    }
  }
}

}  // namespace moerun
