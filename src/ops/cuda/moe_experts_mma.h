// Int8 tensor-core (mma.sync m16n8k32) kernels of moe_experts_cuda's grouped path: each block
// multiplies a tile of one expert's weight rows, unpacked to int8 with per-32 scales, with up to
// kMmaGroupTokens of the expert's assignments (internal to the ops/cuda expert code).
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

#include "core/dtype.h"
#include "ops/cuda/moe_experts_cuda.h"

namespace moerun {

// Most assignments of one expert that one tensor-core block multiplies (the grouping's group size).
inline constexpr int kMmaGroupTokens = 64;

// One pass of the tensor-core expert kernels: gate and up (rows = ffn, cols = hidden, inputs per
// token; out = silu(gate) * up) or down (rows = hidden, cols = ffn, inputs per assignment).
struct MmaExpertPass {
  const void* const* w0;  // [n_experts] gate or down matrices
  const void* const* w1;  // [n_experts] up matrices (gate/up pass only)
  DeviceExpertTable table;
  int64_t rows;
  int64_t cols;             // a multiple of 32
  int64_t stride;           // bytes between rows
  const int4* groups;       // [<= n_assign] (expert, first index into perm, count <= 64, 0)
  const int32_t* n_groups;  // [1]
  const int32_t* perm;      // [n_assign] assignments by expert
  int64_t top_k;
  const int8_t* xq;     // [n_tokens or n_assign, cols] int8
  const float2* xd;     // [same, cols / 32] (d, d * sum q)
  bool per_assignment;  // inputs indexed by assignment (down) or by token (gate/up)
  float* out;           // [n_assign, rows]
};

// Whether the tensor-core kernels take weights of this type (the block formats of block_decode).
bool mma_experts_support(DType type);

// Launches the gate/up (gate_up true) or down pass for block format `type` over group_bound
// groups (groups past *n_groups and non-resident experts do nothing). Asynchronous on `stream`.
void launch_expert_mma(DType type, bool gate_up, const MmaExpertPass& p, int64_t group_bound,
                       cudaStream_t stream);

}  // namespace moerun
