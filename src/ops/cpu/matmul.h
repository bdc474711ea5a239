// y = W x on the CPU for every supported weight format: one token or a small batch of tokens.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "core/dtype.h"
#include "core/weight_matrix.h"

namespace moerun {

class ThreadPool;

// Which code path runs a CPU kernel; `best` picks the widest the CPU supports.
enum class CpuIsa { best, scalar, avx2, avx512 };

// The widest path this CPU supports (never `best`).
CpuIsa detect_cpu_isa();

// Name of a path, e.g. "avx512".
std::string_view cpu_isa_name(CpuIsa isa);

// y [n_tokens, w.rows] f32 = x [n_tokens, w.cols] f32 times W^T; n_tokens in 1..64 is the fast
// range. Rows are split among the pool's threads in contiguous slices (pool may be null: run on the
// caller). A batch of one job on a per-thread workspace; prefer matmul_batch for many small
// matrices.
void matmul(const WeightMatrix& w, const float* x, int64_t n_tokens, float* y, ThreadPool* pool,
            CpuIsa isa = CpuIsa::best);

// Rows [row_begin, row_end) of the product above, on the calling thread only (for callers that
// split work themselves, such as the expert dispatcher).
void matmul_rows(const WeightMatrix& w, const float* x, int64_t n_tokens, float* y,
                 int64_t row_begin, int64_t row_end, CpuIsa isa = CpuIsa::best);

// One product of a batch: y [n_tokens, w.rows] f32 = x [n_tokens, w.cols] f32 times W^T. Jobs may
// share x (it is quantized once); y must not overlap x or another job's y.
struct MatmulJob {
  WeightMatrix w;
  const float* x = nullptr;  // [n_tokens, w.cols]
  int64_t n_tokens = 0;      // 0 (or w.rows == 0) makes an empty job
  float* y = nullptr;        // [n_tokens, w.rows]
};

// Scratch of matmul_batch (quantized activations, job and slice tables), owned by the caller and
// reused so that steady-state calls never allocate; one per calling thread.
class MatmulWorkspace {
 public:
  MatmulWorkspace();
  ~MatmulWorkspace();
  MatmulWorkspace(MatmulWorkspace&&) noexcept;
  MatmulWorkspace& operator=(MatmulWorkspace&&) noexcept;

  struct Impl;
  // The internal state (for the implementation only).
  Impl& impl() { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

// Runs every job in one parallel_for: the rows of all jobs, concatenated, are cut into contiguous
// slices of about equal cost (weight bytes, weighted by token count), one per pool thread; each
// distinct input (x, n_tokens, cols, activation layout) is quantized once, in parallel when large.
// Results are bitwise those of separate matmul calls on the same path. pool may be null.
void matmul_batch(std::span<const MatmulJob> jobs, ThreadPool* pool, MatmulWorkspace& ws,
                  CpuIsa isa = CpuIsa::best);

}  // namespace moerun
