// Internal interface of the CPU matmul: prepared activations and the per-ISA row kernels.
#pragma once

#include <cstdint>
#include <vector>

#include "ops/cpu/matmul.h"

namespace moerun::cpu_matmul {

// Values per activation sum group: every quantized kernel reads sums of 16 consecutive quants.
inline constexpr int64_t kSumGroup = 16;

// Activations quantized to 8 bits, planar: x[t][j] ~= d[t][j / block] * q[t][j].
struct QuantizedActivations {
  int64_t block = 0;              // values per scale: 32 (Q8_0, Q4_0) or 256 (K formats)
  const int8_t* q = nullptr;      // [n_tokens, cols] quants in -127..127
  const float* d = nullptr;       // [n_tokens, cols / block] scales
  const int16_t* sums = nullptr;  // [n_tokens, cols / 16] sums of 16 consecutive quants
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
  QuantizedActivations xq;   // valid when activation_block(w.type, isa) > 0
  int64_t n_tokens = 0;
  float* y = nullptr;  // [n_tokens, w.rows] f32; kernels write y[t * w.rows + r]
};

// Computes rows [row_begin, row_end) of y for every token.
using RowsKernel = void (*)(const KernelArgs& args, int64_t row_begin, int64_t row_end);

// Values per activation scale that the kernel of (type, isa) expects; 0 when it reads f32.
int64_t activation_block(DType type, CpuIsa isa);

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

// Resolves `best` and checks that this CPU supports the path (throws moerun::Error if not).
CpuIsa resolve_isa(CpuIsa isa);

// Checks w and returns its kernel for the resolved path (throws moerun::Error on bad input).
RowsKernel select_kernel(const WeightMatrix& w, CpuIsa resolved);

// Rows [row_begin, row_end) with activations already prepared for (w.type, resolved isa).
void matmul_rows_prepared(const KernelArgs& args, CpuIsa resolved, int64_t row_begin,
                          int64_t row_end);

}  // namespace moerun::cpu_matmul
