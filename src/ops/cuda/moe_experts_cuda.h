// The routed experts of one MoE layer on the GPU for a batch of tokens, reading resident experts
// through a device-side table (no host round trip).
#pragma once

#include <cstdint>
#include <memory>

#include <cuda_runtime_api.h>

#include "core/dtype.h"

namespace moerun {

// Device arrays [n_experts] of device pointers to each expert's packed matrices (gate and up:
// [ffn rows, hidden cols]; down: [hidden rows, ffn cols]); null for an expert that is not resident.
struct DeviceExpertTable {
  const void* const* gate = nullptr;
  const void* const* up = nullptr;
  const void* const* down = nullptr;
};

// Types and sizes of one layer's experts (gate and up must have the same type).
struct ExpertShape {
  DType gate_type = DType::Q4_K;
  DType up_type = DType::Q4_K;
  DType down_type = DType::Q4_K;
  int64_t hidden = 0;
  int64_t ffn = 0;
  int64_t n_experts = 0;  // entries of the table; ids outside [0, n_experts) contribute nothing
};

// Device scratch of moe_experts_cuda (grouping tables, int8 activations, intermediate rows); one
// per stream. It grows on first use; reserve() allocates everything up front.
class MoeCudaWorkspace {
 public:
  MoeCudaWorkspace();
  ~MoeCudaWorkspace();
  MoeCudaWorkspace(MoeCudaWorkspace&&) noexcept;
  MoeCudaWorkspace& operator=(MoeCudaWorkspace&&) noexcept;

  // Allocates what moe_experts_cuda needs for up to max_tokens tokens of top_k choices with these
  // sizes, so that later calls never allocate (and can be captured in a CUDA graph). Synchronous.
  void reserve(int64_t max_tokens, int64_t top_k, int64_t hidden, int64_t ffn);
  // Device bytes held.
  int64_t device_bytes() const;
  // Whether the grouped path may use the int8 tensor-core kernels (default true); false keeps the
  // dp4a kernels (for tests and benchmarks that compare the two).
  void set_tensor_cores(bool on);

  struct Impl;
  // The internal state (for the implementation only).
  Impl& impl() { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

// out [n_tokens, hidden] f32 (overwritten) = for each token t, the sum over k = 0..top_k-1 in
// order of weights[t, k] * down_e(silu(gate_e x_t) * up_e x_t), e = ids[t, k], over the experts
// that are resident in `table` (the others add nothing: the caller computes them elsewhere).
// x [n_tokens, hidden] f32, ids [n_tokens, top_k] int32, weights [n_tokens, top_k] f32, all device.
// Assignments are grouped by expert on the device so that each expert's weights are read once per
// group of up to 8 tokens (dp4a kernels), or, for block formats when more than 64 assignments are
// grouped, once per group of up to 64 (int8 tensor-core kernels, moe_experts_mma.h). Numerics: x
// and the SiLU products are quantised to int8 per 32 for block formats (see matmul_cuda.h); f32
// otherwise. Asynchronous on `stream`; deterministic; with a reserved workspace it does not
// allocate or synchronise (capturable in a CUDA graph).
void moe_experts_cuda(const ExpertShape& shape, const DeviceExpertTable& table, const float* x,
                      int64_t n_tokens, const int32_t* ids, const float* weights, int64_t top_k,
                      float* out, MoeCudaWorkspace& ws, cudaStream_t stream);

}  // namespace moerun
