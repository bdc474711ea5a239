// matmul_cuda: argument checks, the workspace, the GEMV path (n_tokens <= 8) and the prefill path
// (bf16 tiles of W times bf16 x on cuBLAS, f32 accumulation and output; f32 W: SGEMM in place).
#include "ops/cuda/matmul_cuda.h"

#include <algorithm>

#include <cublas_v2.h>

#include "core/error.h"
#include "ops/cuda/activation_q8.h"
#include "ops/cuda/cuda_check.cuh"
#include "ops/cuda/dequantize.h"
#include "ops/cuda/device_buffer.h"
#include "ops/cuda/gemv_launch.h"
#include "ops/cuda/launch_plan.h"

namespace moerun {
namespace {

// cuBLAS's recommended workspace on Hopper (enough for every GPU it runs on).
constexpr size_t kCublasWorkspaceBytes = size_t{32} << 20;

void cublas_check(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS) {
    abort_with(__FILE__, __LINE__,
               std::string(what) + ": cuBLAS status " + std::to_string(static_cast<int>(status)));
  }
}

}  // namespace

struct CudaMatmulWorkspace::Impl {
  DeviceBuffer xq;     // [tokens, cols] int8 activations (GEMV path)
  DeviceBuffer xd;     // [tokens, cols / 32, 2] f32 their scales
  DeviceBuffer xbf;    // [tokens, cols] bf16 activations (prefill path)
  DeviceBuffer wtile;  // [tile_rows, cols] bf16 dequantised weights (prefill path)
  DeviceBuffer cublas_workspace;
  cublasHandle_t cublas = nullptr;

  ~Impl() {
    if (cublas != nullptr) cublasDestroy(cublas);
  }

  void ensure_gemv(int64_t tokens, int64_t cols) {
    xq.ensure(static_cast<size_t>(tokens * cols));
    xd.ensure(static_cast<size_t>(tokens * (cols / 32) * 2) * sizeof(float));
  }

  void ensure_prefill(int64_t tokens, int64_t rows, int64_t cols) {
    if (cublas == nullptr) {
      cublas_check(cublasCreate(&cublas), "cublasCreate");
      cublas_workspace.ensure(kCublasWorkspaceBytes);
    }
    xbf.ensure(static_cast<size_t>(tokens * cols) * 2);
    wtile.ensure(static_cast<size_t>(
        cuda_plan::prefill_tile_buffer_bytes(rows, cols, cuda_plan::kPrefillTileBytes)));
  }
};

CudaMatmulWorkspace::CudaMatmulWorkspace() : impl_(std::make_unique<Impl>()) {}
CudaMatmulWorkspace::~CudaMatmulWorkspace() = default;
CudaMatmulWorkspace::CudaMatmulWorkspace(CudaMatmulWorkspace&&) noexcept = default;
CudaMatmulWorkspace& CudaMatmulWorkspace::operator=(CudaMatmulWorkspace&&) noexcept = default;

void CudaMatmulWorkspace::reserve(int64_t max_rows, int64_t max_cols, int64_t max_tokens) {
  MOERUN_CHECK(max_rows >= 0 && max_cols >= 0 && max_tokens >= 0);
  impl_->ensure_gemv(std::min(max_tokens, cuda_plan::kMaxGemvTokens), max_cols);
  if (max_tokens > cuda_plan::kMaxGemvTokens) impl_->ensure_prefill(max_tokens, max_rows, max_cols);
}

int64_t CudaMatmulWorkspace::device_bytes() const {
  const Impl& i = *impl_;
  return static_cast<int64_t>(i.xq.capacity() + i.xd.capacity() + i.xbf.capacity() +
                              i.wtile.capacity() + i.cublas_workspace.capacity());
}

