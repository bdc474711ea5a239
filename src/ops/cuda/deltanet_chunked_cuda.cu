// The chunked form of the gated delta rule. Per value head, within a chunk of C tokens with
// G_t = cumulative sum of the log decays g (G includes token t's own decay), beta_t, normalised
// q_t, k_t and the state S0 [k_dim, v_dim] before the chunk, the recurrence
//   S *= exp(g_t); delta_t = beta_t (v_t - S^T k_t); S += k_t delta_t^T; o_t = S^T q_t
// unrolls to
//   (I - A) delta = X,  A[s][r] = -beta_s exp(G_s - G_r) (k_s . k_r) for r < s, else 0,
//                       X[s] = beta_s (v_s - exp(G_s) S0^T k_s)
//   o_s = exp(G_s) S0^T q_s + sum_{r <= s} exp(G_s - G_r) (q_s . k_r) delta_r
//   S  <- exp(G_last) S0 + sum_s exp(G_last - G_s) k_s delta_s^T.
// (transformers' torch_chunk_gated_delta_rule with U - W S0 folded into X: the triangular solve is
// applied to X directly, so W is never formed.) Rows past the end of a run are zero (g = 0,
// beta = 0), which leaves delta, the outputs and the state update of the real rows unchanged.
#include "core/error.h"
#include "ops/cuda/cuda_check.cuh"
#include "ops/cuda/deltanet_chunked_cuda.h"
#include "ops/cuda/reduce.cuh"

