#include "ops/cpu/attention.h"

#include <algorithm>
#include <cmath>

#include "core/cpu_features.h"
#include "core/error.h"
#include "core/thread_pool.h"

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define MOERUN_ATTENTION_AVX512 1
#endif
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

#ifdef MOERUN_ATTENTION_AVX512
// GCC 12's AVX-512 reduction intrinsics trip -Wmaybe-uninitialized inside their own headers.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
// attend_one with AVX-512 intrinsics for head_dim % 64 == 0, for G consecutive query heads that
// share KV head kv_head (each K and V row is loaded once for all G): 4 / G keys scored at once
// (four independent accumulators in all), the weighted sums 64 output lanes per head at a time in
// registers. q, gate and out point at the first head's row; scores is [G, n_keys]. Sums run in
// another order than the portable path (f32 rounding differs).
template <int G>
__attribute__((target("avx512f,fma"))) void attend_heads_avx512(
    const AttentionDims& d, const float* q, const float* keys, const float* values, int64_t n_keys,
    int64_t kv_head, float scale, float* scores, const float* gate, float* out) {
  constexpr int kKeys = 4 / G;
  const int64_t hd = d.head_dim;
  const int64_t kv_stride = d.n_kv_heads * hd;
  const float* k = keys + kv_head * hd;  // key j at k + j * kv_stride
  int64_t j = 0;
  for (; j + kKeys <= n_keys; j += kKeys) {
    const float* k0 = k + j * kv_stride;
    __m512 acc[G][kKeys];
    for (int g = 0; g < G; ++g) {
      for (int r = 0; r < kKeys; ++r) acc[g][r] = _mm512_setzero_ps();
    }
    for (int64_t i = 0; i < hd; i += 16) {
      __m512 kv[kKeys];
      for (int r = 0; r < kKeys; ++r) kv[r] = _mm512_loadu_ps(k0 + r * kv_stride + i);
      for (int g = 0; g < G; ++g) {
        const __m512 qv = _mm512_loadu_ps(q + g * hd + i);
        for (int r = 0; r < kKeys; ++r) acc[g][r] = _mm512_fmadd_ps(qv, kv[r], acc[g][r]);
      }
    }
    for (int g = 0; g < G; ++g) {
      for (int r = 0; r < kKeys; ++r) {
        scores[g * n_keys + j + r] = _mm512_reduce_add_ps(acc[g][r]) * scale;
      }
    }
  }
  for (; j < n_keys; ++j) {
    const float* kj = k + j * kv_stride;
    __m512 acc[G];
    for (int g = 0; g < G; ++g) acc[g] = _mm512_setzero_ps();
    for (int64_t i = 0; i < hd; i += 16) {
      const __m512 kv = _mm512_loadu_ps(kj + i);
      for (int g = 0; g < G; ++g) {
        acc[g] = _mm512_fmadd_ps(_mm512_loadu_ps(q + g * hd + i), kv, acc[g]);
      }
    }
    for (int g = 0; g < G; ++g) scores[g * n_keys + j] = _mm512_reduce_add_ps(acc[g]) * scale;
  }
  for (int g = 0; g < G; ++g) {
    float* sg = scores + g * n_keys;  // [n_keys]
    float max_score = -INFINITY;
    for (j = 0; j < n_keys; ++j) max_score = std::max(max_score, sg[j]);
    float sum = 0.0f;
    for (j = 0; j < n_keys; ++j) {
      sg[j] = std::exp(sg[j] - max_score);
      sum += sg[j];
    }
    for (j = 0; j < n_keys; ++j) sg[j] /= sum;
  }
  const float* v = values + kv_head * hd;  // value j at v + j * kv_stride
  for (int64_t i = 0; i < hd; i += 64) {
    __m512 o[G][4];
    for (int g = 0; g < G; ++g) {
      for (int c = 0; c < 4; ++c) o[g][c] = _mm512_setzero_ps();
    }
    const float* vi = v + i;
    for (j = 0; j < n_keys; ++j) {
      const float* vj = vi + j * kv_stride;
      __m512 vv[4];
      for (int c = 0; c < 4; ++c) vv[c] = _mm512_loadu_ps(vj + 16 * c);
      for (int g = 0; g < G; ++g) {
        const __m512 p = _mm512_set1_ps(scores[g * n_keys + j]);
        for (int c = 0; c < 4; ++c) o[g][c] = _mm512_fmadd_ps(p, vv[c], o[g][c]);
      }
    }
    for (int g = 0; g < G; ++g) {
      for (int c = 0; c < 4; ++c) _mm512_storeu_ps(out + g * hd + i + 16 * c, o[g][c]);
    }
  }
  if (gate != nullptr) {
    for (int64_t i = 0; i < G * hd; ++i) out[i] *= sigmoid(gate[i]);
  }
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

// Whether this CPU (and OS) runs the AVX-512 kernel; read once.
bool use_avx512() {
  static const bool on = cpu_features().avx512f && cpu_features().fma;
  return on;
}
#endif

// Query heads per task: 4, 2 or 1 (only the AVX-512 kernel takes several), while that divides the
// GQA group, leaves at least one task per thread and fits the scores scratch.
int64_t heads_per_task(const AttentionDims& d, int64_t n_q, const int64_t* n_keys,
                       int64_t scores_stride, int threads) {
#ifdef MOERUN_ATTENTION_AVX512
  if (!use_avx512() || d.head_dim % 64 != 0) return 1;
  int64_t longest = 1;
  for (int64_t t = 0; t < n_q; ++t) longest = std::max(longest, n_keys[t]);
  const int64_t group = d.n_heads / d.n_kv_heads;
  int64_t g = 4;
  while (g > 1 &&
         (group % g != 0 || n_q * d.n_heads / g < threads || g * longest > scores_stride)) {
    g /= 2;
  }
  return g;
#else
  (void)d, (void)n_q, (void)n_keys, (void)scores_stride, (void)threads;
  return 1;
#endif
}

// Heads [h, h + g) of one token: the fastest kernel for this CPU and head size.
void attend(const AttentionDims& d, int64_t g, const float* q, const float* keys,
            const float* values, int64_t n_keys, int64_t kv_head, float scale, float* scores,
            const float* gate, float* out) {
#ifdef MOERUN_ATTENTION_AVX512
  if (use_avx512() && d.head_dim % 64 == 0) {
    if (g == 4) {
      attend_heads_avx512<4>(d, q, keys, values, n_keys, kv_head, scale, scores, gate, out);
    } else if (g == 2) {
      attend_heads_avx512<2>(d, q, keys, values, n_keys, kv_head, scale, scores, gate, out);
    } else {
      attend_heads_avx512<1>(d, q, keys, values, n_keys, kv_head, scale, scores, gate, out);
    }
    return;
  }
#endif
  MOERUN_DASSERT(g == 1);
  attend_one(d, q, keys, values, n_keys, kv_head, scale, scores, gate, out);
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
    int64_t heads_per_task;
    float scale;
  };
  const int threads = pool == nullptr ? 1 : pool->size();
  const int64_t g = heads_per_task(d, n_q, n_keys, scores_stride, threads);
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
                  g,
                  static_cast<float>(1.0 / std::sqrt(static_cast<double>(d.head_dim)))};
  const Args* a = &args;
  auto task = [a](int64_t task_id, int thread) {
    const int64_t tasks_per_token = a->d.n_heads / a->heads_per_task;
    const int64_t t = task_id / tasks_per_token;
    const int64_t h = (task_id % tasks_per_token) * a->heads_per_task;
    MOERUN_DASSERT(a->n_keys[t] >= 1 && a->n_keys[t] <= a->scores_stride);
    const int64_t offset = (t * a->d.n_heads + h) * a->d.head_dim;
    attend(a->d, a->heads_per_task, a->q + offset, a->keys[t], a->values[t], a->n_keys[t],
           h / a->group, a->scale, a->scores + thread * a->scores_stride,
           a->gate != nullptr ? a->gate + offset : nullptr, a->out + offset);
  };
  const int64_t n_tasks = n_q * d.n_heads / g;
  if (pool == nullptr) {
    for (int64_t i = 0; i < n_tasks; ++i) task(i, 0);
  } else {
    pool->parallel_for(n_tasks, task);
  }
}

}  // namespace moerun
