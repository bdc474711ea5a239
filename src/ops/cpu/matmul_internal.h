// Internal interface of the CPU matmul: prepared activations and the per-ISA row kernels.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "ops/cpu/matmul.h"

namespace moerun::cpu_matmul {

// Values per activation sum group: every quantized kernel reads sums of 16 consecutive quants.
inline constexpr int64_t kSumGroup = 16;

// How a kernel wants its activations prepared; fixed per (weight type, path).
enum class ActLayout : uint8_t {
  f32,        // the f32 rows as given
  blocks32,   // 8-bit blocks of 32 in natural order, d per block, int16 sums per 16 (AVX2)
  blocks256,  // the same with blocks of 256 (AVX2 K formats)
  q8_0x2,     // AVX-512 Q8_0: natural order, per 64 values 16 scales and 16 int32 corrections
  q4_0x4,     // AVX-512 Q4_0: per 128 values halves of 4 blocks interleaved, 16 scales, 16 corrs
  k_perm,     // AVX-512 Q4_K/Q5_K: 256-blocks, qword i of sub-block s (of 32) at qword 8i + s;
              // d per 256, float sums d * sum(q) per 16 (natural order)
  k6_perm,  // AVX-512 Q6_K: as k_perm, qword h of sub-block s (of 16) at 8 (2 (s / 8) + h) + s % 8
};

// Activations quantized to 8 bits; x[t][j] ~= d[t][block(j)] * q[t][pos(j)] (layout-specific).
struct QuantizedActivations {
  int64_t block = 0;              // values per scale (32 or 256)
  const int8_t* q = nullptr;      // [n_tokens, q_stride] quants in -127..127 (padding zero)
  const float* d = nullptr;       // [n_tokens, d_stride] scales (per block, or per lane)
  const int16_t* sums = nullptr;  // blocks layouts: [n_tokens, cols / 16] sums of 16 quants
  const int32_t* init = nullptr;  // q8_0x2, q4_0x4: [n_tokens, aux_stride] per-lane corrections
  const float* fsums = nullptr;   // k layouts: [n_tokens, aux_stride] d * sum of 16 quants
  int64_t q_stride = 0, d_stride = 0, aux_stride = 0;  // elements per token
};

// Elements per token of each array of a layout for `cols` columns.
struct ActSizes {
  int64_t q = 0, d = 0, aux = 0;  // aux: int16 sums, int32 corrections or float sums
  int64_t aux_bytes = 0;          // bytes of one aux element
};
ActSizes act_sizes(ActLayout layout, int64_t cols);

// Writable storage for one layout (arrays sized by act_sizes times n_tokens).
struct ActStorage {
  int8_t* q = nullptr;
  float* d = nullptr;
  void* aux = nullptr;
};

// Owns the storage of QuantizedActivations; reused across calls so steady state never allocates.
struct ActivationBuffer {
  std::vector<int8_t> q;
  std::vector<float> d;
  std::vector<int16_t> sums;
};

// Everything a row kernel reads: weights, activations (f32 and, for quantized types, 8-bit).
struct KernelArgs {
  WeightMatrix w;
  const float* x = nullptr;  // [n_tokens, w.cols] f32
  QuantizedActivations xq;   // valid when activation_layout(w.type, isa) != f32
  int64_t n_tokens = 0;
  float* y = nullptr;  // [n_tokens, w.rows] f32; kernels write y[t * w.rows + r]
};

// Computes rows [row_begin, row_end) of y for every token.
using RowsKernel = void (*)(const KernelArgs& args, int64_t row_begin, int64_t row_end);

// The activation layout the kernel of (type, resolved isa) reads.
ActLayout activation_layout(DType type, CpuIsa isa);

// Values per activation scale that the kernel of (type, isa) expects; 0 when it reads f32.
int64_t activation_block(DType type, CpuIsa isa);

// Quantizes tokens [t_begin, t_end) of x [n_tokens, cols] into storage s of `layout` (any layout
// but f32); picks the widest implementation this CPU has. Returns the view of the whole storage.
QuantizedActivations quantize_into(ActLayout layout, const float* x, int64_t cols, int64_t t_begin,
                                   int64_t t_end, const ActStorage& s);

// Blocks layouts, scalar: tokens [t_begin, t_end) of x into q, d, sums (strides of act_sizes).
void quantize_blocks(const float* x, int64_t cols, int64_t block, int64_t t_begin, int64_t t_end,
                     int8_t* q, float* d, int16_t* sums);
// The same with AVX2 (bitwise equal results); needs an AVX2 CPU and block a multiple of 32.
void quantize_blocks_avx2(const float* x, int64_t cols, int64_t block, int64_t t_begin,
                          int64_t t_end, int8_t* q, float* d, int16_t* sums);
// AVX-512 layouts (q8_0x2, q4_0x4, k_perm, k6_perm); needs an AVX-512 BW CPU.
void quantize_avx512(ActLayout layout, const float* x, int64_t cols, int64_t t_begin, int64_t t_end,
                     const ActStorage& s);

// Quantizes x [n_tokens, cols] f32 into buf in blocks of `block` (cols a multiple of block).
QuantizedActivations quantize_activations(const float* x, int64_t n_tokens, int64_t cols,
                                          int64_t block, ActivationBuffer& buf);

// The same with AVX2 (bitwise equal results); needs an AVX2 CPU and block a multiple of 32.
QuantizedActivations quantize_activations_avx2(const float* x, int64_t n_tokens, int64_t cols,
                                               int64_t block, ActivationBuffer& buf);

// Kernels per path; nullptr when the path has no kernel for the type.
RowsKernel scalar_kernel(DType type);
RowsKernel avx2_kernel(DType type);
RowsKernel avx512_kernel(DType type);
// The AVX-512 kernels of the quantized formats (matmul_avx512_quant.cpp).
RowsKernel avx512_quant_kernel(DType type);

// Resolves `best` and checks that this CPU supports the path (throws moerun::Error if not).
CpuIsa resolve_isa(CpuIsa isa);

// Checks w and returns its kernel for the resolved path (throws moerun::Error on bad input).
RowsKernel select_kernel(const WeightMatrix& w, CpuIsa resolved);

// Rows [row_begin, row_end) with activations already prepared for (w.type, resolved isa).
void matmul_rows_prepared(const KernelArgs& args, CpuIsa resolved, int64_t row_begin,
                          int64_t row_end);

}  // namespace moerun::cpu_matmul

