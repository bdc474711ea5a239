// Loop shared by the SIMD paths: every row, tokens in groups, each group one pass over the row.
#pragma once

#include <cstdint>

#include "ops/cpu/matmul_internal.h"

namespace moerun::cpu_matmul {

// Tokens handled per pass over a weight row (the row stays in L1 between passes, so each weight
// byte comes from memory once per call).
inline constexpr int kTokenGroup = 4;

// Runs Dot::run<NT>(row, args, t0, out[NT]) for every row in [row_begin, row_end) and every group
// of up to kTokenGroup tokens; writes y[t * rows + r].
template <typename Dot>
void run_rows(const KernelArgs& a, int64_t row_begin, int64_t row_end) {
  const auto* base = static_cast<const uint8_t*>(a.w.data);
  const int64_t rows = a.w.rows;
  for (int64_t r = row_begin; r < row_end; ++r) {
    const uint8_t* row = base + r * a.w.row_stride;
    float out[kTokenGroup];
    int64_t t = 0;
    for (; t + kTokenGroup <= a.n_tokens; t += kTokenGroup) {
      Dot::template run<kTokenGroup>(row, a, t, out);
      for (int i = 0; i < kTokenGroup; ++i) a.y[(t + i) * rows + r] = out[i];
    }
    const int64_t left = a.n_tokens - t;
    if (left == 3) Dot::template run<3>(row, a, t, out);
    if (left == 2) Dot::template run<2>(row, a, t, out);
    if (left == 1) Dot::template run<1>(row, a, t, out);
    for (int64_t i = 0; i < left; ++i) a.y[(t + i) * rows + r] = out[i];
  }
}

}  // namespace moerun::cpu_matmul
