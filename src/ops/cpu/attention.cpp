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
// attend_one with AVX-512 intrinsics for head_dim % 64 == 0: four keys scored at once (independent
// accumulators, q loaded once), the weighted sum over all values 64 output lanes at a time in
// registers. Sums run in another order than the portable path (f32 rounding differs).
__attribute__((target("avx512f,fma"))) void attend_one_avx512(
    const AttentionDims& d, const float* q, const float* keys, const float* values, int64_t n_keys,
    int64_t kv_head, float scale, float* scores, const float* gate, float* out) {
  const int64_t hd = d.head_dim;
  const int64_t kv_stride = d.n_kv_heads * hd;
  const float* k = keys + kv_head * hd;  // key j at k + j * kv_stride
  int64_t j = 0;
  for (; j + 4 <= n_keys; j += 4) {
    const float* k0 = k + j * kv_stride;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t i = 0; i < hd; i += 16) {
      const __m512 qv = _mm512_loadu_ps(q + i);
      a0 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(k0 + i), a0);
      a1 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(k0 + kv_stride + i), a1);
      a2 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(k0 + 2 * kv_stride + i), a2);
      a3 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(k0 + 3 * kv_stride + i), a3);
    }
    scores[j] = _mm512_reduce_add_ps(a0) * scale;
    scores[j + 1] = _mm512_reduce_add_ps(a1) * scale;
    scores[j + 2] = _mm512_reduce_add_ps(a2) * scale;
    scores[j + 3] = _mm512_reduce_add_ps(a3) * scale;
  }
  for (; j < n_keys; ++j) {
    const float* kj = k + j * kv_stride;
    __m512 a0 = _mm512_setzero_ps();
    for (int64_t i = 0; i < hd; i += 16) {
      a0 = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), _mm512_loadu_ps(kj + i), a0);
    }
    scores[j] = _mm512_reduce_add_ps(a0) * scale;
  }
  float max_score = -INFINITY;
  for (j = 0; j < n_keys; ++j) max_score = std::max(max_score, scores[j]);
  float sum = 0.0f;
  for (j = 0; j < n_keys; ++j) {
    scores[j] = std::exp(scores[j] - max_score);
    sum += scores[j];
  }
  for (j = 0; j < n_keys; ++j) scores[j] /= sum;
  const float* v = values + kv_head * hd;  // value j at v + j * kv_stride
  for (int64_t i = 0; i < hd; i += 64) {
    __m512 o0 = _mm512_setzero_ps(), o1 = o0, o2 = o0, o3 = o0;
    const float* vi = v + i;
    for (j = 0; j < n_keys; ++j) {
      const __m512 p = _mm512_set1_ps(scores[j]);
      const float* vj = vi + j * kv_stride;
      o0 = _mm512_fmadd_ps(p, _mm512_loadu_ps(vj), o0);
      o1 = _mm512_fmadd_ps(p, _mm512_loadu_ps(vj + 16), o1);
      o2 = _mm512_fmadd_ps(p, _mm512_loadu_ps(vj + 32), o2);
      o3 = _mm512_fmadd_ps(p, _mm512_loadu_ps(vj + 48), o3);
    }
    _mm512_storeu_ps(out + i, o0);
    _mm512_storeu_ps(out + i + 16, o1);
    _mm512_storeu_ps(out + i + 32, o2);
    _mm512_storeu_ps(out + i + 48, o3);
  }
  if (gate != nullptr) {
    for (int64_t i = 0; i < hd; ++i) out[i] *= sigmoid(gate[i]);
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

// The fastest attend_one for this CPU and head size.
void attend(const AttentionDims& d, const float* q, const float* keys, const float* values,
            int64_t n_keys, int64_t kv_head, float scale, float* scores, const float* gate,
            float* out) {
#ifdef MOERUN_ATTENTION_AVX512
  if (use_avx512() && d.head_dim % 64 == 0) {
    attend_one_avx512(d, q, keys, values, n_keys, kv_head, scale, scores, gate, out);
    return;
  }
#endif
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
    attend(a->d, a->q + offset, a->keys[t], a->values[t], a->n_keys[t], h / a->group, a->scale,
           a->scores + thread * a->scores_stride, a->gate != nullptr ? a->gate + offset : nullptr,
           a->out + offset);
  };
  const int64_t n_tasks = n_q * d.n_heads;
  if (pool == nullptr) {
    for (int64_t i = 0; i < n_tasks; ++i) task(i, 0);
  } else {
    pool->parallel_for(n_tasks, task);
  }
}

}  // namespace moerun
