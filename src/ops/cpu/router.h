// Mixture-of-experts routing: softmax over all experts, top-k, optional renormalisation.
#pragma once

#include <cstdint>

namespace moerun {

// For each of n tokens: p = softmax(logits[t]) over n_experts in f32; ids[t] = the top_k experts
// by p, largest first (equal values: lower index first, like torch.topk); weights[t] = their p,
// divided by their sum when `normalize` (norm_topk_prob). logits [n, n_experts] f32;
// ids [n, top_k] i32; weights [n, top_k] f32; probs is scratch [n_experts] f32.
void softmax_top_k(const float* logits, int64_t n, int64_t n_experts, int64_t top_k, bool normalize,
                   int32_t* ids, float* weights, float* probs);

}  // namespace moerun