namespace moerun {

// State of a MatmulWorkspace: tables sized by the largest batch seen, storage by the largest
// activations; clear() keeps capacity, so steady-state calls do not allocate.
struct MatmulWorkspace::Impl {
  // One distinct quantized input.
  struct Input {
    const float* x = nullptr;  // [n_tokens, cols]
    int64_t n_tokens = 0, cols = 0;
    cpu_matmul::ActLayout layout = cpu_matmul::ActLayout::f32;
    size_t offset = 0;  // of its storage in the arena
    cpu_matmul::ActStorage storage;
  };
  std::vector<Input> inputs;
  std::vector<cpu_matmul::KernelArgs> args;     // [jobs]
  std::vector<cpu_matmul::RowsKernel> kernels;  // [jobs]
  std::vector<int> job_input;                   // [jobs] index into inputs, -1 when none
  std::vector<int64_t> row_cost;                // [jobs] cost of one row, 0 for empty jobs
  std::vector<int64_t> slice_job, slice_row;    // [slices + 1] where each slice starts
  std::unique_ptr<uint8_t[]> arena;             // quantized activations, 64-byte aligned inside
  size_t arena_bytes = 0;
};

namespace cpu_matmul {

// Validates the jobs, selects kernels and quantizes every distinct input into ws (in parallel on
// pool when large); fills ws.args, ws.kernels and ws.row_cost.
void prepare_batch(std::span<const MatmulJob> jobs, ThreadPool* pool, MatmulWorkspace::Impl& ws,
                   CpuIsa resolved);

}  // namespace cpu_matmul
}  // namespace moerun