namespace {

void check_matrix(const WeightMatrix& w) {
  if (!cuda_plan::gpu_matmul_supports(w.type)) {
    fail("matmul_cuda: weight type {} is not supported on the GPU", dtype_name(w.type));
  }
  const int64_t block = dtype_info(w.type).block_elems;
  if (w.rows < 0 || w.cols < 0 || w.cols % block != 0) {
    fail("matmul_cuda: {} x {} {} matrix: columns must be a multiple of {}", w.rows, w.cols,
         dtype_name(w.type), block);
  }
  if (w.row_stride < row_bytes(w.type, w.cols) || w.row_stride % 2 != 0) {
    fail("matmul_cuda: row stride {} is too small or odd for {} columns of {}", w.row_stride,
         w.cols, dtype_name(w.type));
  }
  const bool needs4 = w.type == DType::Q4_K || w.type == DType::Q5_K || w.type == DType::F32;
  if (needs4 && (w.row_stride % 4 != 0 || reinterpret_cast<uintptr_t>(w.data) % 4 != 0)) {
    fail("matmul_cuda: {} rows must be 4-byte aligned", dtype_name(w.type));
  }
  if (reinterpret_cast<uintptr_t>(w.data) % 2 != 0) {
    fail("matmul_cuda: weight data must be 2-byte aligned");
  }
}

void matmul_prefill(const WeightMatrix& w, const float* x, int64_t n_tokens, float* y,
                    CudaMatmulWorkspace::Impl& ws, cudaStream_t stream) {
  ws.ensure_prefill(n_tokens, w.rows, w.cols);
  cublas_check(cublasSetStream(ws.cublas, stream), "cublasSetStream");
  cublas_check(
      cublasSetWorkspace(ws.cublas, ws.cublas_workspace.data(), ws.cublas_workspace.capacity()),
      "cublasSetWorkspace");
  const float alpha = 1.0f;
  const float beta = 0.0f;
  if (w.type == DType::F32) {
    // f32 weights: full-precision SGEMM on W in place (no tile, no rounding of W or x), so f32
    // models prefill exactly as they decode.
    cublas_check(cublasSgemm(ws.cublas, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(w.rows),
                             static_cast<int>(n_tokens), static_cast<int>(w.cols), &alpha,
                             static_cast<const float*>(w.data), static_cast<int>(w.row_stride / 4),
                             x, static_cast<int>(w.cols), &beta, y, static_cast<int>(w.rows)),
                 "cublasSgemm");
    return;
  }
  auto* xbf = ws.xbf.as<uint16_t>();
  convert_f32_to_bf16_cuda(x, xbf, n_tokens * w.cols, stream);
  const int64_t tile_rows =
      cuda_plan::prefill_tile_rows(w.rows, w.cols, cuda_plan::kPrefillTileBytes);
  auto* tile = ws.wtile.as<uint16_t>();
  for (int64_t r0 = 0; r0 < w.rows; r0 += tile_rows) {
    const int64_t tr = std::min(tile_rows, w.rows - r0);
    dequantize_rows_bf16_cuda(w, r0, tr, tile, stream);
    // Column-major view: y^T [rows, n_tokens] (ld rows) = tile^T (tile is [cols, tr], ld cols,
    // transposed) times x^T [cols, n_tokens] (ld cols).
    cublas_check(cublasGemmEx(ws.cublas, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(tr),
                              static_cast<int>(n_tokens), static_cast<int>(w.cols), &alpha, tile,
                              CUDA_R_16BF, static_cast<int>(w.cols), xbf, CUDA_R_16BF,
                              static_cast<int>(w.cols), &beta, y + r0, CUDA_R_32F,
                              static_cast<int>(w.rows), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                 "cublasGemmEx");
  }
}

// Quantises x [n_tokens, cols] once into the workspace (block formats read it); returns false for
// float-only batches, which read x directly.
bool quantize_for_gemv(const float* x, int64_t n_tokens, int64_t cols, bool any_block,
                       CudaMatmulWorkspace::Impl& ws, cudaStream_t stream) {
  if (!any_block) return false;
  ws.ensure_gemv(n_tokens, cols);
  quantize_activations_q8_cuda(x, n_tokens, cols, ws.xq.as<int8_t>(), ws.xd.as<float>(), stream);
  return true;
}

}  // namespace

void matmul_cuda(const WeightMatrix& w, const float* x, int64_t n_tokens, float* y,
                 CudaMatmulWorkspace& ws, cudaStream_t stream) {
  check_matrix(w);
  if (n_tokens < 0) fail("matmul_cuda: negative token count {}", n_tokens);
  if (n_tokens == 0 || w.rows == 0) return;
  if (w.cols == 0) {
    MOERUN_CUDA_CHECK(cudaMemsetAsync(y, 0, static_cast<size_t>(n_tokens * w.rows) * 4, stream));
    return;
  }
  CudaMatmulWorkspace::Impl& impl = ws.impl();
  if (n_tokens > cuda_plan::kMaxGemvTokens) {
    matmul_prefill(w, x, n_tokens, y, impl, stream);
    return;
  }
  const bool quantized =
      quantize_for_gemv(x, n_tokens, w.cols, !cuda_plan::is_float_format(w.type), impl, stream);
  const GemvJob job{&w, y};
  launch_gemv_cuda(&job, 1, x, quantized ? impl.xq.as<int8_t>() : nullptr,
                   quantized ? impl.xd.as<float>() : nullptr, n_tokens, stream);
}

void matmul_cuda_batch(const CudaMatmulJob* jobs, int n_jobs, const float* x, int64_t n_tokens,
                       CudaMatmulWorkspace& ws, cudaStream_t stream) {
  if (n_jobs < 0) fail("matmul_cuda_batch: negative job count {}", n_jobs);
  for (int j = 0; j < n_jobs; ++j) {
    check_matrix(*jobs[j].w);
    if (jobs[j].w->cols != jobs[0].w->cols) {
      fail("matmul_cuda_batch: matrices of {} and {} columns cannot share x", jobs[0].w->cols,
           jobs[j].w->cols);
    }
  }
  if (n_tokens < 0) fail("matmul_cuda_batch: negative token count {}", n_tokens);
  if (n_jobs == 0 || n_tokens == 0) return;
  const int64_t cols = jobs[0].w->cols;
  if (n_tokens > cuda_plan::kMaxGemvTokens || cols == 0) {
    for (int j = 0; j < n_jobs; ++j) matmul_cuda(*jobs[j].w, x, n_tokens, jobs[j].y, ws, stream);
    return;
  }
  // x is quantised once for all block-format matrices (the same kernel and buffer as a single
  // call, so each output is bitwise what matmul_cuda gives).
  bool any_block = false;
  for (int j = 0; j < n_jobs; ++j) {
    any_block = any_block || (jobs[j].w->rows > 0 && !cuda_plan::is_float_format(jobs[j].w->type));
  }
  CudaMatmulWorkspace::Impl& impl = ws.impl();
  const bool quantized = quantize_for_gemv(x, n_tokens, cols, any_block, impl, stream);
  const int8_t* xq = quantized ? impl.xq.as<int8_t>() : nullptr;
  const float* xd = quantized ? impl.xd.as<float>() : nullptr;
  // One GEMV launch per format per kMaxGemvJobs jobs, in their given order.
  bool done[cuda_plan::kMaxGemvJobs] = {};
  for (int base = 0; base < n_jobs; base += cuda_plan::kMaxGemvJobs) {
    const int count = std::min(n_jobs - base, cuda_plan::kMaxGemvJobs);
    for (int j = 0; j < count; ++j) done[j] = jobs[base + j].w->rows == 0;
    for (int j = 0; j < count; ++j) {
      if (done[j]) continue;
      const DType type = jobs[base + j].w->type;
      GemvJob group[cuda_plan::kMaxGemvJobs];
      int n_group = 0;
      for (int k = j; k < count; ++k) {
        if (!done[k] && jobs[base + k].w->type == type) {
          group[n_group++] = GemvJob{jobs[base + k].w, jobs[base + k].y};
          done[k] = true;
        }
      }
      launch_gemv_cuda(group, n_group, x, xq, xd, n_tokens, stream);
    }
  }
}

}  // namespace moerun
