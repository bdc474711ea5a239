#include "core/error.h"
#include "ops/cuda/attention_cuda.h"
#include "ops/cuda/cuda_check.cuh"
#include "ops/cuda/reduce.cuh"

namespace moerun {
namespace {

constexpr int kMaxHeadDim = 256;
constexpr int kPerLane = kMaxHeadDim / 32;
constexpr int kWarps = 4;
constexpr int kMaxSplits = 64;

// Keys (or values) of attention cache `layer` of run r: [capacity, kv_width].
__device__ inline float* cache_rows(const DeviceBatch& b, int run, int layer, int which,
                                    int kv_width) {
  return b.kv[run] + (2 * static_cast<int64_t>(layer) + which) * b.capacity[run] * kv_width;
}

// Block (token, head): heads [0, n_heads) are query heads, [n_heads, n_heads + n_kv_heads) KV
// heads. RMSNorm over head_dim, weight, then RoPE on the first rope_dims dims.
__global__ void attention_prepare_kernel(AttentionShape s, DeviceBatch b, int kv_layer,
                                         const float* q_proj, const float* k, const float* v,
                                         const float* q_norm, const float* k_norm,
                                         const float* inv_freq, float* q, float* gate) {
  __shared__ float scratch[32];
  __shared__ float row[kMaxHeadDim];
  const int t = blockIdx.x;
  const int head = blockIdx.y;
  const int hd = static_cast<int>(s.head_dim);
  const int kv_width = static_cast<int>(s.n_kv_heads * s.head_dim);
  const bool is_query = head < s.n_heads;
  const int pos = b.positions[t];
  const int run = b.token_run[t];
  const float* src;
  const float* w;
  float* dst;
  if (is_query) {
    const int q_stride = static_cast<int>(s.n_heads * hd * (s.output_gate ? 2 : 1));
    src = q_proj + static_cast<int64_t>(t) * q_stride + head * hd * (s.output_gate ? 2 : 1);
    w = q_norm;
    dst = q + (static_cast<int64_t>(t) * s.n_heads + head) * hd;
    if (s.output_gate) {
      float* g = gate + (static_cast<int64_t>(t) * s.n_heads + head) * hd;
      for (int i = threadIdx.x; i < hd; i += blockDim.x) g[i] = src[hd + i];
    }
  } else {
    const int kvh = head - static_cast<int>(s.n_heads);
    src = k + static_cast<int64_t>(t) * kv_width + kvh * hd;
    w = k_norm;
    dst =
        cache_rows(b, run, kv_layer, 0, kv_width) + static_cast<int64_t>(pos) * kv_width + kvh * hd;
    float* vdst =
        cache_rows(b, run, kv_layer, 1, kv_width) + static_cast<int64_t>(pos) * kv_width + kvh * hd;
    const float* vsrc = v + static_cast<int64_t>(t) * kv_width + kvh * hd;
    for (int i = threadIdx.x; i < hd; i += blockDim.x) vdst[i] = vsrc[i];
  }
  float ss = 0.0f;
  for (int i = threadIdx.x; i < hd; i += blockDim.x) ss += src[i] * src[i];
  ss = block_sum(ss, scratch);
  const float scale = rsqrtf(ss / static_cast<float>(hd) + s.rms_eps);
  for (int i = threadIdx.x; i < hd; i += blockDim.x) row[i] = src[i] * scale * w[i];
  __syncthreads();
  const int half = static_cast<int>(s.rope_dims / 2);
  for (int i = threadIdx.x; i < hd; i += blockDim.x) {
    float out = row[i];
    if (i < 2 * half) {
      const int f = i < half ? i : i - half;
      const float angle = static_cast<float>(pos) * inv_freq[f];
      const float c = cosf(angle);
      const float sn = sinf(angle);
      out = i < half ? row[i] * c - row[i + half] * sn : row[i] * c + row[i - half] * sn;
    }
    dst[i] = out;
  }
}

// Block (token * n_heads + head, split): online softmax over the split's keys, one key per warp
// at a time; each lane holds head dims lane, lane + 32, ... Writes the split's max, sum and
// unnormalised output to the workspace.
__global__ void attention_split_kernel(AttentionShape s, DeviceBatch b, int kv_layer,
                                       const float* q, int splits, float* part_ml,
                                       float* part_acc) {
  __shared__ float warp_m[kWarps];
  __shared__ float warp_l[kWarps];
  __shared__ float warp_acc[kWarps][kMaxHeadDim];
  const int th = blockIdx.x;
  const int t = th / static_cast<int>(s.n_heads);
  const int h = th % static_cast<int>(s.n_heads);
  const int split = blockIdx.y;
  const int hd = static_cast<int>(s.head_dim);
  const int kv_width = static_cast<int>(s.n_kv_heads * s.head_dim);
  const int kvh = h / static_cast<int>(s.n_heads / s.n_kv_heads);
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const int run = b.token_run[t];
  const int n_keys = b.positions[t] + 1;
  const int chunk = (n_keys + splits - 1) / splits;
  const int k0 = split * chunk;
  const int k1 = min(n_keys, k0 + chunk);
  const float* keys = cache_rows(b, run, kv_layer, 0, kv_width) + kvh * hd;
  const float* values = cache_rows(b, run, kv_layer, 1, kv_width) + kvh * hd;

  const float scale = rsqrtf(static_cast<float>(hd));
  const float* qr = q + (static_cast<int64_t>(t) * s.n_heads + h) * hd;
  float qv[kPerLane];
  float acc[kPerLane];
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) {
    const int d = lane + 32 * i;
    qv[i] = d < hd ? qr[d] * scale : 0.0f;
    acc[i] = 0.0f;
  }
  float m = -INFINITY;
  float l = 0.0f;
  for (int j = k0 + warp; j < k1; j += kWarps) {
    const float* kr = keys + static_cast<int64_t>(j) * kv_width;
    float dot = 0.0f;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      const int d = lane + 32 * i;
      if (d < hd) dot += qv[i] * kr[d];
    }
    dot = warp_sum(dot);
    const float m_new = fmaxf(m, dot);
    const float corr = expf(m - m_new);  // 0 on the first key (m = -inf)
    const float p = expf(dot - m_new);
    l = l * corr + p;
    const float* vr = values + static_cast<int64_t>(j) * kv_width;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      const int d = lane + 32 * i;
      if (d < hd) acc[i] = acc[i] * corr + p * vr[d];
    }
    m = m_new;
  }
  if (lane == 0) {
    warp_m[warp] = m;
    warp_l[warp] = l;
  }
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) {
    const int d = lane + 32 * i;
    if (d < hd) warp_acc[warp][d] = acc[i];
  }
  __syncthreads();
  float bm = -INFINITY;
  for (int w = 0; w < kWarps; ++w) bm = fmaxf(bm, warp_m[w]);
  const int64_t part = static_cast<int64_t>(th) * splits + split;
  if (threadIdx.x == 0) {
    float bl = 0.0f;
    for (int w = 0; w < kWarps; ++w) {
      if (warp_m[w] != -INFINITY) bl += warp_l[w] * expf(warp_m[w] - bm);
    }
    part_ml[2 * part] = bm;
    part_ml[2 * part + 1] = bl;
  }
  for (int d = threadIdx.x; d < hd; d += blockDim.x) {
    float a = 0.0f;
    for (int w = 0; w < kWarps; ++w) {
      if (warp_m[w] != -INFINITY) a += warp_acc[w][d] * expf(warp_m[w] - bm);
    }
    part_acc[part * hd + d] = a;
  }
}

