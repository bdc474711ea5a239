// Test helper for the converter: run it on a directory, read tensors back as f32, and compare with
// tolerances that match each storage type.
#pragma once

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/quant.h"
#include "core/thread_pool.h"
#include "io/gguf_file.h"
#include "model/convert_hf.h"

namespace moerun::test {

// A path in the temp directory unique to this process and `name`.
inline std::string convert_temp(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("moerun_convert_" + std::to_string(::getpid()) + "_" + name))
      .string();
}

// Converts `dir` into `<dir>.gguf` and opens the result.
inline std::unique_ptr<GgufFile> convert_and_open(const std::string& dir, TypeMix mix,
                                                  const ConvertOptions& options = {}) {
  ThreadPool pool(2, false);
  const std::string out = dir + ".gguf";
  uint64_t last_done = 0, last_total = 0;
  convert_hf_checkpoint(
      dir, out, mix, pool,
      [&](uint64_t done, uint64_t total, const std::string& tensor) {
        EXPECT_GE(done, last_done) << tensor;
        EXPECT_FALSE(tensor.empty());
        last_done = done;
        last_total = total;
      },
      options);
  EXPECT_EQ(last_done, last_total);
  EXPECT_GT(last_total, 0u);
  return GgufFile::open(out);
}

// A tensor of the file dequantised to f32.
inline std::vector<float> gguf_values(const GgufFile& f, const std::string& name) {
  const GgufTensorInfo& t = f.tensor(name);
  std::vector<float> out(static_cast<size_t>(t.view.nelements()));
  dequantize_row(t.view.type, t.view.data, out.data(), t.view.nelements());
  return out;
}

// Largest error a value of a row with largest magnitude `row_max` may have after storage in
// `type` (round to nearest in each format; K-quants get a margin for their quantised scales).
inline float storage_tolerance(DType type, float value, float row_max) {
  switch (type) {
    case DType::F32:
      return 0.0f;
    case DType::BF16:
      return std::fabs(value) * (1.0f / 256.0f);
    case DType::F16:
      return std::fabs(value) * (1.0f / 2048.0f) + 1e-7f;
    case DType::Q8_0:
      return row_max / 127.0f;
    case DType::Q6_K:
      return row_max / 20.0f;
    default:  // 4-bit formats
      return row_max / 6.0f;
  }
}

// Expects tensor `name` to hold `expected` (GGUF order) within the tolerance of its type.
inline void expect_tensor_values(const GgufFile& f, const std::string& name,
                                 const std::vector<float>& expected) {
  SCOPED_TRACE(name);
  const GgufTensorInfo& t = f.tensor(name);
  const std::vector<float> got = gguf_values(f, name);
  ASSERT_EQ(got.size(), expected.size());
  const int64_t cols = t.view.ne[0];
  int errors = 0;
  for (size_t r = 0; r * static_cast<size_t>(cols) < got.size(); ++r) {
    float row_max = 0;
    for (int64_t c = 0; c < cols; ++c)
      row_max = std::max(row_max, std::fabs(expected[r * cols + c]));
    for (int64_t c = 0; c < cols && errors < 5; ++c) {
      const size_t i = r * static_cast<size_t>(cols) + static_cast<size_t>(c);
      const float tol = storage_tolerance(t.view.type, expected[i], row_max);
      if (!(std::fabs(got[i] - expected[i]) <= tol)) {
        ADD_FAILURE() << "element " << i << " (row " << r << "): got " << got[i] << ", expected "
                      << expected[i] << " (tolerance " << tol << ", type "
                      << dtype_name(t.view.type) << ")";
        ++errors;
      }
    }
  }
}

}  // namespace moerun::test
