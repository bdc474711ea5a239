// moe_experts_cuda against a double-precision reference that skips non-resident experts: every
// format, token counts across the group sizes, repeated experts across tokens, null experts, an
// out-of-range id, with the int8 tensor-core kernels and with the dp4a kernels; many tokens per
// expert (groups of 64 cut) at the model's shapes and at odd row counts; plus determinism and CUDA
// graph capture.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "core/quant.h"
#include "gpu_test_support.h"
#include "ops/cuda/launch_plan.h"
#include "ops/cuda/moe_experts_cuda.h"

namespace moerun {
namespace {

using test::DeviceArray;

// One layer of random experts: packed matrices on host and device, dequantised copies, the table.
struct Experts {
  ExpertShape shape;
  std::vector<bool> resident;                      // [n_experts]
  std::vector<std::vector<float>> gate, up, down;  // dequantised [ffn, hidden] / [hidden, ffn]
  std::vector<std::unique_ptr<DeviceArray>> buffers;
  std::unique_ptr<DeviceArray> table_gate, table_up, table_down;

  DeviceExpertTable table() const {
    return DeviceExpertTable{table_gate->as<const void* const>(), table_up->as<const void* const>(),
                             table_down->as<const void* const>()};
  }
};

std::vector<float> make_matrix(DType type, int64_t rows, int64_t cols, std::mt19937& rng,
                               Experts& ex, const void** device) {
  std::vector<uint8_t> packed(static_cast<size_t>(rows * row_bytes(type, cols)));
  std::vector<float> deq(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    const std::vector<float> v = test::random_normal(static_cast<size_t>(cols), rng);
    uint8_t* row = packed.data() + r * row_bytes(type, cols);
    quantize_row(type, v.data(), row, cols);
    dequantize_row(type, row, deq.data() + r * cols, cols);
  }
  ex.buffers.push_back(std::make_unique<DeviceArray>(packed.size()));
  ex.buffers.back()->upload(packed.data());
  *device = ex.buffers.back()->data();
  return deq;
}

Experts make_experts(DType gate_up, DType down, int64_t hidden, int64_t ffn, int64_t n_experts,
                     const std::vector<int64_t>& absent, std::mt19937& rng) {
  Experts ex;
  ex.shape = ExpertShape{gate_up, gate_up, down, hidden, ffn, n_experts};
  ex.resident.assign(static_cast<size_t>(n_experts), true);
  for (int64_t e : absent) ex.resident[static_cast<size_t>(e)] = false;
  std::vector<const void*> g(static_cast<size_t>(n_experts), nullptr), u = g, d = g;
  ex.gate.resize(static_cast<size_t>(n_experts));
  ex.up.resize(static_cast<size_t>(n_experts));
  ex.down.resize(static_cast<size_t>(n_experts));
  for (int64_t e = 0; e < n_experts; ++e) {
    if (!ex.resident[static_cast<size_t>(e)]) continue;
    ex.gate[e] = make_matrix(gate_up, ffn, hidden, rng, ex, &g[e]);
    ex.up[e] = make_matrix(gate_up, ffn, hidden, rng, ex, &u[e]);
    ex.down[e] = make_matrix(down, hidden, ffn, rng, ex, &d[e]);
  }
  const size_t bytes = static_cast<size_t>(n_experts) * sizeof(void*);
  ex.table_gate = std::make_unique<DeviceArray>(bytes);
  ex.table_up = std::make_unique<DeviceArray>(bytes);
  ex.table_down = std::make_unique<DeviceArray>(bytes);
  ex.table_gate->upload(g.data());
  ex.table_up->upload(u.data());
  ex.table_down->upload(d.data());
  return ex;
}

// Random routing: top_k distinct experts per token (experts repeat across tokens), weights > 0.
void make_routing(int64_t n, int64_t top_k, int64_t n_experts, std::mt19937& rng,
                  std::vector<int32_t>& ids, std::vector<float>& weights) {
  ids.resize(static_cast<size_t>(n * top_k));
  weights.resize(ids.size());
  std::vector<int32_t> all(static_cast<size_t>(n_experts));
  std::iota(all.begin(), all.end(), 0);
  std::uniform_real_distribution<float> uni(0.05f, 1.0f);
  for (int64_t t = 0; t < n; ++t) {
    std::shuffle(all.begin(), all.end(), rng);
    for (int64_t k = 0; k < top_k; ++k) {
      ids[t * top_k + k] = all[static_cast<size_t>(k)];
      weights[t * top_k + k] = uni(rng);
    }
  }
}

// The activations the GPU multiplies for one row (x^ for block formats, x otherwise) and the
// int8 scales.
void gpu_inputs(DType type, const float* x, int64_t cols, std::vector<double>& v,
                std::vector<float>& scales) {
  v.resize(static_cast<size_t>(cols));
  scales.assign(static_cast<size_t>(cols / 32 + 1), 0.0f);
  if (cuda_plan::is_float_format(type)) {
    for (int64_t i = 0; i < cols; ++i) v[i] = x[i];
  } else {
    test::emulate_q8(x, cols, v.data(), scales.data());
  }
}

// Checks out [n, hidden] against the reference. Tolerance per output, summed over its resident
// choices k with |w_k|: the down product's f32 sums; the GPU's SiLU products differ from the
// reference's by their own f32 rounding (bounded from the gate and up sums), which moves x^ by as
// much plus the same again through the group's scale; and up to 3 products per assignment may
// land on the other side of an int8 rounding boundary (one step d each).
void check_output(const Experts& ex, const std::vector<float>& x, int64_t n, int64_t top_k,
                  const std::vector<int32_t>& ids, const std::vector<float>& weights,
                  const std::vector<float>& got) {
  const int64_t hidden = ex.shape.hidden, ffn = ex.shape.ffn;
  const bool down_block = !cuda_plan::is_float_format(ex.shape.down_type);
  const double eps = std::ldexp(1.0, -23);
  int failures = 0;
  for (int64_t t = 0; t < n && failures < 5; ++t) {
    std::vector<double> ref(static_cast<size_t>(hidden), 0.0), tol(ref.size(), 1e-6);
    std::vector<double> xv, av;
    std::vector<float> xs, as;
    gpu_inputs(ex.shape.gate_type, x.data() + t * hidden, hidden, xv, xs);
    for (int64_t k = 0; k < top_k; ++k) {
      const int32_t e = ids[t * top_k + k];
      if (e < 0 || e >= ex.shape.n_experts || !ex.resident[static_cast<size_t>(e)]) continue;
      const double wk = weights[t * top_k + k];
      std::vector<float> act(static_cast<size_t>(ffn));
      std::vector<double> dact(static_cast<size_t>(ffn));  // bound on |act_gpu - act|
      for (int64_t f = 0; f < ffn; ++f) {
        double g = 0, u = 0, ga = 0, ua = 0;
        for (int64_t i = 0; i < hidden; ++i) {
          g += ex.gate[e][f * hidden + i] * xv[i];
          u += ex.up[e][f * hidden + i] * xv[i];
          ga += std::fabs(ex.gate[e][f * hidden + i] * xv[i]);
          ua += std::fabs(ex.up[e][f * hidden + i] * xv[i]);
        }
        const double silu = g / (1.0 + std::exp(-g));
        act[f] = static_cast<float>(silu * u);
        const double dg = test::f32_sum_bound(hidden / 32, ga),
                     du = test::f32_sum_bound(hidden / 32, ua);
        dact[f] = 1.1 * dg * std::fabs(u) + std::fabs(silu) * du + 4 * eps * std::fabs(silu * u);
      }
      gpu_inputs(ex.shape.down_type, act.data(), ffn, av, as);
      std::vector<double> group_dact_max(static_cast<size_t>(ffn / 32 + 1), 0.0);  // per 32
      for (int64_t i = 0; i < ffn; ++i) {
        double& m = group_dact_max[static_cast<size_t>(i / 32)];
        m = std::max(m, dact[i]);
      }
      for (int64_t h = 0; h < hidden; ++h) {
        const float* row = ex.down[e].data() + h * ffn;
        double d = 0, dabs = 0, moved = 0, step_max = 0;
        for (int64_t i = 0; i < ffn; ++i) {
          d += row[i] * av[i];
          dabs += std::fabs(row[i] * av[i]);
          if (down_block) {
            const double group_dact = group_dact_max[static_cast<size_t>(i / 32)];
            moved += std::fabs(row[i]) * (dact[i] + group_dact);
            step_max = std::max(step_max, std::fabs(static_cast<double>(row[i])) * as[i / 32]);
          } else {
            moved += std::fabs(row[i]) * dact[i];
          }
        }
        ref[h] += wk * d;
        tol[h] += wk * (test::f32_sum_bound(ffn / 32, dabs) + moved + 3 * step_max) +
                  4 * top_k * eps * std::fabs(wk * d);
      }
    }
    for (int64_t h = 0; h < hidden && failures < 5; ++h) {
      const float y = got[t * hidden + h];
      if (std::isnan(y) || std::fabs(y - ref[h]) > tol[h]) {
        ++failures;
        ADD_FAILURE() << "token " << t << " of " << n << ", h " << h << ": got " << y
                      << ", reference " << ref[h] << " (tol " << tol[h] << ")";
      }
    }
  }
}

// Runs moe_experts_cuda once and returns out (poisoned first).
std::vector<float> run_experts(const Experts& ex, const DeviceArray& dx, int64_t n, int64_t top_k,
                               const DeviceArray& dids, const DeviceArray& dw, MoeCudaWorkspace& ws,
                               cudaStream_t stream) {
  DeviceArray out(static_cast<size_t>(n * ex.shape.hidden) * 4);
  out.poison();
  moe_experts_cuda(ex.shape, ex.table(), dx.as<float>(), n, dids.as<int32_t>(), dw.as<float>(),
                   top_k, out.as<float>(), ws, stream);
  EXPECT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
  return out.download<float>();
}

struct Case {
  DType gate_up;
  DType down;
};

class MoeExpertsCuda : public ::testing::TestWithParam<Case> {};

TEST_P(MoeExpertsCuda, MatchesReferenceSkippingAbsentExperts) {
  if (!test::has_gpu()) GTEST_SKIP() << "no CUDA device";
  const Case c = GetParam();
  std::mt19937 rng(5 + static_cast<int>(c.gate_up) * 31 + static_cast<int>(c.down));
  const int64_t hidden = 512, ffn = 256, n_experts = 12, top_k = 4;
  const Experts ex = make_experts(c.gate_up, c.down, hidden, ffn, n_experts, {3, 8}, rng);
  for (bool tensor_cores : {true, false}) {
    MoeCudaWorkspace ws;
    ws.set_tensor_cores(tensor_cores);
    for (int64_t n : {1, 2, 3, 5, 8, 9, 17, 64}) {
      SCOPED_TRACE(testing::Message()
                   << "tokens " << n << (tensor_cores ? ", tensor cores" : ", dp4a"));
      const std::vector<float> x = test::random_normal(static_cast<size_t>(n * hidden), rng);
      std::vector<int32_t> ids;
      std::vector<float> weights;
      make_routing(n, top_k, n_experts, rng, ids, weights);
      if (n == 3) ids[5] = -1;  // out of range: contributes nothing
      DeviceArray dx(x.size() * 4), dids(ids.size() * 4), dw(weights.size() * 4);
      dx.upload(x.data());
      dids.upload(ids.data());
      dw.upload(weights.data());
      const std::vector<float> got = run_experts(ex, dx, n, top_k, dids, dw, ws, nullptr);
      check_output(ex, x, n, top_k, ids, weights, got);
      if (HasFailure()) return;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Formats, MoeExpertsCuda,
    ::testing::Values(Case{DType::Q4_K, DType::Q4_K}, Case{DType::Q4_K, DType::Q6_K},
                      Case{DType::Q5_K, DType::Q5_K}, Case{DType::Q6_K, DType::Q6_K},
                      Case{DType::Q8_0, DType::Q8_0}, Case{DType::Q4_0, DType::Q4_0},
                      Case{DType::BF16, DType::BF16}, Case{DType::F16, DType::F32},
                      Case{DType::F32, DType::Q8_0}),
    [](const auto& case_info) {
      return std::string(dtype_name(case_info.param.gate_up)) + "_" +
             std::string(dtype_name(case_info.param.down));
    });

struct ManyCase {
  DType gate_up;
  DType down;
  int64_t hidden, ffn, n_experts, n_tokens, top_k;
};

class MoeExpertsCudaMany : public ::testing::TestWithParam<ManyCase> {};

// Many tokens per expert (the tensor-core kernels' groups of 64 cut, partial n8 tiles, partial row
// tiles and partial 256-column stages at the odd shapes), two absent experts and an out-of-range
// id; the tolerance is check_output's (the dp4a path's): the same int8 activations and per-32
// scaling, only the order of the f32 sums of the 32-column products differs. Run twice: bitwise
// identical.
TEST_P(MoeExpertsCudaMany, TensorCoresMatchReference) {
  if (!test::has_gpu()) GTEST_SKIP() << "no CUDA device";
  const ManyCase c = GetParam();
  std::mt19937 rng(11 + static_cast<int>(c.gate_up) * 7 + static_cast<int>(c.hidden));
  const Experts ex =
      make_experts(c.gate_up, c.down, c.hidden, c.ffn, c.n_experts, {2, c.n_experts - 3}, rng);
  const int64_t n = c.n_tokens, top_k = c.top_k;
  const std::vector<float> x = test::random_normal(static_cast<size_t>(n * c.hidden), rng);
  std::vector<int32_t> ids;
  std::vector<float> weights;
  make_routing(n, top_k, c.n_experts, rng, ids, weights);
  ids[7] = static_cast<int32_t>(c.n_experts);  // out of range: contributes nothing
  DeviceArray dx(x.size() * 4), dids(ids.size() * 4), dw(weights.size() * 4);
  dx.upload(x.data());
  dids.upload(ids.data());
  dw.upload(weights.data());
  MoeCudaWorkspace ws;
  const std::vector<float> a = run_experts(ex, dx, n, top_k, dids, dw, ws, nullptr);
  const std::vector<float> b = run_experts(ex, dx, n, top_k, dids, dw, ws, nullptr);
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * 4), 0) << "not deterministic";
  check_output(ex, x, n, top_k, ids, weights, a);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, MoeExpertsCudaMany,
    ::testing::Values(
        // Qwen3-Next's shapes, about 80 tokens per expert (a full group of 64 and a partial one).
        ManyCase{DType::Q4_K, DType::Q4_K, 2048, 512, 8, 160, 4},
        ManyCase{DType::Q4_K, DType::Q6_K, 2048, 512, 8, 160, 4},
        ManyCase{DType::Q5_K, DType::Q5_K, 2048, 512, 8, 160, 4},
        ManyCase{DType::Q6_K, DType::Q6_K, 2048, 512, 8, 160, 4},
        ManyCase{DType::Q8_0, DType::Q8_0, 2048, 512, 8, 160, 4},
        ManyCase{DType::Q4_0, DType::Q4_0, 2048, 512, 8, 160, 4},
        // 64 experts, top-4, 300 tokens (about 19 per expert).
        ManyCase{DType::Q4_K, DType::Q4_K, 512, 256, 64, 300, 4},
        ManyCase{DType::Q6_K, DType::Q5_K, 512, 256, 64, 300, 4},
        // Odd shapes: 96 gate/up rows and 160 down rows (partial row tiles), 160 and 96 columns
        // (partial stages of 256), top-3.
        ManyCase{DType::Q8_0, DType::Q8_0, 160, 96, 24, 300, 3},
        ManyCase{DType::Q4_0, DType::Q8_0, 160, 96, 24, 300, 3},
        ManyCase{DType::Q8_0, DType::Q4_0, 160, 96, 24, 300, 3},
        // K-quant gate/up with 96 and 160 rows, 768 columns (three full stages).
        ManyCase{DType::Q4_K, DType::Q8_0, 256, 96, 24, 300, 3},
        ManyCase{DType::Q6_K, DType::Q4_0, 768, 160, 16, 200, 4}),
    [](const auto& case_info) {
      const ManyCase& c = case_info.param;
      return std::string(dtype_name(c.gate_up)) + "_" + std::string(dtype_name(c.down)) + "_" +
             std::to_string(c.hidden) + "x" + std::to_string(c.ffn) + "_" +
             std::to_string(c.n_experts) + "experts";
    });

// The model's shape (hidden 2048, ffn 512, top-10) with many tokens sharing experts, run twice
// directly and once from a CUDA graph: bitwise identical, and no allocation after reserve().
TEST(MoeExpertsCudaRuns, DeterministicCapturableAndCorrectAtModelShape) {
  if (!test::has_gpu()) GTEST_SKIP() << "no CUDA device";
  std::mt19937 rng(77);
  const int64_t hidden = 2048, ffn = 512, n_experts = 24, top_k = 10;
  const Experts ex =
      make_experts(DType::Q4_K, DType::Q6_K, hidden, ffn, n_experts, {0, 5, 17}, rng);
  MoeCudaWorkspace ws;
  ws.reserve(40, top_k, hidden, ffn);
  const int64_t reserved = ws.device_bytes();
  cudaStream_t stream;
  ASSERT_EQ(cudaStreamCreate(&stream), cudaSuccess);
  for (int64_t n : {1, 4, 40}) {
    const std::vector<float> x = test::random_normal(static_cast<size_t>(n * hidden), rng);
    std::vector<int32_t> ids;
    std::vector<float> weights;
    make_routing(n, top_k, n_experts, rng, ids, weights);
    DeviceArray dx(x.size() * 4), dids(ids.size() * 4), dw(weights.size() * 4);
    dx.upload(x.data());
    dids.upload(ids.data());
    dw.upload(weights.data());
    const std::vector<float> a = run_experts(ex, dx, n, top_k, dids, dw, ws, stream);
    const std::vector<float> b = run_experts(ex, dx, n, top_k, dids, dw, ws, stream);
    EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * 4), 0) << "tokens " << n;
    check_output(ex, x, n, top_k, ids, weights, a);

    DeviceArray out(static_cast<size_t>(n * hidden) * 4);
    out.poison();
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    ASSERT_EQ(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal), cudaSuccess);
    moe_experts_cuda(ex.shape, ex.table(), dx.as<float>(), n, dids.as<int32_t>(), dw.as<float>(),
                     top_k, out.as<float>(), ws, stream);
    ASSERT_EQ(cudaStreamEndCapture(stream, &graph), cudaSuccess);
    ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
    ASSERT_EQ(cudaGraphLaunch(exec, stream), cudaSuccess);
    ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
    const std::vector<float> g = out.download<float>();
    EXPECT_EQ(std::memcmp(a.data(), g.data(), a.size() * 4), 0) << "graph, tokens " << n;
  }
  EXPECT_EQ(ws.device_bytes(), reserved) << "moe_experts_cuda allocated after reserve()";
  cudaStreamDestroy(stream);
}

}  // namespace
}  // namespace moerun
