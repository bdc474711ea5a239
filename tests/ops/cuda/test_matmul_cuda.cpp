// matmul_cuda against a double-precision reference of exactly what the GPU computes and against the
// CPU scalar path, for every format, decode (GEMV) and prefill (cuBLAS) token counts, odd row
// counts, padded and unaligned row strides; plus bf16 tile dequantisation, determinism, CUDA graph
// capture and no allocation after reserve().
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/half.h"
#include "core/quant.h"
#include "gpu_test_support.h"
#include "ops/cpu/matmul.h"
#include "ops/cuda/dequantize.h"
#include "ops/cuda/launch_plan.h"
#include "ops/cuda/matmul_cuda.h"

namespace moerun {
namespace {

using test::DeviceArray;

// A random N(0, 1) matrix quantised to `type`, with its dequantised values.
struct HostMatrix {
  DType type;
  int64_t rows;
  int64_t cols;
  int64_t stride;
  std::vector<uint8_t> packed;  // [rows, stride] bytes
  std::vector<float> deq;       // [rows, cols]
};

HostMatrix make_matrix(DType type, int64_t rows, int64_t cols, int64_t pad, std::mt19937& rng) {
  HostMatrix m{type, rows, cols, row_bytes(type, cols) + pad, {}, {}};
  m.packed.assign(static_cast<size_t>(rows * m.stride), 0);
  m.deq.resize(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    const std::vector<float> v = test::random_normal(static_cast<size_t>(cols), rng);
    quantize_row(type, v.data(), m.packed.data() + r * m.stride, cols);
    dequantize_row(type, m.packed.data() + r * m.stride, m.deq.data() + r * cols, cols);
  }
  return m;
}

bool is_block(DType t) {
  return !cuda_plan::is_float_format(t);
}

// Runs matmul_cuda for n tokens of random x on device matrix dw and checks every output against
// (1) the reference of what the GPU computes, tight, and (2) the CPU scalar path, within the
// numerics' stated error.
void check_case(const HostMatrix& m, const DeviceArray& dw, int64_t n, std::mt19937& rng,
                CudaMatmulWorkspace& ws) {
  const int64_t rows = m.rows, cols = m.cols;
  const std::vector<float> x = test::random_normal(static_cast<size_t>(n * cols), rng);
  DeviceArray dx(x.size() * 4), dy(static_cast<size_t>(n * rows) * 4);
  dx.upload(x.data());
  dy.poison();
  const WeightMatrix w{m.type, rows, cols, m.stride, dw.data()};
  matmul_cuda(w, dx.as<float>(), n, dy.as<float>(), ws, nullptr);
  const std::vector<float> got = dy.download<float>();

  std::vector<float> cpu(static_cast<size_t>(n * rows));
  matmul(WeightMatrix{m.type, rows, cols, m.stride, m.packed.data()}, x.data(), n, cpu.data(),
         nullptr, CpuIsa::scalar);

  // What the GPU multiplies: x^ (int8 per 32) or x for the GEMV; bf16 W and x for cuBLAS, with W
  // taken from the GPU's own bf16 tiles (checked against the host in DequantizeRowsBf16).
  const bool gemv = n <= cuda_plan::kMaxGemvTokens;
  std::vector<double> xv(x.size());              // [n, cols] the activations the GPU multiplies
  std::vector<float> xscale(x.size() / 32 + 1);  // [n, cols / 32] int8 scales
  std::vector<float> wv(m.deq);                  // [rows, cols] the weights the GPU multiplies
  if (gemv && is_block(m.type)) {
    for (int64_t t = 0; t < n; ++t) {
      test::emulate_q8(x.data() + t * cols, cols, xv.data() + t * cols,
                       xscale.data() + t * (cols / 32));
    }
  } else if (gemv || m.type == DType::F32) {  // f32 weights beyond 8 tokens: f32 SGEMM
    for (size_t i = 0; i < x.size(); ++i) xv[i] = x[i];
  } else {
    for (size_t i = 0; i < x.size(); ++i) xv[i] = bf16_to_f32(f32_to_bf16(x[i]));
    DeviceArray tile(static_cast<size_t>(rows * cols) * 2);
    dequantize_rows_bf16_cuda(w, 0, rows, tile.as<uint16_t>(), nullptr);
    const std::vector<uint16_t> bits = tile.download<uint16_t>();
    for (size_t i = 0; i < bits.size(); ++i) wv[i] = bf16_to_f32(bits[i]);
  }
  // f32 additions per output: per lane one per group of 32 (GEMV), or cuBLAS's k-blocked sums.
  const int64_t adds = gemv ? cols / 32 : cols / 8 + 16;

  int failures = 0;
  for (int64_t t = 0; t < n && failures < 5; ++t) {
    for (int64_t r = 0; r < rows && failures < 5; ++r) {
      const float* wr = m.deq.data() + r * cols;
      const float* wg = wv.data() + r * cols;
      double ref = 0, ref_abs = 0, true_abs = 0, quant_err = 0;
      for (int64_t j = 0; j < cols; ++j) {
        const double p = static_cast<double>(wg[j]) * xv[t * cols + j];
        ref += p;
        ref_abs += std::fabs(p);
        true_abs += std::fabs(static_cast<double>(wr[j]) * x[t * cols + j]);
        if (gemv && is_block(m.type)) {
          quant_err += std::fabs(wr[j]) * 0.5 * xscale[t * (cols / 32) + j / 32];
        }
      }
      // (1) Only the f32 rounding of the GPU's sums separates it from ref.
      const double tol = test::f32_sum_bound(adds, ref_abs) + 1e-6;
      // (2) From the exact product: int8 rounding of x (|x - x^| <= d / 2) or bf16 rounding of W
      // and x (each <= 2^-9 relative, 2^-7 covers both with room), plus the sums' rounding.
      const bool exact = gemv || m.type == DType::F32;
      const double tol_cpu =
          (exact ? quant_err * 1.001 : std::ldexp(true_abs, -7)) + tol + 1e-5 * true_abs / cols;
      const float y = got[t * rows + r];
      const std::string where = std::string(dtype_name(m.type)) + " rows " + std::to_string(rows) +
                                " cols " + std::to_string(cols) + " tokens " + std::to_string(n) +
                                " at t " + std::to_string(t) + " r " + std::to_string(r);
      if (std::isnan(y) || std::fabs(y - ref) > tol || std::fabs(y - cpu[t * rows + r]) > tol_cpu) {
        ++failures;
        ADD_FAILURE() << where << ": got " << y << ", reference " << ref << " (tol " << tol
                      << "), cpu " << cpu[t * rows + r] << " (tol " << tol_cpu << ")";
      }
    }
  }
}

class MatmulCuda : public ::testing::TestWithParam<DType> {};

TEST_P(MatmulCuda, MatchesReferencesForAllShapes) {
  if (!test::has_gpu()) GTEST_SKIP() << "no CUDA device";
  const DType type = GetParam();
  std::mt19937 rng(42 + static_cast<int>(type));
  // 256 and 512: rows shorter than one 1024-column warp chunk; 2048 and 4096: warps split the
  // columns (split_k 2 and 4).
  std::vector<int64_t> col_set = {256, 512, 768, 2048, 4096};
  if (type == DType::Q8_0 || type == DType::Q4_0) col_set.push_back(96);  // partial chunk
  if (cuda_plan::is_float_format(type)) {
    col_set.push_back(100);  // not a multiple of 128
    col_set.push_back(33);   // odd: scalar loads
  }
  CudaMatmulWorkspace ws;
  for (int64_t cols : col_set) {
    for (int64_t rows : {1, 7, 33, 257}) {
      // Pad the rows of some matrices (row_stride > packed size; 6 keeps 2-byte alignment only).
      const int64_t pad = rows == 33 ? 64 : rows == 7 ? 6 : 0;
      if (pad % 4 != 0 && (type == DType::Q4_K || type == DType::Q5_K || type == DType::F32)) {
        continue;  // these formats need 4-byte aligned rows
      }
      const HostMatrix m = make_matrix(type, rows, cols, pad, rng);
      DeviceArray dw(m.packed.size());
      dw.upload(m.packed.data());
      for (int64_t n : {1, 2, 3, 5, 8, 9, 17, 64}) {
        SCOPED_TRACE(testing::Message() << "rows " << rows << " cols " << cols << " tokens " << n);
        check_case(m, dw, n, rng, ws);
        if (HasFailure()) return;
      }
    }
  }
}

TEST_P(MatmulCuda, DequantizeRowsBf16MatchesHostRounding) {
  if (!test::has_gpu()) GTEST_SKIP() << "no CUDA device";
  const DType type = GetParam();
  std::mt19937 rng(7);
  const int64_t cols = cuda_plan::is_float_format(type) ? 100 : 768;
  const int64_t pad = (type == DType::Q4_K || type == DType::Q5_K || type == DType::F32) ? 4 : 2;
  const HostMatrix m = make_matrix(type, 7, cols, pad, rng);
  DeviceArray dw(m.packed.size());
  dw.upload(m.packed.data());
  const int64_t begin = 2, count = 4;
  DeviceArray tile(static_cast<size_t>(count * cols) * 2);
  tile.poison();
  dequantize_rows_bf16_cuda(WeightMatrix{type, m.rows, cols, m.stride, dw.data()}, begin, count,
                            tile.as<uint16_t>(), nullptr);
  const std::vector<uint16_t> got = tile.download<uint16_t>();
  int64_t exact = 0;
  for (int64_t i = 0; i < count * cols; ++i) {
    const float expected = m.deq[static_cast<size_t>(begin * cols + i)];
    const uint16_t want = f32_to_bf16(expected);
    exact += got[i] == want;
    // The GPU may fuse d * sc * q - dmin * m into one FMA, so its f32 weight can differ from the
    // host's in the last bit, and a value on a bf16 rounding boundary can round the other way:
    // allow one bf16 step (2^-8 relative), but require almost all to be exact.
    ASSERT_LE(std::fabs(bf16_to_f32(got[i]) - bf16_to_f32(want)),
              std::ldexp(std::fabs(expected), -7))
        << dtype_name(type) << " element " << i;
  }
  EXPECT_GE(exact, count * cols * 99 / 100);
}

TEST_P(MatmulCuda, DeterministicAndCapturableInAGraph) {
  if (!test::has_gpu()) GTEST_SKIP() << "no CUDA device";
  const DType type = GetParam();
  std::mt19937 rng(9);
  const int64_t rows = 300, cols = 2048;
  const HostMatrix m = make_matrix(type, rows, cols, 0, rng);
  DeviceArray dw(m.packed.size());
  dw.upload(m.packed.data());
  const WeightMatrix w{type, rows, cols, m.stride, dw.data()};
  CudaMatmulWorkspace ws;
  ws.reserve(rows, cols, 64);
  const int64_t reserved = ws.device_bytes();
  cudaStream_t stream;
  ASSERT_EQ(cudaStreamCreate(&stream), cudaSuccess);
  for (int64_t n : {1, 3, 8, 17, 64}) {
    const std::vector<float> x = test::random_normal(static_cast<size_t>(n * cols), rng);
    DeviceArray dx(x.size() * 4), y1(static_cast<size_t>(n * rows) * 4),
        y2(static_cast<size_t>(n * rows) * 4);
    dx.upload(x.data());
    y1.poison();
    y2.poison();
    matmul_cuda(w, dx.as<float>(), n, y1.as<float>(), ws, stream);
    if (n <= cuda_plan::kMaxGemvTokens) {
      // Capture the same call in a graph and replay it twice.
      cudaGraph_t graph;
      cudaGraphExec_t exec;
      ASSERT_EQ(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal), cudaSuccess);
      matmul_cuda(w, dx.as<float>(), n, y2.as<float>(), ws, stream);
      ASSERT_EQ(cudaStreamEndCapture(stream, &graph), cudaSuccess);
      ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
      ASSERT_EQ(cudaGraphLaunch(exec, stream), cudaSuccess);
      ASSERT_EQ(cudaGraphLaunch(exec, stream), cudaSuccess);
      ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
      cudaGraphExecDestroy(exec);
      cudaGraphDestroy(graph);
    } else {
      matmul_cuda(w, dx.as<float>(), n, y2.as<float>(), ws, stream);
    }
    ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
    const std::vector<float> a = y1.download<float>(), b = y2.download<float>();
    EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * 4), 0)
        << dtype_name(type) << " tokens " << n << ": two runs differ";
  }
  EXPECT_EQ(ws.device_bytes(), reserved) << "matmul_cuda allocated after reserve()";
  cudaStreamDestroy(stream);
}

