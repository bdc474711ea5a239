// Top-k of logit rows in two kernels: many blocks per row each select the k largest of their
// slice (radix select on a 64-bit key: ordered logit bits, then the complement of the id, so
// every key is unique and ties go to the lower id), then one block per row selects the k largest
// of those candidates and sorts them.
#include <algorithm>

#include "core/error.h"
#include "ops/cuda/cuda_check.cuh"
#include "ops/cuda/top_k_cuda.h"

namespace moerun {
namespace {

constexpr int kSliceThreads = 256;
constexpr int kMergeThreads = 512;
constexpr unsigned kFull = 0xffffffffu;

// The unique ordering key of (v, id): larger value first, then lower id. -0 maps like +0, NaN
// below -inf; key 0 (below every real key) pads slices shorter than k.
__device__ inline uint64_t candidate_key(float v, int64_t id) {
  uint32_t bits = __float_as_uint(v);
  uint32_t key = 1u;  // NaN
  if (v == v) {
    if (bits == 0x80000000u) bits = 0u;
    key = (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
  }
  return (static_cast<uint64_t>(key) << 32) | (0xffffffffu - static_cast<uint32_t>(id));
}

// The id a key was made from.
__device__ inline int32_t key_id(uint64_t key) {
  return static_cast<int32_t>(0xffffffffu - static_cast<uint32_t>(key));
}

// Shared state of one radix select.
struct SelectShared {
  int hist[256];
  unsigned long long prefix;
  int remaining;
  int done;
  int count;
};

// The k largest of n unique keys load(i), written to out[0, k) in no particular order (n <= k:
// all of them, then zero keys). Every thread of the block calls it; out is visible to the block
// after a __syncthreads().
template <typename Load>
__device__ void block_select(int n, int k, Load load, uint64_t* out, SelectShared& sh) {
  const int tid = static_cast<int>(threadIdx.x);
  const int step = static_cast<int>(blockDim.x);
  const int lane = tid & 31;
  if (n <= k) {
    for (int i = tid; i < k; i += step) out[i] = i < n ? load(i) : 0;
    return;
  }
  if (tid == 0) sh.count = 0;
  uint64_t prefix = 0, mask = 0;
  int remaining = k;
  // 8-bit digits from the top: keep the keys matching the prefix, find the digit where the k-th
  // largest lies; stop as soon as every key matching the prefix is taken.
  for (int shift = 56; shift >= 0; shift -= 8) {
    for (int i = tid; i < 256; i += step) sh.hist[i] = 0;
    __syncthreads();
    for (int base = 0; base < n; base += step) {
      const int i = base + tid;
      int digit = 256;
      if (i < n) {
        const uint64_t c = load(i);
        if ((c & mask) == prefix) digit = static_cast<int>((c >> shift) & 255u);
      }
      const unsigned peers = __match_any_sync(kFull, digit);
      if (digit < 256 && lane == __ffs(peers) - 1) atomicAdd(&sh.hist[digit], __popc(peers));
    }
    __syncthreads();
    if (tid < 32) {
      // Lane l holds digits 255 - 8l ... 248 - 8l (largest first).
      int h[8];
      int sum = 0;
      for (int j = 0; j < 8; ++j) {
        h[j] = sh.hist[255 - (lane * 8 + j)];
        sum += h[j];
      }
      int inclusive = sum;
      for (int offset = 1; offset < 32; offset <<= 1) {
        const int other = __shfl_up_sync(kFull, inclusive, offset);
        if (lane >= offset) inclusive += other;
      }
      const unsigned reached = __ballot_sync(kFull, inclusive >= remaining);
      if (lane == __ffs(reached) - 1) {
        int above = inclusive - sum;
        for (int j = 0; j < 8; ++j) {
          if (above + h[j] >= remaining) {
            sh.prefix = prefix | (static_cast<uint64_t>(255 - (lane * 8 + j)) << shift);
            sh.remaining = remaining - above;
            sh.done = h[j] == remaining - above;
            break;
          }
          above += h[j];
        }
      }
    }
    __syncthreads();
    prefix = sh.prefix;
    remaining = sh.remaining;
    mask |= static_cast<uint64_t>(255u) << shift;
    if (sh.done) break;
  }
  // The k keys whose top bits are at least the prefix.
  for (int i = tid; i < n; i += step) {
    const uint64_t c = load(i);
    if ((c & mask) >= prefix) {
      const int slot = atomicAdd(&sh.count, 1);
      if (slot < k) out[slot] = c;
    }
  }
}

// Block (b, row): the k largest keys of slice b of the row (`slice` logits) into
// partial [rows, gridDim.x, k].
__global__ void top_k_slice_kernel(const float* __restrict__ logits, int64_t vocab, int slice,
                                   int k, uint64_t* __restrict__ partial) {
  __shared__ SelectShared sh;
  const int64_t row = blockIdx.y;
  const int64_t begin = static_cast<int64_t>(blockIdx.x) * slice;
  const int64_t left = vocab - begin;
  const int n = left <= 0 ? 0 : static_cast<int>(left < slice ? left : slice);
  const float* x = logits + row * vocab + begin;
  uint64_t* out = partial + (row * gridDim.x + blockIdx.x) * k;
  block_select(
      n, k, [&](int i) { return candidate_key(x[i], begin + i); }, out, sh);
}

// Block row: the k largest of the row's candidates [n_candidates], sorted, with their values read
// back from the logits.
__global__ void top_k_merge_kernel(const float* __restrict__ logits, int64_t vocab,
                                   const uint64_t* __restrict__ partial, int n_candidates, int k,
                                   float* __restrict__ values, int32_t* __restrict__ ids) {
  __shared__ SelectShared sh;
  __shared__ uint64_t chosen[kMaxTopKCuda];
  const int64_t row = blockIdx.x;
  const uint64_t* p = partial + row * n_candidates;
  block_select(
      n_candidates, k, [&](int i) { return p[i]; }, chosen, sh);
  __syncthreads();
  const int tid = static_cast<int>(threadIdx.x);
  if (tid < k) {
    const uint64_t c = chosen[tid];
    int rank = 0;
    for (int j = 0; j < k; ++j) rank += chosen[j] > c ? 1 : 0;
    const int32_t id = key_id(c);
    values[row * k + rank] = logits[row * vocab + id];
    ids[row * k + rank] = id;
  }
}

// Slices per row: enough blocks to fill the GPU when rows are few, slices of at least 1024.
int64_t slices_per_row(int64_t rows, int64_t vocab) {
  const int64_t wanted = std::clamp<int64_t>((256 + rows - 1) / rows, 1, 64);
  return std::max<int64_t>(1, std::min(wanted, (vocab + 1023) / 1024));
}

}  // namespace

size_t top_k_cuda_workspace_bytes(int64_t max_rows, int64_t vocab, int64_t k) {
  int64_t most = 0;
  for (int64_t rows = 1; rows <= max_rows; ++rows) {
    most = std::max(most, rows * slices_per_row(rows, vocab) * k);
  }
  return static_cast<size_t>(most) * sizeof(uint64_t);
}

void top_k_cuda(const float* logits, int64_t rows, int64_t vocab, int64_t k, void* workspace,
                float* values, int32_t* ids, cudaStream_t stream) {
  MOERUN_CHECK(k >= 1 && k <= kMaxTopKCuda && k <= vocab && vocab < (int64_t{1} << 31));
  if (rows == 0) return;
  MOERUN_CHECK(rows < 65536);
  const int64_t slices = slices_per_row(rows, vocab);
  const int64_t slice = (vocab + slices - 1) / slices;
  auto* partial = static_cast<uint64_t*>(workspace);
  top_k_slice_kernel<<<dim3(static_cast<unsigned>(slices), static_cast<unsigned>(rows)),
                       kSliceThreads, 0, stream>>>(logits, vocab, static_cast<int>(slice),
                                                   static_cast<int>(k), partial);
  MOERUN_CUDA_CHECK_LAUNCH();
  top_k_merge_kernel<<<static_cast<unsigned>(rows), kMergeThreads, 0, stream>>>(
      logits, vocab, partial, static_cast<int>(slices * k), static_cast<int>(k), values, ids);
  MOERUN_CUDA_CHECK_LAUNCH();
}

}  // namespace moerun