// Block (token * n_heads + head): merges the splits and applies the output gate.
__global__ void attention_merge_kernel(AttentionShape s, int splits, const float* part_ml,
                                       const float* part_acc, const float* gate, float* out) {
  const int th = blockIdx.x;
  const int hd = static_cast<int>(s.head_dim);
  const float* ml = part_ml + static_cast<int64_t>(th) * splits * 2;
  float m = -INFINITY;
  for (int p = 0; p < splits; ++p) m = fmaxf(m, ml[2 * p]);
  float l = 0.0f;
  for (int p = 0; p < splits; ++p) {
    if (ml[2 * p] != -INFINITY) l += ml[2 * p + 1] * expf(ml[2 * p] - m);
  }
  const float inv_l = 1.0f / l;
  for (int d = threadIdx.x; d < hd; d += blockDim.x) {
    float a = 0.0f;
    for (int p = 0; p < splits; ++p) {
      if (ml[2 * p] != -INFINITY) {
        a += part_acc[(static_cast<int64_t>(th) * splits + p) * hd + d] * expf(ml[2 * p] - m);
      }
    }
    float o = a * inv_l;
    if (gate != nullptr) o *= sigmoid_f(gate[static_cast<int64_t>(th) * hd + d]);
    out[static_cast<int64_t>(th) * hd + d] = o;
  }
}

