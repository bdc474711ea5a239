#include "ops/cpu/matmul.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <random>
#include <span>
#include <vector>

#include "core/cpu_features.h"
#include "core/error.h"
#include "core/quant.h"
#include "core/thread_pool.h"
#include "ops/cpu/matmul_internal.h"

namespace moerun {
namespace {

constexpr DType kFormats[] = {DType::F32,  DType::F16,  DType::BF16, DType::Q8_0,
                              DType::Q4_0, DType::Q4_K, DType::Q5_K, DType::Q6_K};

// A random weight matrix: N(0,1) values quantized row by row, and their dequantized values.
struct TestMatrix {
  DType type;
  int64_t rows, cols;
  std::vector<uint8_t> bytes;  // [rows, row_bytes(type, cols)]
  std::vector<float> deq;      // [rows, cols] what the weights really are

  WeightMatrix view() const {
    return WeightMatrix{type, rows, cols, row_bytes(type, cols), bytes.data()};
  }
};

TestMatrix make_matrix(DType type, int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  TestMatrix m{type, rows, cols, {}, {}};
  const int64_t rb = row_bytes(type, cols);
  m.bytes.resize(static_cast<size_t>(rows * rb));
  m.deq.resize(static_cast<size_t>(rows * cols));
  std::vector<float> src(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    for (float& v : src) v = normal(rng);
    quantize_row(type, src.data(), m.bytes.data() + r * rb, cols);
    dequantize_row(type, m.bytes.data() + r * rb, m.deq.data() + r * cols, cols);
  }
  return m;
}

std::vector<float> random_activations(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n));
  for (float& v : x) v = normal(rng);
  return x;
}

// Values per activation scale of the SIMD kernels: they quantize x to 8 bits in these blocks.
int64_t activation_block(DType type) {
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

// Exact product (f64) and the allowed error of each output [n_tokens, rows].
//
// Tolerance. The scalar path and the float formats only round in f32: |err| <= 2e-5 * sum|w x|
// (each of 8-16 SIMD lanes adds at most cols/8 terms, each adding <= 6e-8 relative error;
// 2048/8 * 6e-8 = 1.5e-5). The quantized SIMD paths also round x to 8 bits: x_j = d_b q_j + e_j
// with |e_j| <= d_b / 2, d_b = max|x in block b| / 127. The e_j behave as independent uniform
// errors, so the output error has sigma^2 = sum_j w_j^2 d_b^2 / 12 and we allow 6 sigma (the sum
// of many bounded terms: a 6-sigma excursion has probability ~1e-9 per output; the data are
// fixed, so the test is deterministic). A broken kernel is far outside: one wrong sub-block
// scale or nibble order misplaces ~sqrt(32) * |w||x| ~ 5 of output (sigma is 0.26 at 2048 columns
// and 0.03 at 32), which ToleranceCatchesAWrongSubBlock checks.
void reference(const TestMatrix& m, const std::vector<float>& x, int64_t n_tokens, bool quantized_x,
               std::vector<double>* y, std::vector<double>* tol) {
  y->assign(static_cast<size_t>(n_tokens * m.rows), 0.0);
  tol->assign(static_cast<size_t>(n_tokens * m.rows), 0.0);
  const int64_t block = quantized_x ? activation_block(m.type) : 0;
  std::vector<double> step(static_cast<size_t>(m.cols), 0.0);  // activation rounding step d_b
  for (int64_t t = 0; t < n_tokens; ++t) {
    const float* xt = x.data() + t * m.cols;
    if (block > 0) {
      for (int64_t b = 0; b < m.cols / block; ++b) {
        double amax = 0.0;
        for (int64_t j = b * block; j < (b + 1) * block; ++j)
          amax = std::max(amax, std::fabs(double{xt[j]}));
        for (int64_t j = b * block; j < (b + 1) * block; ++j)
          step[static_cast<size_t>(j)] = amax / 127.0;
      }
    }
    for (int64_t r = 0; r < m.rows; ++r) {
      const float* w = m.deq.data() + r * m.cols;
      double sum = 0.0, abs_sum = 0.0, var = 0.0;
      for (int64_t j = 0; j < m.cols; ++j) {
        sum += double{w[j]} * xt[j];
        abs_sum += std::fabs(double{w[j]} * xt[j]);
        const double s = step[static_cast<size_t>(j)];
        var += double{w[j]} * w[j] * s * s / 12.0;
      }
      (*y)[static_cast<size_t>(t * m.rows + r)] = sum;
      (*tol)[static_cast<size_t>(t * m.rows + r)] = 6.0 * std::sqrt(var) + 2e-5 * abs_sum + 1e-6;
    }
  }
}

// Number of outputs outside the tolerance (and the first one reported through gtest).
int count_mismatches(const std::vector<float>& got, const std::vector<double>& want,
                     const std::vector<double>& tol, const std::string& what) {
  int bad = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    if (!(std::fabs(got[i] - want[i]) <= tol[i])) {
      if (bad == 0) {
        ADD_FAILURE() << what << ": output " << i << " is " << got[i] << ", want " << want[i]
                      << " +- " << tol[i];
      }
      ++bad;
    }
  }
  return bad;
}