INSTANTIATE_TEST_SUITE_P(AllFormats, MatmulCuda,
                         ::testing::Values(DType::F32, DType::F16, DType::BF16, DType::Q8_0,
                                           DType::Q4_0, DType::Q4_K, DType::Q5_K, DType::Q6_K),
                         [](const auto& param_info) {
                           return std::string(dtype_name(param_info.param));
                         });

// matmul_cuda_batch over matrices of several formats, sizes and paddings sharing x: each output is
// bitwise what matmul_cuda gives for that matrix alone, for decode and prefill token counts, and a
// captured batch replays to the same bits without allocating after reserve().
TEST(MatmulCudaBatch, EqualsSingleCallsBitwise) {
  if (!test::has_gpu()) GTEST_SKIP() << "no CUDA device";
  std::mt19937 rng(13);
  const int64_t cols = 2048;
  struct Spec {
    DType type;
    int64_t rows, pad;
  };
  // The model's groups: DeltaNet qkv + gate + ba, attention q + k + v, router + shared gate + up +
  // scale (scaled down), with other formats and padded rows mixed in.
  const Spec specs[] = {{DType::Q4_K, 1000, 0}, {DType::Q4_K, 512, 0}, {DType::Q8_0, 64, 0},
                        {DType::Q6_K, 96, 0},   {DType::F32, 40, 0},   {DType::Q4_K, 33, 16},
                        {DType::F32, 1, 0},     {DType::Q5_K, 7, 0},   {DType::Q4_K, 5, 0},
                        {DType::Q6_K, 3, 2}};
  std::vector<HostMatrix> mats;
  std::vector<std::unique_ptr<DeviceArray>> dws;
  std::vector<WeightMatrix> ws_list;
  for (const Spec& sp : specs) {
    mats.push_back(make_matrix(sp.type, sp.rows, cols, sp.pad, rng));
    dws.push_back(std::make_unique<DeviceArray>(mats.back().packed.size()));
    dws.back()->upload(mats.back().packed.data());
  }
  for (size_t i = 0; i < mats.size(); ++i) {
    ws_list.push_back(
        WeightMatrix{mats[i].type, mats[i].rows, cols, mats[i].stride, dws[i]->data()});
  }
  CudaMatmulWorkspace ws;
  ws.reserve(1000, cols, 17);
  const int64_t reserved = ws.device_bytes();
  cudaStream_t stream;
  ASSERT_EQ(cudaStreamCreate(&stream), cudaSuccess);
  for (int64_t n : {1, 2, 5, 8, 17}) {
    const std::vector<float> x = test::random_normal(static_cast<size_t>(n * cols), rng);
    DeviceArray dx(x.size() * 4);
    dx.upload(x.data());
    std::vector<std::unique_ptr<DeviceArray>> single, batch, graph;
    std::vector<CudaMatmulJob> jobs, graph_jobs;
    for (const WeightMatrix& w : ws_list) {
      const size_t bytes = static_cast<size_t>(n * w.rows) * 4;
      single.push_back(std::make_unique<DeviceArray>(bytes));
      batch.push_back(std::make_unique<DeviceArray>(bytes));
      graph.push_back(std::make_unique<DeviceArray>(bytes));
      single.back()->poison();
      batch.back()->poison();
      graph.back()->poison();
      matmul_cuda(w, dx.as<float>(), n, single.back()->as<float>(), ws, stream);
      jobs.push_back(CudaMatmulJob{&w, batch.back()->as<float>()});
      graph_jobs.push_back(CudaMatmulJob{&w, graph.back()->as<float>()});
    }
    matmul_cuda_batch(jobs.data(), static_cast<int>(jobs.size()), dx.as<float>(), n, ws, stream);
    if (n <= cuda_plan::kMaxGemvTokens) {
      cudaGraph_t g;
      cudaGraphExec_t exec;
      ASSERT_EQ(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal), cudaSuccess);
      matmul_cuda_batch(graph_jobs.data(), static_cast<int>(graph_jobs.size()), dx.as<float>(), n,
                        ws, stream);
      ASSERT_EQ(cudaStreamEndCapture(stream, &g), cudaSuccess);
      ASSERT_EQ(cudaGraphInstantiate(&exec, g, 0), cudaSuccess);
      ASSERT_EQ(cudaGraphLaunch(exec, stream), cudaSuccess);
      ASSERT_EQ(cudaGraphLaunch(exec, stream), cudaSuccess);
      cudaGraphExecDestroy(exec);
      cudaGraphDestroy(g);
    } else {
      matmul_cuda_batch(graph_jobs.data(), static_cast<int>(graph_jobs.size()), dx.as<float>(), n,
                        ws, stream);
    }
    ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
    for (size_t i = 0; i < ws_list.size(); ++i) {
      const std::vector<float> a = single[i]->download<float>();
      const std::vector<float> b = batch[i]->download<float>();
      const std::vector<float> c = graph[i]->download<float>();
      EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * 4), 0)
          << "job " << i << " (" << dtype_name(ws_list[i].type) << ", " << ws_list[i].rows
          << " rows), tokens " << n << ": batch differs from a single call";
      EXPECT_EQ(std::memcmp(a.data(), c.data(), a.size() * 4), 0)
          << "job " << i << ", tokens " << n << ": captured batch differs";
    }
  }
  EXPECT_EQ(ws.device_bytes(), reserved) << "matmul_cuda_batch allocated after reserve()";
  cudaStreamDestroy(stream);
}

// A prefill product whose bf16 weights exceed one 64 MiB tile (16500 x 2048: two tiles).
TEST(MatmulCudaPrefill, SeveralTiles) {
  if (!test::has_gpu()) GTEST_SKIP() << "no CUDA device";
  std::mt19937 rng(11);
  const int64_t rows = 16500, cols = 2048;
  ASSERT_LT(cuda_plan::prefill_tile_rows(rows, cols, cuda_plan::kPrefillTileBytes), rows);
  const HostMatrix m = make_matrix(DType::Q8_0, rows, cols, 0, rng);
  DeviceArray dw(m.packed.size());
  dw.upload(m.packed.data());
  CudaMatmulWorkspace ws;
  check_case(m, dw, 9, rng, ws);
}

}  // namespace
}  // namespace moerun
