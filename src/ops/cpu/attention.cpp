#include "ops/cpu/attention.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/thread_pool.h"
#include "ops/cpu/activations.h"

// The per-head loops run at the widest vector width the CPU has: GCC emits AVX-512, AVX2 and
// baseline clones and picks one at load time (the file itself stays baseline x86-64).
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define MOERUN_ATTENTION_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define MOERUN_ATTENTION_CLONES
#endif

namespace moerun {
namespace {

inline float dot(const float* a, const float* b, int64_t n) {
  constexpr int kLanes = 16;
  float acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int l = 0; l < kLanes; ++l) acc[l] += a[i + l] * b[i + l];
  }
  float tail = 0.0f;
  for (; i < n; ++i) tail += a[i] * b[i];
  for (int width = kLanes / 2; width > 0; width /= 2) {
    for (int l = 0; l < width; ++l) acc[l] += acc[l + width];
  }
  return acc[0] + tail;
}

// One (token, head): scores over the keys, softmax, weighted sum of values, then the optional
// output gate.
MOERUN_ATTENTION_CLONES
void attend_one(const AttentionDims& d, const float* q, const float* keys, const float* values,
                int64_t n_keys, int64_t kv_head, float scale, float* scores, const float* gate,
                float* out) {
  const int64_t hd = d.head_dim;
  const int64_t kv_stride = d.n_kv_heads * hd;
  float max_score = -INFINITY;
  for (int64_t j = 0; j < n_keys; ++j) {
    const float s = dot(q, keys + j * kv_stride + kv_head * hd, hd) * scale;
    scores[j] = s;
    max_score = std::max(max_score, s);
  }
  float sum = 0.0f;
  for (int64_t j = 0; j < n_keys; ++j) {
    scores[j] = std::exp(scores[j] - max_score);
    sum += scores[j];
  }
  for (int64_t i = 0; i < hd; ++i) out[i] = 0.0f;
  for (int64_t j = 0; j < n_keys; ++j) {
    const float p = scores[j] / sum;
    const float* v = values + j * kv_stride + kv_head * hd;
    for (int64_t i = 0; i < hd; ++i) out[i] += p * v[i];
  }
  if (gate != nullptr) {
    for (int64_t i = 0; i < hd; ++i) out[i] *= sigmoid(gate[i]);
  }
}

}  // namespace

void causal_attention(const AttentionDims& d, const float* q, int64_t n_q, const float* const* keys,
                      const float* const* values, const int64_t* n_keys, float* out, float* scores,
                      int64_t scores_stride, ThreadPool* pool, const float* gate) {
  MOERUN_CHECK(d.n_kv_heads > 0 && d.n_heads % d.n_kv_heads == 0);
  // Everything a task reads, so the closure holds one pointer (no std::function allocation).
  struct Args {
    AttentionDims d;
    const float* q;
    const float* const* keys;
    const float* const* values;
    const int64_t* n_keys;
    const float* gate;
    float* out;
    float* scores;
    int64_t scores_stride;
    int64_t group;
    float scale;
  };
  const Args args{d,
                  q,
                  keys,
                  values,
                  n_keys,
                  gate,
                  out,
                  scores,
                  scores_stride,
                  d.n_heads / d.n_kv_heads,
                  static_cast<float>(1.0 / std::sqrt(static_cast<double>(d.head_dim)))};
  const Args* a = &args;
  auto task = [a](int64_t task_id, int thread) {
    const int64_t t = task_id / a->d.n_heads;
    const int64_t h = task_id % a->d.n_heads;
    MOERUN_DASSERT(a->n_keys[t] >= 1 && a->n_keys[t] <= a->scores_stride);
    const int64_t offset = (t * a->d.n_heads + h) * a->d.head_dim;
    attend_one(a->d, a->q + offset, a->keys[t], a->values[t], a->n_keys[t], h / a->group, a->scale,
               a->scores + thread * a->scores_stride,
               a->gate != nullptr ? a->gate + offset : nullptr, a->out + offset);
  };
  const int64_t n_tasks = n_q * d.n_heads;
  if (pool == nullptr) {
    for (int64_t i = 0; i < n_tasks; ++i) task(i, 0);
  } else {
    pool->parallel_for(n_tasks, task);
  }
}

}  // namespace moerun