bool isa_supported(CpuIsa isa) {
  const CpuFeatures& f = cpu_features();
  if (isa == CpuIsa::avx2) return f.avx2 && f.fma && f.f16c;
  if (isa == CpuIsa::avx512) {
    return f.avx2 && f.fma && f.f16c && f.avx512f && f.avx512bw && f.avx512vl && f.avx512vnni;
  }
  return true;
}

// Every format, odd shapes and token counts, against the f64 product of the dequantized weights.
void check_path_against_reference(CpuIsa isa) {
  const int64_t kMaxTokens = 70;
  for (DType type : kFormats) {
    const int64_t block = type == DType::F32 || type == DType::F16 || type == DType::BF16
                              ? 1
                              : (activation_block(type));
    std::vector<int64_t> col_sizes = {block, 2 * block, 3 * block, 4 * block, 2048};
    if (block == 1) col_sizes = {1, 3, 16, 37, 2048};
    for (int64_t rows : {1, 3, 17, 250}) {
      for (int64_t cols : col_sizes) {
        const TestMatrix m =
            make_matrix(type, rows, cols, static_cast<uint32_t>(rows * 7919 + cols));
        const std::vector<float> x =
            random_activations(kMaxTokens * cols, static_cast<uint32_t>(cols));
        std::vector<double> want, tol;
        reference(m, x, kMaxTokens, isa != CpuIsa::scalar, &want, &tol);
        // Every remainder of the kernels' token groups (4 and 8), and batches up to 64.
        for (int64_t n_tokens : {1, 2, 3, 4, 5, 7, 8, 9, 13, 16, 17, 33, 64, 70}) {
          if (rows * cols * n_tokens > 250 * 2048 * 13 && n_tokens != 70)
            continue;  // keep it quick
          std::vector<float> y(static_cast<size_t>(n_tokens * rows), NAN);
          matmul(m.view(), x.data(), n_tokens, y.data(), nullptr, isa);
          const std::vector<double> w(want.begin(), want.begin() + n_tokens * rows);
          const std::vector<double> t(tol.begin(), tol.begin() + n_tokens * rows);
          const std::string what = std::string(cpu_isa_name(isa)) + " " +
                                   std::string(dtype_name(type)) + " " + std::to_string(rows) +
                                   "x" + std::to_string(cols) + " tokens " +
                                   std::to_string(n_tokens);
          ASSERT_EQ(count_mismatches(y, w, t, what), 0) << what;
        }
      }
    }
  }
}

TEST(Matmul, ScalarMatchesReference) {
  check_path_against_reference(CpuIsa::scalar);
}

TEST(Matmul, Avx2MatchesReference) {
  if (!isa_supported(CpuIsa::avx2)) GTEST_SKIP() << "CPU lacks AVX2/FMA/F16C";
  check_path_against_reference(CpuIsa::avx2);
}