void check_shape(const AttentionShape& s) {
  MOERUN_CHECK(s.head_dim >= 1 && s.head_dim <= kMaxHeadDim);
  MOERUN_CHECK(s.n_kv_heads >= 1 && s.n_heads % s.n_kv_heads == 0);
  MOERUN_CHECK(s.rope_dims % 2 == 0 && s.rope_dims <= s.head_dim);
}

}  // namespace

void attention_prepare_cuda(const AttentionShape& shape, const DeviceBatch& batch, int64_t kv_layer,
                            const float* q_proj, const float* k, const float* v,
                            const float* q_norm, const float* k_norm, const float* inv_freq,
                            float* q, float* gate, cudaStream_t stream) {
  check_shape(shape);
  if (batch.n_tokens == 0) return;
  const dim3 grid(static_cast<unsigned>(batch.n_tokens),
                  static_cast<unsigned>(shape.n_heads + shape.n_kv_heads));
  const int threads = round_up(static_cast<int>(shape.head_dim), 32);
  attention_prepare_kernel<<<grid, threads, 0, stream>>>(
      shape, batch, static_cast<int>(kv_layer), q_proj, k, v, q_norm, k_norm, inv_freq, q, gate);
  MOERUN_CUDA_CHECK_LAUNCH();
}

int64_t attention_workspace_floats(const AttentionShape& shape, int64_t n, int64_t splits) {
  return n * shape.n_heads * splits * (2 + shape.head_dim);
}

void attention_cuda(const AttentionShape& shape, const DeviceBatch& batch, int64_t kv_layer,
                    const float* q, const float* gate, int64_t splits, float* workspace, float* out,
                    cudaStream_t stream) {
  check_shape(shape);
  MOERUN_CHECK(splits >= 1 && splits <= kMaxSplits);
  if (batch.n_tokens == 0) return;
  const int64_t blocks = batch.n_tokens * shape.n_heads;
  float* part_ml = workspace;                         // [blocks, splits, 2]
  float* part_acc = workspace + blocks * splits * 2;  // [blocks, splits, head_dim]
  const dim3 grid(static_cast<unsigned>(blocks), static_cast<unsigned>(splits));
  attention_split_kernel<<<grid, kWarps * 32, 0, stream>>>(
      shape, batch, static_cast<int>(kv_layer), q, static_cast<int>(splits), part_ml, part_acc);
  MOERUN_CUDA_CHECK_LAUNCH();
  const int threads = round_up(static_cast<int>(shape.head_dim), 32);
  attention_merge_kernel<<<static_cast<unsigned>(blocks), threads, 0, stream>>>(
      shape, static_cast<int>(splits), part_ml, part_acc, gate, out);
  MOERUN_CUDA_CHECK_LAUNCH();
}

}  // namespace moerun
