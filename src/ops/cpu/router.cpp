#include "ops/cpu/router.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace moerun {

void softmax_top_k(const float* logits, int64_t n, int64_t n_experts, int64_t top_k, bool normalize,
                   int32_t* ids, float* weights, float* probs) {
  MOERUN_CHECK(top_k >= 1 && top_k <= n_experts);
  for (int64_t t = 0; t < n; ++t) {
    const float* l = logits + t * n_experts;
    float max_logit = -INFINITY;
    for (int64_t e = 0; e < n_experts; ++e) max_logit = std::max(max_logit, l[e]);
    float sum = 0.0f;
    for (int64_t e = 0; e < n_experts; ++e) {
      probs[e] = std::exp(l[e] - max_logit);
      sum += probs[e];
    }
    for (int64_t e = 0; e < n_experts; ++e) probs[e] /= sum;
    // Insertion into a sorted list of the best `top_k` so far; a later equal value goes after.
    int32_t* id = ids + t * top_k;
    float* w = weights + t * top_k;
    int64_t filled = 0;
    for (int64_t e = 0; e < n_experts; ++e) {
      const float p = probs[e];
      if (filled == top_k && !(p > w[top_k - 1])) continue;
      int64_t pos = filled < top_k ? filled : top_k - 1;
      while (pos > 0 && p > w[pos - 1]) {
        w[pos] = w[pos - 1];
        id[pos] = id[pos - 1];
        --pos;
      }
      w[pos] = p;
      id[pos] = static_cast<int32_t>(e);
      if (filled < top_k) ++filled;
    }
    if (normalize) {
      float total = 0.0f;
      for (int64_t k = 0; k < top_k; ++k) total += w[k];
      for (int64_t k = 0; k < top_k; ++k) w[k] /= total;
    }
  }
}

}  // namespace moerun
