// Public CPU matmul: path selection, activation preparation and splitting rows among threads.
#include "ops/cpu/matmul.h"

#include <algorithm>

#include "core/cpu_features.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "ops/cpu/matmul_internal.h"

namespace moerun {
namespace cpu_matmul {
namespace {

bool isa_supported(CpuIsa isa) {
  const CpuFeatures& f = cpu_features();
  switch (isa) {
    case CpuIsa::scalar:
      return true;
    case CpuIsa::avx2:
      return f.avx2 && f.fma && f.f16c;
    case CpuIsa::avx512:
      return f.avx2 && f.fma && f.f16c && f.avx512f && f.avx512bw && f.avx512vl && f.avx512vnni;
    case CpuIsa::best:
      return true;
  }
  return false;
}

}  // namespace

ActLayout activation_layout(DType type, CpuIsa isa) {
  if (isa == CpuIsa::scalar) return ActLayout::f32;
  const bool wide = isa == CpuIsa::avx512;
  switch (type) {
    case DType::Q8_0:
      return wide ? ActLayout::q8_0x2 : ActLayout::blocks32;
    case DType::Q4_0:
      return wide ? ActLayout::q4_0x4 : ActLayout::blocks32;
    case DType::Q4_K:
    case DType::Q5_K:
      return wide ? ActLayout::k_perm : ActLayout::blocks256;
    case DType::Q6_K:
      return wide ? ActLayout::k6_perm : ActLayout::blocks256;
    default:
      return ActLayout::f32;
  }
}

int64_t activation_block(DType type, CpuIsa isa) {
  if (isa == CpuIsa::scalar) return 0;
  switch (type) {
    case DType::Q8_0:
    case DType::Q4_0:
      return 32;
    case DType::Q4_K:
    case DType::Q5_K:
    case DType::Q6_K:
      return 256;
    default:
      return 0;
  }
}

CpuIsa resolve_isa(CpuIsa isa) {
  if (isa == CpuIsa::best) return detect_cpu_isa();
  if (!isa_supported(isa)) fail("this CPU does not support the {} kernels", cpu_isa_name(isa));
  return isa;
}

RowsKernel select_kernel(const WeightMatrix& w, CpuIsa resolved) {
  RowsKernel kernel = nullptr;
  switch (resolved) {
    case CpuIsa::scalar:
      kernel = scalar_kernel(w.type);
      break;
    case CpuIsa::avx2:
      kernel = avx2_kernel(w.type);
      break;
    case CpuIsa::avx512:
      kernel = avx512_kernel(w.type);
      break;
    case CpuIsa::best:
      break;
  }
  if (kernel == nullptr) fail("matmul: no CPU kernel for weight type {}", dtype_name(w.type));
  const int64_t block = dtype_info(w.type).block_elems;
  if (w.rows < 0 || w.cols <= 0 || w.cols % block != 0) {
    fail("matmul: bad weight shape {}x{} for type {} (block {})", w.rows, w.cols,
         dtype_name(w.type), block);
  }
  if (w.row_stride < row_bytes(w.type, w.cols)) {
    fail("matmul: row stride {} is smaller than a row ({} bytes)", w.row_stride,
         row_bytes(w.type, w.cols));
  }
  if (w.data == nullptr && w.rows > 0) fail("matmul: weight data is null");
  return kernel;
}

void matmul_rows_prepared(const KernelArgs& args, CpuIsa resolved, int64_t row_begin,
                          int64_t row_end) {
  MOERUN_CHECK(0 <= row_begin && row_begin <= row_end && row_end <= args.w.rows);
  if (row_begin == row_end || args.n_tokens == 0) return;
  select_kernel(args.w, resolved)(args, row_begin, row_end);
}

}  // namespace cpu_matmul

CpuIsa detect_cpu_isa() {
  if (cpu_matmul::isa_supported(CpuIsa::avx512)) return CpuIsa::avx512;
  if (cpu_matmul::isa_supported(CpuIsa::avx2)) return CpuIsa::avx2;
  return CpuIsa::scalar;
}

std::string_view cpu_isa_name(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::best:
      return "best";
    case CpuIsa::scalar:
      return "scalar";
    case CpuIsa::avx2:
      return "avx2";
    case CpuIsa::avx512:
      return "avx512";
  }
  return "unknown";
}

void matmul(const WeightMatrix& w, const float* x, int64_t n_tokens, float* y, ThreadPool* pool,
            CpuIsa isa) {
  thread_local MatmulWorkspace ws;
  const MatmulJob job{w, x, n_tokens, y};
  matmul_batch(std::span<const MatmulJob>(&job, 1), pool, ws, isa);
}

void matmul_rows(const WeightMatrix& w, const float* x, int64_t n_tokens, float* y,
                 int64_t row_begin, int64_t row_end, CpuIsa isa) {
  using namespace cpu_matmul;
  const CpuIsa resolved = resolve_isa(isa);
  select_kernel(w, resolved);
  if (row_begin < 0 || row_begin > row_end || row_end > w.rows) {
    fail("matmul_rows: bad row range [{}, {}) of {} rows", row_begin, row_end, w.rows);
  }
  thread_local MatmulWorkspace ws;
  const MatmulJob job{w, x, n_tokens, y};
  MatmulWorkspace::Impl& impl = ws.impl();
  prepare_batch(std::span<const MatmulJob>(&job, 1), nullptr, impl, resolved);
  if (n_tokens == 0 || row_begin == row_end) return;
  impl.kernels[0](impl.args[0], row_begin, row_end);
}

}  // namespace moerun
