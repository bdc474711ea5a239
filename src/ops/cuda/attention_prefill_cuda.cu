// Tiled causal attention for prefill. A block handles one (run, KV head, tile of query tokens):
// its 64 query rows are (token, head of the GQA group) pairs, kept in shared memory, and it walks
// the run's keys [0, last position of the tile] in tiles of 4096 / HD keys. Per key tile:
//   1. keys -> shared memory,
//   2. scores S [rows, keys] = q k (q pre-scaled by 1/sqrt(head_dim)), -inf past each row's
//      position,
//   3. online softmax per row (running max m and sum l, f32), values -> shared memory (reusing the
//      key buffer),
//   4. acc [rows, HD] = acc * exp(m_old - m_new) + P V, in registers.
// HD is head_dim rounded up to 64, 128 or 256; padded dims are zero in q, k and v.
#include <atomic>
#include <climits>
#include <cstdint>

#include "core/error.h"
#include "ops/cuda/attention_prefill_cuda.h"
#include "ops/cuda/cuda_check.cuh"
#include "ops/cuda/reduce.cuh"

namespace moerun {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kRows = 64;  // query rows per block: lanes hold rows lane and lane + 32 in step 2
constexpr int kRowsPerWarp = kRows / kWarps;  // step 4: warp w owns rows [8w, 8w + 8)
constexpr int kMaxHeadDim = 256;
static_assert(kRows == 64 && kRowsPerWarp == 8, "steps 2 and 4 assume 64 rows and 8 warps");

// Tile geometry for head dims padded to HD.
template <int HD>
struct Tile {
  static constexpr int kKeys = 4096 / HD;              // keys per tile: 64, 32, 16
  static constexpr int kQStride = HD + 4;              // padded query row: float4 reads without
                                                       // bank conflicts across rows
  static constexpr int kKeysPerWarp = kKeys / kWarps;  // step 2
  static constexpr int kVec = HD >= 128 ? 4 : 2;       // step 4: each lane's contiguous dims
  static constexpr int kChunks = HD / (32 * kVec);     // step 4: chunks of kVec dims per lane
  static constexpr int kDimsPerLane = kVec * kChunks;
  // Queries, key/value tile, probabilities, row max/sum/rescale (f32) and row positions (int).
  static constexpr size_t kSmemBytes =
      sizeof(float) * (kRows * kQStride + kKeys * HD + kKeys * kRows + 3 * kRows) +
      sizeof(int) * kRows;
  static_assert(kKeys % kWarps == 0 && kKeys % 4 == 0 && HD % (32 * kVec) == 0);
};

// Shared memory per block stays within 96 KiB, under the 99 KiB opt-in limit of sm_86/sm_89
// (sm_80: 163 KiB, sm_90: 227 KiB). The static `tile` array adds 12 bytes.
static_assert(Tile<64>::kSmemBytes <= 96 * 1024);
static_assert(Tile<128>::kSmemBytes <= 96 * 1024);
static_assert(Tile<256>::kSmemBytes <= 96 * 1024);

// Copies rows [k0, k0 + kKeys) of src (row stride kv_width, hd floats used) into dst [kKeys, HD];
// rows at or past kv_end and dims at or past hd are zero (never read from global memory).
template <int HD>
__device__ inline void load_key_tile(float* dst, const float* src, int k0, int kv_end, int hd,
                                     int kv_width) {
  constexpr int kElems = Tile<HD>::kKeys * HD;
  for (int i = static_cast<int>(threadIdx.x); i < kElems; i += kThreads) {
    const int j = i / HD;
    const int d = i % HD;
    const int key = k0 + j;
    dst[i] = key < kv_end && d < hd ? src[static_cast<int64_t>(key) * kv_width + d] : 0.0f;
  }
}

// kVec consecutive floats from 8- (kVec 2) or 16-byte (kVec 4) aligned shared memory.
template <int kVec>
__device__ inline void load_vec(const float* p, float (&v)[kVec]) {
  if constexpr (kVec == 4) {
    const float4 x = *reinterpret_cast<const float4*>(p);
    v[0] = x.x;
    v[1] = x.y;
    v[2] = x.z;
    v[3] = x.w;
  } else {
    const float2 x = *reinterpret_cast<const float2*>(p);
    v[0] = x.x;
    v[1] = x.y;
  }
}

// Block (tile slot, KV head); slots enumerate the tiles of run 0, then run 1, ... (the last tile
// of a run first: it has the most keys); slots past the last tile exit.
template <int HD>
__global__ void __launch_bounds__(kThreads)
    attention_prefill_kernel(AttentionShape s, DeviceBatch b, int kv_layer, const float* q,
                             const float* gate, int tile_tokens, float* out) {
  using T = Tile<HD>;
  constexpr int kKeys = T::kKeys;
  constexpr int kQStride = T::kQStride;
  extern __shared__ float4 smem4[];
  float* q_s = reinterpret_cast<float*>(smem4);  // [kRows, kQStride] queries / sqrt(head_dim)
  float* kv_s = q_s + kRows * kQStride;          // [kKeys, HD] keys, then values, of the tile
  float* p_s = kv_s + kKeys * HD;                // [kKeys, kRows] scores, then probabilities
  float* row_m = p_s + kKeys * kRows;            // [kRows] running max
  float* row_l = row_m + kRows;                  // [kRows] running sum of exp(score - max)
  float* row_corr = row_l + kRows;               // [kRows] exp(old max - new max) of this tile
  int* row_pos = reinterpret_cast<int*>(row_corr + kRows);  // [kRows] position, -1 for padding
  __shared__ int tile[3];                                   // run, first token, tokens

  const int tid = static_cast<int>(threadIdx.x);
  const int lane = tid & 31;
  const int warp = tid >> 5;
  const int kvh = static_cast<int>(blockIdx.y);
  const int hd = static_cast<int>(s.head_dim);
  const int n_heads = static_cast<int>(s.n_heads);
  const int group = static_cast<int>(s.n_heads / s.n_kv_heads);
  const int kv_width = static_cast<int>(s.n_kv_heads * s.head_dim);

  if (tid == 0) {
    int slot = static_cast<int>(blockIdx.x);
    int run = -1, first = 0, count = 0;
    for (int r = 0; r < static_cast<int>(b.n_runs); ++r) {
      const int c = b.run_count[r];
      const int tiles = (c + tile_tokens - 1) / tile_tokens;
      if (slot < tiles) {
        const int local = tiles - 1 - slot;
        run = r;
        first = b.run_begin[r] + local * tile_tokens;
        count = min(tile_tokens, c - local * tile_tokens);
        break;
      }
      slot -= tiles;
    }
    tile[0] = run;
    tile[1] = first;
    tile[2] = count;
  }
  __syncthreads();
  const int run = tile[0];
  if (run < 0) return;  // the whole block: no tile for this slot
  const int first = tile[1];
  const int rows = tile[2] * group;  // rows [0, rows) are real, the rest padding

  // Row r is token first + r / group, query head kvh * group + r % group.
  for (int r = tid; r < kRows; r += kThreads) {
    row_pos[r] = r < rows ? b.positions[first + r / group] : -1;
    row_m[r] = -INFINITY;
    row_l[r] = 0.0f;
    row_corr[r] = 1.0f;
  }
  const float scale = rsqrtf(static_cast<float>(hd));
  for (int i = tid; i < kRows * HD; i += kThreads) {
    const int r = i / HD;
    const int d = i % HD;
    float x = 0.0f;
    if (r < rows && d < hd) {
      const int64_t t = first + r / group;
      const int64_t h = kvh * group + r % group;
      x = q[(t * n_heads + h) * hd + d] * scale;
    }
    q_s[r * kQStride + d] = x;
  }
  __syncthreads();
  int kv_end = 0;  // keys [0, kv_end) are seen by some row of the tile
  for (int r = 0; r < kRows; ++r) kv_end = max(kv_end, row_pos[r] + 1);

  const int64_t cap = b.capacity[run];
  const float* keys = b.kv[run] + 2 * static_cast<int64_t>(kv_layer) * cap * kv_width + kvh * hd;
  const float* values = keys + cap * kv_width;

  float acc[kRowsPerWarp][T::kDimsPerLane];  // rows 8 warp + i, dims (c * 32 + lane) * kVec + e
#pragma unroll
  for (int i = 0; i < kRowsPerWarp; ++i) {
#pragma unroll
    for (int e = 0; e < T::kDimsPerLane; ++e) acc[i][e] = 0.0f;
  }

  for (int k0 = 0; k0 < kv_end; k0 += kKeys) {
    // 1. Keys of the tile.
    load_key_tile<HD>(kv_s, keys, k0, kv_end, hd, kv_width);
    __syncthreads();

    // 2. Scores: thread (lane, warp) computes rows lane and lane + 32 for keys warp * kKeysPerWarp
    //    + c. Query reads are distinct rows (conflict-free with the padded stride), key reads are
    //    warp-wide broadcasts.
    {
      float sc[2][T::kKeysPerWarp];
#pragma unroll
      for (int c = 0; c < T::kKeysPerWarp; ++c) sc[0][c] = sc[1][c] = 0.0f;
      const float* qa = q_s + lane * kQStride;
      const float* qb = q_s + (lane + 32) * kQStride;
      const float* kw = kv_s + warp * T::kKeysPerWarp * HD;
#pragma unroll 4
      for (int d = 0; d < HD; d += 4) {
        const float4 a = *reinterpret_cast<const float4*>(qa + d);
        const float4 bq = *reinterpret_cast<const float4*>(qb + d);
#pragma unroll
        for (int c = 0; c < T::kKeysPerWarp; ++c) {
          const float4 k = *reinterpret_cast<const float4*>(kw + c * HD + d);
          sc[0][c] = fmaf(a.x, k.x, fmaf(a.y, k.y, fmaf(a.z, k.z, fmaf(a.w, k.w, sc[0][c]))));
          sc[1][c] = fmaf(bq.x, k.x, fmaf(bq.y, k.y, fmaf(bq.z, k.z, fmaf(bq.w, k.w, sc[1][c]))));
        }
      }
      const int pos_a = row_pos[lane];
      const int pos_b = row_pos[lane + 32];
#pragma unroll
      for (int c = 0; c < T::kKeysPerWarp; ++c) {
        const int j = warp * T::kKeysPerWarp + c;
        const int key = k0 + j;  // causal mask; also masks keys >= kv_end and padding rows
        p_s[j * kRows + lane] = key <= pos_a ? sc[0][c] : -INFINITY;
        p_s[j * kRows + lane + 32] = key <= pos_b ? sc[1][c] : -INFINITY;
      }
    }
    __syncthreads();

    // 3. Online softmax: four consecutive lanes per row, keys part, part + 4, ... Then the values
    //    of the tile replace its keys (every read of the keys finished at the barrier above).
    {
      const int r = tid >> 2;
      const int part = tid & 3;
      float mx = -INFINITY;
      for (int j = part; j < kKeys; j += 4) mx = fmaxf(mx, p_s[j * kRows + r]);
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float m_old = row_m[r];
      const float m_new = fmaxf(m_old, mx);
      float corr = 1.0f;
      float sum = 0.0f;
      if (m_new == -INFINITY) {
        // Nothing seen yet (a padding row): probabilities 0, acc and l stay 0.
        for (int j = part; j < kKeys; j += 4) p_s[j * kRows + r] = 0.0f;
      } else {
        corr = expf(m_old - m_new);  // 0 when m_old = -inf
        for (int j = part; j < kKeys; j += 4) {
          const float p = expf(p_s[j * kRows + r] - m_new);  // 0 for masked keys
          p_s[j * kRows + r] = p;
          sum += p;
        }
      }
      sum += __shfl_xor_sync(0xffffffffu, sum, 1);
      sum += __shfl_xor_sync(0xffffffffu, sum, 2);
      __syncwarp();  // all four lanes read row_m[r] before it changes
      if (part == 0) {
        row_m[r] = m_new;
        row_l[r] = row_l[r] * corr + sum;
        row_corr[r] = corr;
      }
    }
    load_key_tile<HD>(kv_s, values, k0, kv_end, hd, kv_width);
    __syncthreads();

    // 4. acc = acc * corr + P V: warp w owns rows [8w, 8w + 8) (probabilities read as two float4
    //    broadcasts), lane owns dims (c * 32 + lane) * kVec + e (conflict-free vector reads).
    {
      const int r0 = warp * kRowsPerWarp;
#pragma unroll
      for (int i = 0; i < kRowsPerWarp; ++i) {
        const float corr = row_corr[r0 + i];
#pragma unroll
        for (int e = 0; e < T::kDimsPerLane; ++e) acc[i][e] *= corr;
      }
#pragma unroll 2
      for (int j = 0; j < kKeys; ++j) {
        const float4 pa = *reinterpret_cast<const float4*>(p_s + j * kRows + r0);
        const float4 pb = *reinterpret_cast<const float4*>(p_s + j * kRows + r0 + 4);
        const float p[kRowsPerWarp] = {pa.x, pa.y, pa.z, pa.w, pb.x, pb.y, pb.z, pb.w};
        const float* vr = kv_s + j * HD;
#pragma unroll
        for (int c = 0; c < T::kChunks; ++c) {
          float v[T::kVec];
          load_vec<T::kVec>(vr + (c * 32 + lane) * T::kVec, v);
#pragma unroll
          for (int i = 0; i < kRowsPerWarp; ++i) {
#pragma unroll
            for (int e = 0; e < T::kVec; ++e) {
              acc[i][c * T::kVec + e] = fmaf(p[i], v[e], acc[i][c * T::kVec + e]);
            }
          }
        }
      }
    }
    __syncthreads();  // the next tile overwrites kv_s, p_s and row_corr
  }

  // Output: acc / l, times sigmoid(gate).
  const int r0 = warp * kRowsPerWarp;
#pragma unroll
  for (int i = 0; i < kRowsPerWarp; ++i) {
    const int r = r0 + i;
    if (r >= rows) continue;  // padding rows (uniform over the warp)
    const int64_t t = first + r / group;
    const int64_t h = kvh * group + r % group;
    const int64_t base = (t * n_heads + h) * hd;
    const float inv_l = 1.0f / row_l[r];
#pragma unroll
    for (int c = 0; c < T::kChunks; ++c) {
#pragma unroll
      for (int e = 0; e < T::kVec; ++e) {
        const int d = (c * 32 + lane) * T::kVec + e;
        if (d < hd) {
          float o = acc[i][c * T::kVec + e] * inv_l;
          if (gate != nullptr) o *= sigmoid_f(gate[base + d]);
          out[base + d] = o;
        }
      }
    }
  }
}

// Launches the kernel for head dims padded to HD.
template <int HD>
void launch_prefill(const AttentionShape& s, const DeviceBatch& b, int64_t kv_layer, const float* q,
                    const float* gate, float* out, cudaStream_t stream) {
  const auto group = static_cast<int>(s.n_heads / s.n_kv_heads);
  const int tile_tokens = kRows / group;
  // Tiles never span runs: sum over runs of ceil(count / tile_tokens) is at most this.
  const int64_t slots = (b.n_tokens + tile_tokens - 1) / tile_tokens + b.n_runs;
  MOERUN_CHECK(slots <= INT_MAX && s.n_kv_heads <= 65535);
  constexpr auto smem = static_cast<int>(Tile<HD>::kSmemBytes);
  // Over the 48 KiB default: opt in, once per device (devices 0..63).
  static std::atomic<uint64_t> opted_in{0};
  int device = 0;
  MOERUN_CUDA_CHECK(cudaGetDevice(&device));
  const uint64_t bit = device < 64 ? uint64_t{1} << device : 0;
  if (bit == 0 || (opted_in.load(std::memory_order_acquire) & bit) == 0) {
    MOERUN_CUDA_CHECK(cudaFuncSetAttribute(attention_prefill_kernel<HD>,
                                           cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    opted_in.fetch_or(bit, std::memory_order_release);
  }
  const dim3 grid(static_cast<unsigned>(slots), static_cast<unsigned>(s.n_kv_heads));
  attention_prefill_kernel<HD><<<grid, kThreads, smem, stream>>>(s, b, static_cast<int>(kv_layer),
                                                                 q, gate, tile_tokens, out);
  MOERUN_CUDA_CHECK_LAUNCH();
}

}  // namespace

void attention_prefill_cuda(const AttentionShape& shape, const DeviceBatch& batch, int64_t kv_layer,
                            const float* q, const float* gate, float* out, cudaStream_t stream) {
  MOERUN_CHECK(shape.head_dim >= 1 && shape.head_dim <= kMaxHeadDim);
  MOERUN_CHECK(shape.n_kv_heads >= 1 && shape.n_heads % shape.n_kv_heads == 0);
  MOERUN_CHECK(shape.n_heads / shape.n_kv_heads <= kRows);  // one token's group fits a block
  if (batch.n_tokens == 0) return;
  if (shape.head_dim <= 64) {
    launch_prefill<64>(shape, batch, kv_layer, q, gate, out, stream);
  } else if (shape.head_dim <= 128) {
    launch_prefill<128>(shape, batch, kv_layer, q, gate, out, stream);
  } else {
    launch_prefill<256>(shape, batch, kv_layer, q, gate, out, stream);
  }
}

}  // namespace moerun
