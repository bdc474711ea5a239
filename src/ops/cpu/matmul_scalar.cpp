// Scalar reference path: dequantise each weight row and take an f64-accumulated dot product.
#include <vector>

#include "core/quant.h"
#include "ops/cpu/matmul_internal.h"

namespace moerun::cpu_matmul {
namespace {

void rows_scalar(const KernelArgs& a, int64_t row_begin, int64_t row_end) {
  thread_local std::vector<float> row;  // [cols] dequantised weights
  const int64_t cols = a.w.cols;
  if (row.size() < static_cast<size_t>(cols)) row.resize(static_cast<size_t>(cols));
  const auto* base = static_cast<const uint8_t*>(a.w.data);
  for (int64_t r = row_begin; r < row_end; ++r) {
    dequantize_row(a.w.type, base + r * a.w.row_stride, row.data(), cols);
    for (int64_t t = 0; t < a.n_tokens; ++t) {
      const float* x = a.x + t * cols;
      double sum = 0.0;
      for (int64_t j = 0; j < cols; ++j) sum += static_cast<double>(row[j]) * x[j];
      a.y[t * a.w.rows + r] = static_cast<float>(sum);
    }
  }
}

}  // namespace

RowsKernel scalar_kernel(DType type) {
  switch (type) {
    case DType::F32:
    case DType::F16:
    case DType::BF16:
    case DType::Q8_0:
    case DType::Q4_0:
    case DType::Q4_K:
    case DType::Q5_K:
    case DType::Q6_K:
      return rows_scalar;
    default:
      return nullptr;
  }
}

}  // namespace moerun::cpu_matmul
