// matmul_batch: many independent products in one parallel_for, activations quantized once per
// distinct input, rows of all jobs cut into contiguous slices of about equal cost.
#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "core/thread_pool.h"
#include "ops/cpu/matmul.h"
#include "ops/cpu/matmul_internal.h"

namespace moerun {

MatmulWorkspace::MatmulWorkspace() : impl_(std::make_unique<Impl>()) {}
MatmulWorkspace::~MatmulWorkspace() = default;
MatmulWorkspace::MatmulWorkspace(MatmulWorkspace&&) noexcept = default;
MatmulWorkspace& MatmulWorkspace::operator=(MatmulWorkspace&&) noexcept = default;

namespace cpu_matmul {
namespace {

// Slices smaller than this cost (about 32 KiB of weights at one token) are not worth a thread.
constexpr int64_t kMinSliceCost = int64_t{32} << 10;
// Inputs with at least this many values in all are quantized by the pool's threads.
constexpr int64_t kParallelQuantValues = 32768;

size_t align64(size_t v) {
  return (v + 63) & ~size_t{63};
}

// Bytes of storage of one input.
size_t storage_bytes(ActLayout layout, int64_t n_tokens, int64_t cols) {
  const ActSizes z = act_sizes(layout, cols);
  return align64(static_cast<size_t>(n_tokens * z.q)) +
         align64(static_cast<size_t>(n_tokens * z.d) * sizeof(float)) +
         align64(static_cast<size_t>(n_tokens * z.aux * z.aux_bytes));
}

// Cost of one row: its bytes weighted by tokens (memory-bound at 1 token, compute grows with
// tokens): (4 + n_tokens) / 5 times the bytes, in fifths.
int64_t row_cost(const WeightMatrix& w, int64_t n_tokens) {
  return row_bytes(w.type, w.cols) * (4 + n_tokens);
}

}  // namespace

void prepare_batch(std::span<const MatmulJob> jobs, ThreadPool* pool, MatmulWorkspace::Impl& ws,
                   CpuIsa resolved) {
  ws.inputs.clear();
  ws.args.clear();
  ws.kernels.clear();
  ws.job_input.clear();
  ws.row_cost.clear();
  for (const MatmulJob& job : jobs) {
    const RowsKernel kernel = select_kernel(job.w, resolved);
    if (job.n_tokens < 0) fail("matmul: negative token count {}", job.n_tokens);
    const bool empty = job.n_tokens == 0 || job.w.rows == 0;
    if (!empty && (job.x == nullptr || job.y == nullptr))
      fail("matmul: null activations or output");
    const ActLayout layout = activation_layout(job.w.type, resolved);
    int input = -1;
    if (!empty && layout != ActLayout::f32) {
      for (size_t i = 0; i < ws.inputs.size(); ++i) {
        const auto& in = ws.inputs[i];
        if (in.x == job.x && in.n_tokens == job.n_tokens && in.cols == job.w.cols &&
            in.layout == layout) {
          input = static_cast<int>(i);
          break;
        }
      }
      if (input < 0) {
        input = static_cast<int>(ws.inputs.size());
        ws.inputs.push_back({job.x, job.n_tokens, job.w.cols, layout, 0, {}});
      }
    }
    ws.args.push_back(KernelArgs{job.w, job.x, {}, job.n_tokens, job.y});
    ws.kernels.push_back(kernel);
    ws.job_input.push_back(input);
    ws.row_cost.push_back(empty ? 0 : row_cost(job.w, job.n_tokens));
  }

  // Storage: one arena, grown (never shrunk) when a batch needs more.
  size_t total = 0;
  int64_t total_values = 0;
  for (auto& in : ws.inputs) {
    in.offset = total;
    total += storage_bytes(in.layout, in.n_tokens, in.cols);
    total_values += in.n_tokens * in.cols;
  }
  if (total > ws.arena_bytes) {
    ws.arena = std::make_unique<uint8_t[]>(total + 64);
    ws.arena_bytes = total;
  }
  auto* base = reinterpret_cast<uint8_t*>(align64(reinterpret_cast<uintptr_t>(ws.arena.get())));
  for (auto& in : ws.inputs) {
    const ActSizes z = act_sizes(in.layout, in.cols);
    uint8_t* p = base + in.offset;
    in.storage.q = reinterpret_cast<int8_t*>(p);
    p += align64(static_cast<size_t>(in.n_tokens * z.q));
    in.storage.d = reinterpret_cast<float*>(p);
    p += align64(static_cast<size_t>(in.n_tokens * z.d) * sizeof(float));
    in.storage.aux = p;
  }

  // Quantize each input once: by tokens on the pool when large, else on the caller.
  const int n_threads = pool == nullptr ? 1 : pool->size();
  if (n_threads > 1 && total_values >= kParallelQuantValues) {
    int64_t n_units = 0;  // (input, token) pairs, numbered input by input
    for (const auto& in : ws.inputs) n_units += in.n_tokens;
    pool->parallel_for(n_threads, [&](int64_t task, int) {
      const int64_t u0 = n_units * task / n_threads, u1 = n_units * (task + 1) / n_threads;
      int64_t first = 0;
      for (const auto& in : ws.inputs) {
        const int64_t b = std::max(u0, first) - first,
                      e = std::min(u1, first + in.n_tokens) - first;
        if (b < e) quantize_into(in.layout, in.x, in.cols, b, e, in.storage);
        first += in.n_tokens;
      }
    });
  } else {
    for (const auto& in : ws.inputs) {
      quantize_into(in.layout, in.x, in.cols, 0, in.n_tokens, in.storage);
    }
  }
  for (size_t j = 0; j < ws.args.size(); ++j) {
    const int input = ws.job_input[j];
    if (input < 0) continue;
    const auto& in = ws.inputs[static_cast<size_t>(input)];
    // Nothing to quantize: returns the view of the storage filled above.
    ws.args[j].xq = quantize_into(in.layout, in.x, in.cols, 0, 0, in.storage);
  }
}

}  // namespace cpu_matmul

void matmul_batch(std::span<const MatmulJob> jobs, ThreadPool* pool, MatmulWorkspace& workspace,
                  CpuIsa isa) {
  using namespace cpu_matmul;
  const CpuIsa resolved = resolve_isa(isa);
  MatmulWorkspace::Impl& ws = workspace.impl();
  prepare_batch(jobs, pool, ws, resolved);
  const auto n_jobs = static_cast<int64_t>(jobs.size());
  int64_t total = 0;
  for (int64_t j = 0; j < n_jobs; ++j) total += ws.row_cost[j] * jobs[j].w.rows;
  if (total == 0) return;

  // Slice starts at cost s * total / n_slices, rounded to whole rows (multiples of 4 inside a job,
  // the kernels' row group).
  const int n_threads = pool == nullptr ? 1 : pool->size();
  const int64_t n_slices = std::clamp<int64_t>(total / kMinSliceCost, 1, n_threads);
  ws.slice_job.assign(static_cast<size_t>(n_slices + 1), n_jobs);
  ws.slice_row.assign(static_cast<size_t>(n_slices + 1), 0);
  int64_t job = 0, before = 0;  // cost of the jobs before `job`
  for (int64_t s = 0; s < n_slices; ++s) {
    const int64_t target = total / n_slices * s + total % n_slices * s / n_slices;
    while (job < n_jobs && before + ws.row_cost[job] * jobs[job].w.rows <= target) {
      before += ws.row_cost[job] * jobs[job].w.rows;
      ++job;
    }
    int64_t row = 0;
    if (job < n_jobs && ws.row_cost[job] > 0) {
      row = (target - before + ws.row_cost[job] / 2) / ws.row_cost[job];
      row = std::min((row + 2) / 4 * 4, jobs[job].w.rows);
    }
    ws.slice_job[s] = job;
    ws.slice_row[s] = row;
  }
  auto run_slice = [&](int64_t s, int) {
    const int64_t j0 = ws.slice_job[s], r0 = ws.slice_row[s];
    const int64_t j1 = ws.slice_job[s + 1], r1 = ws.slice_row[s + 1];
    for (int64_t j = j0; j <= j1 && j < n_jobs; ++j) {
      const int64_t b = j == j0 ? r0 : 0;
      const int64_t e = j == j1 ? r1 : jobs[j].w.rows;
      if (b < e && ws.row_cost[j] > 0) ws.kernels[j](ws.args[j], b, e);
    }
  };
  if (n_slices == 1) {
    run_slice(0, 0);
  } else {
    pool->parallel_for(n_slices, run_slice);
  }
}

}  // namespace moerun
