#include <algorithm>

#include "core/error.h"
#include "ops/cuda/cuda_check.cuh"
#include "ops/cuda/deltanet_cuda.h"
#include "ops/cuda/reduce.cuh"

namespace moerun {
namespace {

constexpr int kMaxConvKernel = 8;
constexpr int kMaxKeyDim = 256;

// The floats of one run's state for DeltaNet layer `layer`: conv state, then recurrent state.
__device__ inline float* layer_state(const DeviceBatch& b, int run, int layer, int64_t per_layer) {
  return b.recurrent[run] + static_cast<int64_t>(layer) * per_layer;
}

__global__ void ungroup_kernel(DeltaNetShape s, const float* proj, int64_t total, float* mixed,
                               float* z) {
  const int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (idx >= total) return;
  const int64_t kd = s.k_dim;
  const int64_t gv = (s.v_heads / s.k_heads) * s.v_dim;
  const int64_t group = 2 * kd + 2 * gv;
  const int64_t row = s.k_heads * group;
  const int64_t t = idx / row;
  const int64_t g = (idx % row) / group;
  const int64_t i = idx % group;
  const float val = proj[idx];
  float* m = mixed + t * s.channels();
  if (i < kd) {
    m[g * kd + i] = val;
  } else if (i < 2 * kd) {
    m[s.key_width() + g * kd + (i - kd)] = val;
  } else if (i < 2 * kd + gv) {
    m[2 * s.key_width() + g * gv + (i - 2 * kd)] = val;
  } else {
    z[t * s.value_width() + g * gv + (i - 2 * kd - gv)] = val;
  }
}

// Block (run, channel tile): each thread one channel, its window of kernel - 1 past inputs in
// registers, over the run's tokens in order.
__global__ void conv_kernel(DeltaNetShape s, DeviceBatch b, int layer, const float* mixed,
                            const float* w, float* y) {
  const int run = blockIdx.x;
  const int c = blockIdx.y * blockDim.x + threadIdx.x;
  const int channels = static_cast<int>(s.channels());
  if (c >= channels) return;
  const int hist = static_cast<int>(s.conv_kernel) - 1;
  float* state = layer_state(b, run, layer, s.conv_floats() + s.ssm_floats());
  float window[kMaxConvKernel];
  float taps[kMaxConvKernel];
#pragma unroll
  for (int j = 0; j < kMaxConvKernel; ++j) {
    window[j] = j < hist ? state[static_cast<int64_t>(j) * channels + c] : 0.0f;
    taps[j] = j <= hist ? w[static_cast<int64_t>(j) * channels + c] : 0.0f;
  }
  const int begin = b.run_begin[run];
  const int count = b.run_count[run];
  for (int t = begin; t < begin + count; ++t) {
    const float x = mixed[static_cast<int64_t>(t) * channels + c];
    float acc = 0.0f;
#pragma unroll
    for (int j = 0; j < kMaxConvKernel; ++j) {
      if (j < hist) acc += taps[j] * window[j];
    }
    acc += taps[hist] * x;
    y[static_cast<int64_t>(t) * channels + c] = silu_f(acc);
#pragma unroll
    for (int j = 0; j + 1 < kMaxConvKernel; ++j) {
      if (j + 1 < hist) window[j] = window[j + 1];
    }
    if (hist > 0) window[hist - 1] = x;
  }
#pragma unroll
  for (int j = 0; j < kMaxConvKernel; ++j) {
    if (j < hist) state[static_cast<int64_t>(j) * channels + c] = window[j];
  }
}

__device__ inline float softplus_f(float x) {
  return x > 20.0f ? x : log1pf(expf(x));
}

// Block (run, value head) of `parts` x vdr threads (vdr: v_dim rounded up to a warp): thread
// (p, j) owns rows [p * rows, (p + 1) * rows) of column j of the head's state S [k_dim, v_dim] in
// registers; S^T k and S^T q are summed over the parts through shared memory, in part order, so
// every part sees the same value. Splitting the rows keeps many loads in flight per head.
template <int kMaxRows>
__global__ void recurrent_kernel(DeltaNetShape s, DeviceBatch b, int layer, int parts,
                                 const float* conv, const float* ba, const float* z,
                                 const float* dt_bias, const float* a, const float* norm_w,
                                 float* core) {
  __shared__ float scratch[32];
  __shared__ float qs[kMaxKeyDim];
  __shared__ float ks[kMaxKeyDim];
  __shared__ float part_sum[1024];  // [parts, vdr]
  const int run = blockIdx.x;
  const int h = blockIdx.y;
  const int vdr = static_cast<int>(blockDim.x) / parts;
  const int p = static_cast<int>(threadIdx.x) / vdr;
  const int j = static_cast<int>(threadIdx.x) % vdr;
  const int kd = static_cast<int>(s.k_dim);
  const int vd = static_cast<int>(s.v_dim);
  const int rows = (kd + parts - 1) / parts;
  const int i0 = p * rows;
  const int r = static_cast<int>(s.v_heads / s.k_heads);
  const int kh = h / r;
  const int channels = static_cast<int>(s.channels());
  const int value_width = static_cast<int>(s.value_width());
  const bool active = j < vd;
  float* ssm = layer_state(b, run, layer, s.conv_floats() + s.ssm_floats()) + s.conv_floats() +
               static_cast<int64_t>(h) * kd * vd;
  float st[kMaxRows];
#pragma unroll
  for (int q = 0; q < kMaxRows; ++q) {
    const int i = i0 + q;
    st[q] = (active && q < rows && i < kd) ? ssm[static_cast<int64_t>(i) * vd + j] : 0.0f;
  }
  const float q_scale = rsqrtf(static_cast<float>(kd));
  const float a_h = a[h];
  const float dt = dt_bias[h];
  const float w_j = active ? norm_w[j] : 0.0f;
  const int begin = b.run_begin[run];
  const int count = b.run_count[run];
  for (int t = begin; t < begin + count; ++t) {
    const float* row = conv + static_cast<int64_t>(t) * channels;
    float sq = 0.0f;
    float sk = 0.0f;
    for (int i = static_cast<int>(threadIdx.x); i < kd; i += static_cast<int>(blockDim.x)) {
      const float qi = row[kh * kd + i];
      const float ki = row[s.key_width() + kh * kd + i];
      qs[i] = qi;
      ks[i] = ki;
      sq += qi * qi;
      sk += ki * ki;
    }
    sq = block_sum(sq, scratch);
    sk = block_sum(sk, scratch);
    const float q_norm = 1.0f / sqrtf(sq + 1e-6f);
    const float k_norm = 1.0f / sqrtf(sk + 1e-6f);
    for (int i = static_cast<int>(threadIdx.x); i < kd; i += static_cast<int>(blockDim.x)) {
      qs[i] = qs[i] * q_norm * q_scale;
      ks[i] = ks[i] * k_norm;
    }
    __syncthreads();
    const float* bat = ba + static_cast<int64_t>(t) * 2 * s.v_heads;
    const float beta = sigmoid_f(bat[kh * 2 * r + h % r]);
    const float decay = expf(a_h * softplus_f(bat[kh * 2 * r + r + h % r] + dt));
    const float vj = active ? row[2 * s.key_width() + h * vd + j] : 0.0f;
    float kv = 0.0f;
#pragma unroll
    for (int q = 0; q < kMaxRows; ++q) {
      if (q < rows && i0 + q < kd) {
        st[q] *= decay;
        kv += ks[i0 + q] * st[q];
      }
    }
    part_sum[threadIdx.x] = kv;
    __syncthreads();
    kv = 0.0f;
    for (int q = 0; q < parts; ++q) kv += part_sum[q * vdr + j];
    const float delta = (vj - kv) * beta;
    float o = 0.0f;
#pragma unroll
    for (int q = 0; q < kMaxRows; ++q) {
      if (q < rows && i0 + q < kd) {
        st[q] += ks[i0 + q] * delta;
        o += qs[i0 + q] * st[q];
      }
    }
    __syncthreads();  // every part has read S^T k
    part_sum[threadIdx.x] = o;
    __syncthreads();
    o = 0.0f;
    for (int q = 0; q < parts; ++q) o += part_sum[q * vdr + j];
    const bool writer = active && p == 0;
    const float ss = block_sum(writer ? o * o : 0.0f, scratch);
    if (writer) {
      const float scale = 1.0f / sqrtf(ss / static_cast<float>(vd) + s.rms_eps);
      const float zj = z[static_cast<int64_t>(t) * value_width + h * vd + j];
      core[static_cast<int64_t>(t) * value_width + h * vd + j] = w_j * (o * scale) * silu_f(zj);
    }
    __syncthreads();  // qs, ks and part_sum are rewritten for the next token
  }
  if (active) {
#pragma unroll
    for (int q = 0; q < kMaxRows; ++q) {
      const int i = i0 + q;
      if (q < rows && i < kd) ssm[static_cast<int64_t>(i) * vd + j] = st[q];
    }
  }
}

}  // namespace

void deltanet_ungroup_cuda(const DeltaNetShape& shape, const float* proj, int64_t n, float* mixed,
                           float* z, cudaStream_t stream) {
  const int64_t total = n * (2 * shape.key_width() + 2 * shape.value_width());
  if (total == 0) return;
  constexpr int kThreads = 256;
  ungroup_kernel<<<static_cast<unsigned>((total + kThreads - 1) / kThreads), kThreads, 0, stream>>>(
      shape, proj, total, mixed, z);
  MOERUN_CUDA_CHECK_LAUNCH();
}

void deltanet_conv_cuda(const DeltaNetShape& shape, const DeviceBatch& batch, int64_t layer,
                        const float* mixed, const float* w, float* y, cudaStream_t stream) {
  MOERUN_CHECK(shape.conv_kernel >= 1 && shape.conv_kernel <= kMaxConvKernel);
  if (batch.n_runs == 0) return;
  constexpr int kThreads = 128;
  const dim3 grid(static_cast<unsigned>(batch.n_runs),
                  static_cast<unsigned>((shape.channels() + kThreads - 1) / kThreads));
  conv_kernel<<<grid, kThreads, 0, stream>>>(shape, batch, static_cast<int>(layer), mixed, w, y);
  MOERUN_CUDA_CHECK_LAUNCH();
}

void deltanet_recurrent_cuda(const DeltaNetShape& shape, const DeviceBatch& batch, int64_t layer,
                             const float* conv, const float* ba, const float* z,
                             const float* dt_bias, const float* a, const float* norm_w, float* core,
                             cudaStream_t stream) {
  MOERUN_CHECK(shape.k_dim >= 1 && shape.k_dim <= kMaxKeyDim);
  MOERUN_CHECK(shape.v_dim >= 1 && shape.v_dim <= 1024);
  MOERUN_CHECK(shape.k_heads >= 1 && shape.v_heads % shape.k_heads == 0);
  if (batch.n_runs == 0) return;
  const dim3 grid(static_cast<unsigned>(batch.n_runs), static_cast<unsigned>(shape.v_heads));
  // Rows of the state split in parts of at most 32 (while the block stays within 1024 threads).
  const int vdr = round_up(static_cast<int>(shape.v_dim), 32);
  const int kd = static_cast<int>(shape.k_dim);
  const int parts = std::max(1, std::min((kd + 31) / 32, 1024 / vdr));
  const int rows = (kd + parts - 1) / parts;
  const int threads = parts * vdr;
  const int l = static_cast<int>(layer);
  if (rows <= 32) {
    recurrent_kernel<32><<<grid, threads, 0, stream>>>(shape, batch, l, parts, conv, ba, z, dt_bias,
                                                       a, norm_w, core);
  } else if (rows <= 64) {
    recurrent_kernel<64><<<grid, threads, 0, stream>>>(shape, batch, l, parts, conv, ba, z, dt_bias,
                                                       a, norm_w, core);
  } else if (rows <= 128) {
    recurrent_kernel<128><<<grid, threads, 0, stream>>>(shape, batch, l, parts, conv, ba, z,
                                                        dt_bias, a, norm_w, core);
  } else {
    recurrent_kernel<256><<<grid, threads, 0, stream>>>(shape, batch, l, parts, conv, ba, z,
                                                        dt_bias, a, norm_w, core);
  }
  MOERUN_CUDA_CHECK_LAUNCH();
}

}  // namespace moerun