TEST(Matmul, Avx512MatchesReference) {
  if (!isa_supported(CpuIsa::avx512)) GTEST_SKIP() << "CPU lacks AVX-512 F/BW/VL/VNNI";
  check_path_against_reference(CpuIsa::avx512);
}

std::vector<CpuIsa> supported_paths() {
  std::vector<CpuIsa> paths = {CpuIsa::scalar};
  if (isa_supported(CpuIsa::avx2)) paths.push_back(CpuIsa::avx2);
  if (isa_supported(CpuIsa::avx512)) paths.push_back(CpuIsa::avx512);
  return paths;
}

TEST(Matmul, ThreadsGiveBitwiseIdenticalResults) {
  ThreadPool pool(3);
  for (CpuIsa isa : supported_paths()) {
    for (DType type : kFormats) {
      const TestMatrix m = make_matrix(type, 301, 512, 11);
      for (int64_t n_tokens : {1, 7}) {
        const std::vector<float> x = random_activations(n_tokens * 512, 5);
        std::vector<float> y1(static_cast<size_t>(n_tokens * 301)), y3(y1.size());
        matmul(m.view(), x.data(), n_tokens, y1.data(), nullptr, isa);
        matmul(m.view(), x.data(), n_tokens, y3.data(), &pool, isa);
        EXPECT_EQ(std::memcmp(y1.data(), y3.data(), y1.size() * sizeof(float)), 0)
            << cpu_isa_name(isa) << " " << dtype_name(type);
      }
    }
  }
}

TEST(Matmul, RowSubrangesEqualTheFullProduct) {
  for (CpuIsa isa : supported_paths()) {
    for (DType type : kFormats) {
      const TestMatrix m = make_matrix(type, 45, 256, 3);
      const int64_t n_tokens = 6;
      const std::vector<float> x = random_activations(n_tokens * 256, 9);
      std::vector<float> full(static_cast<size_t>(n_tokens * 45)), parts(full.size(), NAN);
      matmul(m.view(), x.data(), n_tokens, full.data(), nullptr, isa);
      for (auto [b, e] : {std::pair<int64_t, int64_t>{0, 10}, {10, 11}, {11, 30}, {30, 45}}) {
        matmul_rows(m.view(), x.data(), n_tokens, parts.data(), b, e, isa);
      }
      EXPECT_EQ(std::memcmp(full.data(), parts.data(), full.size() * sizeof(float)), 0)
          << cpu_isa_name(isa) << " " << dtype_name(type);
    }
  }
}

TEST(Matmul, RowStrideLargerThanARowIsHonoured) {
  const TestMatrix m = make_matrix(DType::Q4_K, 5, 512, 21);
  const int64_t rb = row_bytes(DType::Q4_K, 512), stride = rb + 64;
  std::vector<uint8_t> padded(static_cast<size_t>(5 * stride), 0xff);
  for (int64_t r = 0; r < 5; ++r)
    std::memcpy(padded.data() + r * stride, m.bytes.data() + r * rb, rb);
  const std::vector<float> x = random_activations(512, 2);
  for (CpuIsa isa : supported_paths()) {
    std::vector<float> a(5), b(5);
    matmul(m.view(), x.data(), 1, a.data(), nullptr, isa);
    matmul(WeightMatrix{DType::Q4_K, 5, 512, stride, padded.data()}, x.data(), 1, b.data(), nullptr,
           isa);
    EXPECT_EQ(a, b) << cpu_isa_name(isa);
  }
}

TEST(Matmul, ToleranceCatchesAWrongSubBlock) {
  // The check must fail for a kernel that gets one sub-block of one row wrong: emulate it by
  // comparing the correct kernel against a reference whose weights differ in one sub-block.
  const CpuIsa isa = detect_cpu_isa();
  TestMatrix m = make_matrix(DType::Q4_K, 4, 2048, 8);
  const std::vector<float> x = random_activations(2048, 4);
  std::vector<float> y(4);
  matmul(m.view(), x.data(), 1, y.data(), nullptr, isa);
  for (int64_t j = 0; j < 32; ++j) m.deq[static_cast<size_t>(2 * 2048 + 512 + j)] *= 1.25f;
  std::vector<double> want, tol;
  reference(m, x, 1, isa != CpuIsa::scalar, &want, &tol);
  EXPECT_GT(std::fabs(y[2] - want[2]), tol[2]);
  EXPECT_LE(std::fabs(y[1] - want[1]), tol[1]);
}