namespace moerun {
namespace {

constexpr int kChunk = 32;  // tokens per chunk: one per lane in the scan and the C x C products
constexpr int kTile = 32;   // state columns per block: one per lane
constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kMaxChunkKeyDim = 128;
constexpr int kRowsPerThread = kChunk / kWarps;              // chunk rows per thread (4)
constexpr int kStateRowsPerWarp = kMaxChunkKeyDim / kWarps;  // state rows per warp in the update
static_assert(kChunk == 32 && kTile == 32, "lanes index chunk rows and state columns");
static_assert(kStateRowsPerWarp % 16 == 0, "state rows per warp: a multiple of the key padding");

// Where each buffer of the chunked kernel starts in shared memory (offsets in floats).
struct ChunkSmem {
  int kp = 0;  // k_dim rounded up to 16 (zero padded)
  int ks = 0;  // row stride of q and k: kp + 4 (16-byte rows without bank conflicts)
  int q = 0, k = 0, state = 0, x = 0, a = 0, qk = 0, g = 0, beta = 0, exp_g = 0, to_end = 0;
  int floats = 0;
};

// The shared-memory layout for key width kd (at most kMaxChunkKeyDim).
__host__ __device__ inline ChunkSmem chunk_smem(int kd) {
  ChunkSmem m;
  m.kp = (kd + 15) / 16 * 16;
  m.ks = m.kp + 4;
  m.q = 0;                        // [kChunk, ks] normalised, scaled q
  m.k = m.q + kChunk * m.ks;      // [kChunk, ks] normalised k
  m.state = m.k + kChunk * m.ks;  // [kp, kTile] state columns of this block
  m.x = m.state + m.kp * kTile;   // [kChunk, kTile] v, then X, then delta
  m.a = m.x + kChunk * kTile;     // [kChunk, kChunk] A (strictly lower)
  m.qk = m.a + kChunk * kChunk;   // [kChunk, kChunk] decayed q k^T (lower incl. diagonal)
  m.g = m.qk + kChunk * kChunk;   // [kChunk] cumulative log decay G
  m.beta = m.g + kChunk;          // [kChunk] beta
  m.exp_g = m.beta + kChunk;      // [kChunk] exp(G)
  m.to_end = m.exp_g + kChunk;    // [kChunk] exp(G_last - G)
  m.floats = m.to_end + kChunk;
  return m;
}

__device__ inline float softplus_f(float x) {
  return x > 20.0f ? x : log1pf(expf(x));
}

// Block (run, value head h, tile of kTile state columns): the run's tokens chunk by chunk, the
// state tile in shared memory. Writes the unnormalised o of its columns into out [n, value_width].
__global__ void __launch_bounds__(kThreads)
    chunked_kernel(DeltaNetShape s, DeviceBatch b, int layer, const float* conv, const float* ba,
                   const float* dt_bias, const float* a, float* out) {
  extern __shared__ float4 smem4[];
  float* smem = reinterpret_cast<float*>(smem4);
  const int run = blockIdx.x;
  const int h = blockIdx.y;
  const int j0 = blockIdx.z * kTile;
  const int tid = threadIdx.x;
  const int lane = tid & 31;
  const int warp = tid >> 5;
  const int kd = static_cast<int>(s.k_dim);
  const int vd = static_cast<int>(s.v_dim);
  const int r = static_cast<int>(s.v_heads / s.k_heads);
  const int kh = h / r;
  const int64_t channels = s.channels();
  const int64_t key_width = s.key_width();
  const int64_t value_width = s.value_width();
  const ChunkSmem m = chunk_smem(kd);
  float* qs = smem + m.q;
  float* ks = smem + m.k;
  float* st = smem + m.state;
  float* xs = smem + m.x;
  float* as = smem + m.a;
  float* qks = smem + m.qk;
  float* gs = smem + m.g;
  float* betas = smem + m.beta;
  float* exp_gs = smem + m.exp_g;
  float* to_end = smem + m.to_end;

  const int begin = b.run_begin[run];
  const int count = b.run_count[run];
  if (count == 0) return;  // uniform over the block
  float* ssm = b.recurrent[run] + static_cast<int64_t>(layer) * (s.conv_floats() + s.ssm_floats()) +
               s.conv_floats() + static_cast<int64_t>(h) * kd * vd;
  for (int e = tid; e < m.kp * kTile; e += kThreads) {
    const int i = e / kTile;
    const int j = e % kTile;
    st[e] = (i < kd && j0 + j < vd) ? ssm[static_cast<int64_t>(i) * vd + j0 + j] : 0.0f;
  }
  const float q_scale = rsqrtf(static_cast<float>(kd));
  const float a_h = a[h];
  const float dt = dt_bias[h];
  const bool column = j0 + lane < vd;  // this lane's state column exists

  for (int c0 = 0; c0 < count; c0 += kChunk) {
    const int nc = min(kChunk, count - c0);
    const int64_t t0 = static_cast<int64_t>(begin) + c0;
    // 1. Raw q, k, v of the chunk (zero past the run and in the padding); gates and their
    //    cumulative sum (warp 0, one token per lane).
    for (int e = tid; e < kChunk * m.kp; e += kThreads) {
      const int row = e / m.kp;
      const int i = e % m.kp;
      float qv = 0.0f;
      float kv = 0.0f;
      if (row < nc && i < kd) {
        const float* src = conv + (t0 + row) * channels;
        qv = src[kh * kd + i];
        kv = src[key_width + kh * kd + i];
      }
      qs[row * m.ks + i] = qv;
      ks[row * m.ks + i] = kv;
    }
    for (int e = tid; e < kChunk * kTile; e += kThreads) {
      const int row = e / kTile;
      const int j = e % kTile;
      xs[e] =
          (row < nc && j0 + j < vd)
              ? conv[(t0 + row) * channels + 2 * key_width + static_cast<int64_t>(h) * vd + j0 + j]
              : 0.0f;
    }
    if (warp == 0) {
      float g = 0.0f;
      float beta = 0.0f;
      if (lane < nc) {
        const float* bat = ba + (t0 + lane) * 2 * s.v_heads;
        beta = sigmoid_f(bat[kh * 2 * r + h % r]);
        g = a_h * softplus_f(bat[kh * 2 * r + r + h % r] + dt);
      }
#pragma unroll
      for (int off = 1; off < 32; off <<= 1) {
        const float up = __shfl_up_sync(0xffffffffu, g, off);
        if (lane >= off) g += up;
      }
      const float last = __shfl_sync(0xffffffffu, g, kChunk - 1);
      gs[lane] = g;
      betas[lane] = beta;
      exp_gs[lane] = expf(g);
      to_end[lane] = expf(last - g);
    }
    __syncthreads();

    // 2. L2 norms of q and k per token (q also / sqrt(k_dim)), one warp per row.
    for (int row = warp; row < kChunk; row += kWarps) {
      float sq = 0.0f;
      float sk = 0.0f;
      for (int i = lane; i < m.kp; i += 32) {
        const float qv = qs[row * m.ks + i];
        const float kv = ks[row * m.ks + i];
        sq += qv * qv;
        sk += kv * kv;
      }
      sq = warp_sum(sq);
      sk = warp_sum(sk);
      const float q_norm = 1.0f / sqrtf(sq + 1e-6f);
      const float k_norm = 1.0f / sqrtf(sk + 1e-6f);
      for (int i = lane; i < m.kp; i += 32) {
        qs[row * m.ks + i] = qs[row * m.ks + i] * q_norm * q_scale;
        ks[row * m.ks + i] = ks[row * m.ks + i] * k_norm;
      }
    }
    __syncthreads();

    // 3. Thread (rows warp + 8 e, lane): A and decayed q k^T at column `lane`, X and
    //    exp(G) S0^T q at state column `lane`.
    float o_inter[kRowsPerThread];
    {
      float k_s[kRowsPerThread] = {};  // S0^T k_row at this column
      float q_s[kRowsPerThread] = {};  // S0^T q_row
      float kk[kRowsPerThread] = {};   // k_row . k_lane
      float qk[kRowsPerThread] = {};   // q_row . k_lane
      const float* k_lane = ks + lane * m.ks;
      for (int i = 0; i < m.kp; i += 4) {
        const float4 kl = *reinterpret_cast<const float4*>(k_lane + i);
        const float s0 = st[(i + 0) * kTile + lane];
        const float s1 = st[(i + 1) * kTile + lane];
        const float s2 = st[(i + 2) * kTile + lane];
        const float s3 = st[(i + 3) * kTile + lane];
#pragma unroll
        for (int e = 0; e < kRowsPerThread; ++e) {
          const int row = warp + e * kWarps;
          const float4 kr = *reinterpret_cast<const float4*>(ks + row * m.ks + i);
          const float4 qr = *reinterpret_cast<const float4*>(qs + row * m.ks + i);
          k_s[e] += kr.x * s0 + kr.y * s1 + kr.z * s2 + kr.w * s3;
          q_s[e] += qr.x * s0 + qr.y * s1 + qr.z * s2 + qr.w * s3;
          kk[e] += kr.x * kl.x + kr.y * kl.y + kr.z * kl.z + kr.w * kl.w;
          qk[e] += qr.x * kl.x + qr.y * kl.y + qr.z * kl.z + qr.w * kl.w;
        }
      }
      const float g_lane = gs[lane];
#pragma unroll
      for (int e = 0; e < kRowsPerThread; ++e) {
        const int row = warp + e * kWarps;
        const float g_row = gs[row];
        // exp only where the mask keeps the entry (G_row - G_lane > 0 above the diagonal).
        as[row * kChunk + lane] = lane < row ? -betas[row] * expf(g_row - g_lane) * kk[e] : 0.0f;
        qks[row * kChunk + lane] = lane <= row ? expf(g_row - g_lane) * qk[e] : 0.0f;
        xs[row * kTile + lane] = betas[row] * (xs[row * kTile + lane] - exp_gs[row] * k_s[e]);
        o_inter[e] = exp_gs[row] * q_s[e];
      }
    }
    __syncthreads();

    // 4. delta = (I - A)^-1 X by forward substitution: warp 0, lane = state column, so each lane
    //    only reads rows of delta it wrote itself (no barrier inside).
    if (warp == 0) {
      float d[kChunk];
#pragma unroll
      for (int row = 0; row < kChunk; ++row) {
        float acc[4] = {xs[row * kTile + lane], 0.0f, 0.0f, 0.0f};
#pragma unroll
        for (int c = 0; c < row; ++c) acc[c % 4] += as[row * kChunk + c] * d[c];
        d[row] = (acc[0] + acc[1]) + (acc[2] + acc[3]);
        xs[row * kTile + lane] = d[row];
      }
    }
    __syncthreads();

    // 5. Outputs of the chunk's rows at this lane's column, and the state update (rows
    //    warp * kStateRowsPerWarp onwards); neither reads the state tile's old values but
    //    through o_inter.
#pragma unroll
    for (int e = 0; e < kRowsPerThread; ++e) {
      const int row = warp + e * kWarps;
      float acc = o_inter[e];
      for (int c = 0; c <= row; ++c) acc += qks[row * kChunk + c] * xs[c * kTile + lane];
      if (row < nc && column) {
        out[(t0 + row) * value_width + static_cast<int64_t>(h) * vd + j0 + lane] = acc;
      }
    }
    {
      // kp and ib are multiples of 16: rows ib .. ib + 15 of the padded tile exist.
      const int i0 = warp * kStateRowsPerWarp;
      for (int ib = i0; ib < i0 + kStateRowsPerWarp && ib < m.kp; ib += 16) {
        const float decay_all = exp_gs[kChunk - 1];
        float acc[16];
#pragma unroll
        for (int q = 0; q < 16; ++q) acc[q] = st[(ib + q) * kTile + lane] * decay_all;
        for (int c = 0; c < kChunk; ++c) {
          const float w = xs[c * kTile + lane] * to_end[c];
          const float* krow = ks + c * m.ks + ib;
#pragma unroll
          for (int q4 = 0; q4 < 4; ++q4) {
            const float4 kv = *reinterpret_cast<const float4*>(krow + 4 * q4);
            acc[4 * q4 + 0] += kv.x * w;
            acc[4 * q4 + 1] += kv.y * w;
            acc[4 * q4 + 2] += kv.z * w;
            acc[4 * q4 + 3] += kv.w * w;
          }
        }
#pragma unroll
        for (int q = 0; q < 16; ++q) st[(ib + q) * kTile + lane] = acc[q];
      }
    }
    __syncthreads();  // the next chunk rewrites q, k, x and reads the state
  }
  for (int e = tid; e < kd * kTile; e += kThreads) {
    const int i = e / kTile;
    const int j = e % kTile;
    if (j0 + j < vd) ssm[static_cast<int64_t>(i) * vd + j0 + j] = st[e];
  }
}

// Block (token, value head): core = norm_w * rms_norm(o) * silu(z) in place over the head's v_dim
// values (the recurrent kernel's epilogue), for tokens inside a run only (others are untouched, as
// the recurrent kernel leaves them).
__global__ void gated_norm_kernel(DeltaNetShape s, DeviceBatch b, const float* z,
                                  const float* norm_w, float* core) {
  __shared__ float scratch[32];
  const int t = static_cast<int>(blockIdx.x);
  bool in_run = false;
  for (int64_t r = 0; r < b.n_runs; ++r) {
    in_run = in_run || (t >= b.run_begin[r] && t < b.run_begin[r] + b.run_count[r]);
  }
  if (!in_run) return;  // uniform over the block
  const int h = blockIdx.y;
  const int j = threadIdx.x;
  const int vd = static_cast<int>(s.v_dim);
  const bool active = j < vd;
  const int64_t at = t * s.value_width() + static_cast<int64_t>(h) * vd + j;
  const float o = active ? core[at] : 0.0f;
  const float ss = block_sum(active ? o * o : 0.0f, scratch);
  if (active) {
    const float scale = 1.0f / sqrtf(ss / static_cast<float>(vd) + s.rms_eps);
    core[at] = norm_w[j] * (o * scale) * silu_f(z[at]);
  }
}

}  // namespace

void deltanet_chunked_cuda(const DeltaNetShape& shape, const DeviceBatch& batch, int64_t layer,
                           const float* conv, const float* ba, const float* z, const float* dt_bias,
                           const float* a, const float* norm_w, float* core, cudaStream_t stream) {
  MOERUN_CHECK(shape.k_dim >= 1);
  MOERUN_CHECK(shape.v_dim >= 1 && shape.v_dim <= 1024);
  MOERUN_CHECK(shape.k_heads >= 1 && shape.v_heads % shape.k_heads == 0);
  if (shape.k_dim > kMaxChunkKeyDim) {
    deltanet_recurrent_cuda(shape, batch, layer, conv, ba, z, dt_bias, a, norm_w, core, stream);
    return;
  }
  if (batch.n_runs == 0 || batch.n_tokens == 0) return;
  const ChunkSmem m = chunk_smem(static_cast<int>(shape.k_dim));
  const auto bytes = static_cast<int>(static_cast<size_t>(m.floats) * sizeof(float));
  // At most 63 KiB (k_dim 128): above the 48 KiB default, within every target's limit.
  MOERUN_CUDA_CHECK(
      cudaFuncSetAttribute(chunked_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
  const dim3 grid(static_cast<unsigned>(batch.n_runs), static_cast<unsigned>(shape.v_heads),
                  static_cast<unsigned>((shape.v_dim + kTile - 1) / kTile));
  chunked_kernel<<<grid, kThreads, static_cast<size_t>(bytes), stream>>>(
      shape, batch, static_cast<int>(layer), conv, ba, dt_bias, a, core);
  MOERUN_CUDA_CHECK_LAUNCH();
  const dim3 norm_grid(static_cast<unsigned>(batch.n_tokens), static_cast<unsigned>(shape.v_heads));
  gated_norm_kernel<<<norm_grid, round_up(static_cast<int>(shape.v_dim), 32), 0, stream>>>(
      shape, batch, z, norm_w, core);
  MOERUN_CUDA_CHECK_LAUNCH();
}

}  // namespace moerun