TEST(Matmul, RejectsBadInput) {
  const TestMatrix m = make_matrix(DType::Q8_0, 2, 64, 1);
  std::vector<float> x(64), y(2);
  WeightMatrix bad = m.view();
  bad.cols = 48;  // not a whole number of blocks
  EXPECT_THROW(matmul(bad, x.data(), 1, y.data(), nullptr), Error);
  bad = m.view();
  bad.row_stride = 10;
  EXPECT_THROW(matmul(bad, x.data(), 1, y.data(), nullptr), Error);
  EXPECT_THROW(matmul_rows(m.view(), x.data(), 1, y.data(), 1, 3), Error);
  WeightMatrix q3 = m.view();
  q3.type = DType::Q3_K;
  EXPECT_THROW(matmul(q3, x.data(), 1, y.data(), nullptr), Error);
  for (CpuIsa isa : {CpuIsa::avx2, CpuIsa::avx512}) {
    if (!isa_supported(isa)) {
      EXPECT_THROW(matmul(m.view(), x.data(), 1, y.data(), nullptr, isa), Error);
    }
  }
}

TEST(Matmul, Avx2ActivationQuantizationEqualsScalar) {
  if (!isa_supported(CpuIsa::avx2)) GTEST_SKIP() << "CPU lacks AVX2";
  for (int64_t block : {32, 256}) {
    std::vector<float> x = random_activations(3 * 512, 17);
    x[5] = 0.0f;
    std::fill(x.begin() + 512, x.begin() + 512 + block, 0.0f);  // an all-zero block
    cpu_matmul::ActivationBuffer a, b;
    const auto qa = cpu_matmul::quantize_activations(x.data(), 3, 512, block, a);
    const auto qb = cpu_matmul::quantize_activations_avx2(x.data(), 3, 512, block, b);
    EXPECT_EQ(std::memcmp(qa.q, qb.q, 3 * 512), 0);
    EXPECT_EQ(std::memcmp(qa.d, qb.d, 3 * 512 / block * sizeof(float)), 0);
    EXPECT_EQ(std::memcmp(qa.sums, qb.sums, 3 * 512 / 16 * sizeof(int16_t)), 0);
    for (int64_t j = 0; j < 3 * 512; ++j) {  // and the quantization is what it claims to be
      const float d = qa.d[j / block];
      ASSERT_LE(std::fabs(d * qa.q[j] - x[static_cast<size_t>(j)]), d / 2 * 1.0001f + 1e-30f);
    }
  }
}

// Many jobs of every format, mixed shapes and token counts, shared and distinct inputs, empty jobs:
// matmul_batch gives bitwise the results of separate matmul calls, on one thread or a pool, and a
// reused workspace gives the same results for a smaller batch afterwards.
TEST(Matmul, BatchEqualsSeparateCalls) {
  ThreadPool pool(3);
  struct Spec {
    DType type;
    int64_t rows, cols, n_tokens;
    int input;  // jobs with the same input index (and cols, tokens) share x
  };
  std::vector<Spec> specs;
  int k = 0;
  for (DType type : kFormats) {
    specs.push_back({type, 64, 512, 5, 0});  // shares input 0 with other formats
    specs.push_back({type, 37, 512, 5, 0});  // odd rows, same input
    specs.push_back({type, 256, 2048, 1, 100 + k});
    specs.push_back({type, 0, 512, 3, 200 + k});  // no rows
    specs.push_back({type, 8, 512, 0, 300 + k});  // no tokens
    specs.push_back({type, 21, 256, 13, 400 + k});
    ++k;
  }
  specs.push_back({DType::Q4_K, 64, 2048, 64, 500});  // large enough to quantize in parallel
  specs.push_back({DType::Q8_0, 40, 2048, 64, 500});
  std::map<int, std::vector<float>> inputs;
  for (const Spec& sp : specs) {
    auto& x = inputs[sp.input];
    if (x.empty())
      x = random_activations(std::max<int64_t>(1, sp.n_tokens) * sp.cols, sp.input + 7);
  }
  std::vector<TestMatrix> mats;
  for (size_t i = 0; i < specs.size(); ++i) {
    mats.push_back(
        make_matrix(specs[i].type, specs[i].rows, specs[i].cols, static_cast<uint32_t>(i)));
  }
  for (CpuIsa isa : supported_paths()) {
    std::vector<std::vector<float>> want(specs.size());
    for (size_t i = 0; i < specs.size(); ++i) {
      want[i].assign(static_cast<size_t>(specs[i].rows * specs[i].n_tokens), NAN);
      matmul(mats[i].view(), inputs[specs[i].input].data(), specs[i].n_tokens, want[i].data(),
             nullptr, isa);
    }
    MatmulWorkspace ws;
    for (ThreadPool* p : {static_cast<ThreadPool*>(nullptr), &pool, &pool}) {
      std::vector<std::vector<float>> got(specs.size());
      std::vector<MatmulJob> jobs;
      for (size_t i = 0; i < specs.size(); ++i) {
        got[i].assign(want[i].size(), NAN);
        jobs.push_back(
            {mats[i].view(), inputs[specs[i].input].data(), specs[i].n_tokens, got[i].data()});
      }
      matmul_batch(jobs, p, ws, isa);
      for (size_t i = 0; i < specs.size(); ++i) {
        if (got[i].empty()) continue;  // an empty job: nothing to compare (memcmp needs non-null)
        EXPECT_EQ(std::memcmp(got[i].data(), want[i].data(), got[i].size() * sizeof(float)), 0)
            << cpu_isa_name(isa) << " job " << i << " " << dtype_name(specs[i].type);
      }
    }
    // A smaller batch on the same workspace afterwards.
    std::vector<float> y(want[2].size(), NAN);
    const MatmulJob one{mats[2].view(), inputs[specs[2].input].data(), specs[2].n_tokens, y.data()};
    matmul_batch(std::span<const MatmulJob>(&one, 1), &pool, ws, isa);
    EXPECT_EQ(std::memcmp(y.data(), want[2].data(), y.size() * sizeof(float)), 0);
    matmul_batch({}, &pool, ws, isa);  // no jobs at all
  }
}

TEST(Matmul, BatchRejectsBadJobs) {
  const TestMatrix m = make_matrix(DType::Q4_K, 4, 256, 1);
  std::vector<float> x(256), y(4);
  MatmulWorkspace ws;
  MatmulJob job{m.view(), x.data(), -1, y.data()};
  EXPECT_THROW(matmul_batch(std::span<const MatmulJob>(&job, 1), nullptr, ws), Error);
  job = {m.view(), nullptr, 1, y.data()};
  EXPECT_THROW(matmul_batch(std::span<const MatmulJob>(&job, 1), nullptr, ws), Error);
  job = {m.view(), x.data(), 1, y.data()};
  job.w.cols = 100;
  EXPECT_THROW(matmul_batch(std::span<const MatmulJob>(&job, 1), nullptr, ws), Error);
}

TEST(Matmul, BestIsTheWidestSupportedPath) {
  const CpuIsa best = detect_cpu_isa();
  EXPECT_NE(best, CpuIsa::best);
  if (isa_supported(CpuIsa::avx512)) {
    EXPECT_EQ(best, CpuIsa::avx512);
  } else if (isa_supported(CpuIsa::avx2)) {
    EXPECT_EQ(best, CpuIsa::avx2);
  } else {
    EXPECT_EQ(best, CpuIsa::scalar);
  }
  EXPECT_EQ(cpu_isa_name(CpuIsa::avx512), "avx512");
}

}  // namespace
}  // namespace moerun
