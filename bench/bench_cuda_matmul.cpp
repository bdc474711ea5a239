// GPU matmul and routed-expert throughput in GB/s of weight bytes, against 3.0 TB/s (H100 SXM HBM3)
// and a measured device-to-device copy.
//
// Every case cycles through enough distinct weight buffers (at least 256 MiB, five times the
// H100's 50 MB L2) that weights come from HBM; the calls are captured once in a CUDA graph and the
// graph is replayed between two cudaEvents, so host launch overhead is not measured. matmul_cuda
// on block formats includes its activation quantisation. Weights are a constant byte pattern: the
// kernels have no data-dependent branches. Besides single matrices, the per-layer groups the model
// multiplies with one matmul_cuda_batch call (Qwen3-Next shapes, Q4_K_M types) are timed batched
// and as separate calls.
//
// Each benchmark iteration is one timed graph replay (all copies); Google Benchmark picks the
// number of iterations from --benchmark_min_time (e.g. --benchmark_min_time=0.2), and the counters
// are the mean over all iterations: us per call, GB/s of weight bytes, fraction of 3.0 TB/s.
#include <benchmark/benchmark.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "ops/cuda/matmul_cuda.h"
#include "ops/cuda/moe_experts_cuda.h"

namespace moerun {
namespace {

constexpr double kPeakBytesPerSecond = 3.0e12;  // H100 SXM nominal HBM3 bandwidth
constexpr size_t kArenaBytes = size_t{256} << 20;

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(e));
    std::exit(1);
  }
}

// A device allocation freed on scope exit.
struct DeviceBytes {
  void* ptr = nullptr;
  explicit DeviceBytes(size_t bytes, int fill = 0x11) {
    check(cudaMalloc(&ptr, bytes), "cudaMalloc");
    check(cudaMemset(ptr, fill, bytes), "cudaMemset");
  }
  ~DeviceBytes() { cudaFree(ptr); }
};

// Replays `graph` `reps` times between events; returns seconds per replay.
double time_graph(cudaGraphExec_t exec, cudaStream_t stream, int reps) {
  cudaEvent_t start, stop;
  check(cudaEventCreate(&start), "event");
  check(cudaEventCreate(&stop), "event");
  check(cudaGraphLaunch(exec, stream), "warm-up");
  check(cudaEventRecord(start, stream), "record");
  for (int i = 0; i < reps; ++i) check(cudaGraphLaunch(exec, stream), "graph launch");
  check(cudaEventRecord(stop, stream), "record");
  check(cudaEventSynchronize(stop), "sync");
  float ms = 0;
  check(cudaEventElapsedTime(&ms, start, stop), "elapsed");
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return ms * 1e-3 / reps;
}

// Captures `calls` (which enqueue work on the stream) in a graph and returns the instance.
template <typename F>
cudaGraphExec_t capture(cudaStream_t stream, F&& calls) {
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  check(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal), "begin capture");
  calls();
  check(cudaStreamEndCapture(stream, &graph), "end capture");
  check(cudaGraphInstantiate(&exec, graph, 0), "instantiate");
  cudaGraphDestroy(graph);
  return exec;
}

// Runs the benchmark loop: each iteration replays `exec` `reps` times (each replay makes
// `calls_per_replay` calls that read `bytes_per_call` each); sets the mean counters at the end.
void run_timed(benchmark::State& state, cudaGraphExec_t exec, cudaStream_t stream, int reps,
               double calls_per_replay, double bytes_per_call) {
  double total_seconds = 0;
  double total_calls = 0;
  for (auto _ : state) {
    const double replay = time_graph(exec, stream, reps);
    state.SetIterationTime(replay * reps);
    total_seconds += replay * reps;
    total_calls += calls_per_replay * reps;
  }
  if (total_calls == 0) return;
  const double seconds = total_seconds / total_calls;
  state.counters["GB/s"] = bytes_per_call / seconds / 1e9;
  state.counters["of_3TB/s"] = bytes_per_call / seconds / kPeakBytesPerSecond;
  state.counters["us"] = seconds * 1e6;
}

void bm_memcpy(benchmark::State& state) {
  const size_t bytes = kArenaBytes;
  DeviceBytes a(bytes), b(bytes);
  cudaStream_t stream;
  check(cudaStreamCreate(&stream), "stream");
  cudaGraphExec_t exec = capture(stream, [&] {
    check(cudaMemcpyAsync(b.ptr, a.ptr, bytes, cudaMemcpyDeviceToDevice, stream), "memcpy");
  });
  run_timed(state, exec, stream, 1, 1.0, 2.0 * bytes);
  state.SetLabel("read + write bytes");
  cudaGraphExecDestroy(exec);
  cudaStreamDestroy(stream);
}

void bm_matmul(benchmark::State& state, DType type, int64_t rows, int64_t cols) {
  const int64_t n = state.range(0);
  const int64_t stride = row_bytes(type, cols);
  const size_t matrix_bytes = static_cast<size_t>(rows * stride);
  const size_t copies = std::max<size_t>(2, (kArenaBytes + matrix_bytes - 1) / matrix_bytes);
  std::vector<std::unique_ptr<DeviceBytes>> weights;
  for (size_t i = 0; i < copies; ++i)
    weights.push_back(std::make_unique<DeviceBytes>(matrix_bytes));
  DeviceBytes x(static_cast<size_t>(n * cols) * 4, 0), y(static_cast<size_t>(n * rows) * 4, 0);
  CudaMatmulWorkspace ws;
  ws.reserve(rows, cols, n);
  cudaStream_t stream;
  check(cudaStreamCreate(&stream), "stream");
  cudaGraphExec_t exec = capture(stream, [&] {
    for (const auto& w : weights) {
      matmul_cuda(WeightMatrix{type, rows, cols, stride, w->ptr}, static_cast<float*>(x.ptr), n,
                  static_cast<float*>(y.ptr), ws, stream);
    }
  });
  run_timed(state, exec, stream, 1, static_cast<double>(copies), static_cast<double>(matrix_bytes));
  cudaGraphExecDestroy(exec);
  cudaStreamDestroy(stream);
}

// One matrix of a per-layer group.
struct MatrixSpec {
  DType type;
  int64_t rows, cols;
};

// A per-layer group of matrices that share x (batched: one matmul_cuda_batch call; else one
// matmul_cuda call each), cycled over enough copies of the group to exceed 256 MiB.
void bm_group(benchmark::State& state, std::vector<MatrixSpec> specs, bool batched) {
  const int64_t n = state.range(0);
  const int64_t cols = specs[0].cols;
  size_t group_bytes = 0;
  int64_t max_rows = 0;
  for (const MatrixSpec& m : specs) {
    group_bytes += static_cast<size_t>(m.rows * row_bytes(m.type, m.cols));
    max_rows = std::max(max_rows, m.rows);
  }
  const size_t copies = std::max<size_t>(2, (kArenaBytes + group_bytes - 1) / group_bytes);
  std::vector<std::unique_ptr<DeviceBytes>> buffers;
  std::vector<std::unique_ptr<DeviceBytes>> outputs;
  std::vector<WeightMatrix> mats;  // [copies * specs]
  mats.reserve(copies * specs.size());
  for (size_t c = 0; c < copies; ++c) {
    for (const MatrixSpec& m : specs) {
      const int64_t stride = row_bytes(m.type, m.cols);
      buffers.push_back(std::make_unique<DeviceBytes>(static_cast<size_t>(m.rows * stride)));
      mats.push_back(WeightMatrix{m.type, m.rows, m.cols, stride, buffers.back()->ptr});
    }
  }
  std::vector<float*> ys;
  for (const MatrixSpec& m : specs) {
    outputs.push_back(std::make_unique<DeviceBytes>(static_cast<size_t>(n * m.rows) * 4, 0));
    ys.push_back(static_cast<float*>(outputs.back()->ptr));
  }
  DeviceBytes x(static_cast<size_t>(n * cols) * 4, 0);
  CudaMatmulWorkspace ws;
  ws.reserve(max_rows, cols, n);
  cudaStream_t stream;
  check(cudaStreamCreate(&stream), "stream");
  cudaGraphExec_t exec = capture(stream, [&] {
    for (size_t c = 0; c < copies; ++c) {
      std::vector<CudaMatmulJob> jobs;
      for (size_t i = 0; i < specs.size(); ++i)
        jobs.push_back({&mats[c * specs.size() + i], ys[i]});
      if (batched) {
        matmul_cuda_batch(jobs.data(), static_cast<int>(jobs.size()), static_cast<float*>(x.ptr), n,
                          ws, stream);
      } else {
        for (const CudaMatmulJob& j : jobs)
          matmul_cuda(*j.w, static_cast<float*>(x.ptr), n, j.y, ws, stream);
      }
    }
  });
  run_timed(state, exec, stream, 1, static_cast<double>(copies), static_cast<double>(group_bytes));
  cudaGraphExecDestroy(exec);
  cudaStreamDestroy(stream);
}

// One MoE layer's routed experts (Qwen3-Next: hidden 2048, ffn 512, 512 experts, top-10, Q4_K),
// all resident, random routing; bytes = the distinct experts' weights read per call. tensor_cores
// false forces the dp4a kernels on the grouped (prefill) path for comparison.
void bm_experts(benchmark::State& state, int64_t n_tokens, bool tensor_cores) {
  const int64_t hidden = 2048, ffn = 512, n_experts = 512, top_k = 10;
  const DType type = DType::Q4_K;
  const size_t matrix_bytes = static_cast<size_t>(ffn * row_bytes(type, hidden));  // all three
  std::vector<std::unique_ptr<DeviceBytes>> mats;
  std::vector<const void*> gate, up, down;
  for (int64_t e = 0; e < n_experts; ++e) {
    for (auto* table : {&gate, &up, &down}) {
      mats.push_back(std::make_unique<DeviceBytes>(matrix_bytes));
      table->push_back(mats.back()->ptr);
    }
  }
  DeviceBytes tg(n_experts * sizeof(void*)), tu(n_experts * sizeof(void*)),
      td(n_experts * sizeof(void*));
  check(cudaMemcpy(tg.ptr, gate.data(), n_experts * sizeof(void*), cudaMemcpyHostToDevice), "t");
  check(cudaMemcpy(tu.ptr, up.data(), n_experts * sizeof(void*), cudaMemcpyHostToDevice), "t");
  check(cudaMemcpy(td.ptr, down.data(), n_experts * sizeof(void*), cudaMemcpyHostToDevice), "t");
  const DeviceExpertTable table{static_cast<const void* const*>(tg.ptr),
                                static_cast<const void* const*>(tu.ptr),
                                static_cast<const void* const*>(td.ptr)};
  // Several routings (distinct top-10 per token), cycled so that steps do not reuse L2.
  const int n_steps = n_tokens <= 8 ? 32 : 4;
  std::mt19937 rng(1);
  std::vector<int32_t> all(n_experts);
  for (int64_t e = 0; e < n_experts; ++e) all[e] = static_cast<int32_t>(e);
  std::vector<int32_t> ids(static_cast<size_t>(n_steps * n_tokens * top_k));
  double bytes = 0;
  for (int s = 0; s < n_steps; ++s) {
    std::vector<bool> used(n_experts, false);
    for (int64_t t = 0; t < n_tokens; ++t) {
      std::shuffle(all.begin(), all.end(), rng);
      for (int64_t k = 0; k < top_k; ++k) {
        ids[(s * n_tokens + t) * top_k + k] = all[k];
        used[all[k]] = true;
      }
    }
    bytes += 3.0 * matrix_bytes * static_cast<double>(std::count(used.begin(), used.end(), true));
  }
  bytes /= n_steps;
  DeviceBytes dids(ids.size() * 4), dw(static_cast<size_t>(n_tokens * top_k) * 4, 0),
      dx(static_cast<size_t>(n_tokens * hidden) * 4, 0),
      dout(static_cast<size_t>(n_tokens * hidden) * 4, 0);
  check(cudaMemcpy(dids.ptr, ids.data(), ids.size() * 4, cudaMemcpyHostToDevice), "ids");
  MoeCudaWorkspace ws;
  ws.reserve(n_tokens, top_k, hidden, ffn);
  ws.set_tensor_cores(tensor_cores);
  const ExpertShape shape{type, type, type, hidden, ffn, n_experts};
  cudaStream_t stream;
  check(cudaStreamCreate(&stream), "stream");
  cudaGraphExec_t exec = capture(stream, [&] {
    for (int s = 0; s < n_steps; ++s) {
      moe_experts_cuda(shape, table, static_cast<float*>(dx.ptr), n_tokens,
                       static_cast<int32_t*>(dids.ptr) + s * n_tokens * top_k,
                       static_cast<float*>(dw.ptr), top_k, static_cast<float*>(dout.ptr), ws,
                       stream);
    }
  });
  run_timed(state, exec, stream, 1, n_steps, bytes);
  state.SetLabel(std::to_string(static_cast<int64_t>(bytes / (3.0 * matrix_bytes))) +
                 " distinct experts per call");
  cudaGraphExecDestroy(exec);
  cudaStreamDestroy(stream);
}

void register_all() {
  benchmark::RegisterBenchmark("memcpy_d2d_256MiB", bm_memcpy)->UseManualTime();
  struct Shape {
    int64_t rows, cols;
  };
  const Shape shapes[] = {{8192, 2048}, {2048, 4096}, {12288, 2048}, {512, 2048}, {2048, 512}};
  for (DType type :
       {DType::Q4_K, DType::Q5_K, DType::Q6_K, DType::Q8_0, DType::Q4_0, DType::BF16, DType::F32}) {
    for (const Shape& s : shapes) {
      const std::string name = "matmul/" + std::string(dtype_name(type)) + "/" +
                               std::to_string(s.rows) + "x" + std::to_string(s.cols);
      benchmark::RegisterBenchmark(name.c_str(), bm_matmul, type, s.rows, s.cols)
          ->Arg(1)
          ->Arg(8)
          ->UseManualTime();
    }
  }
  for (DType type : {DType::Q6_K, DType::Q8_0}) {
    const std::string name = "matmul/" + std::string(dtype_name(type)) + "/lm_head_151936x2048";
    benchmark::RegisterBenchmark(name.c_str(), bm_matmul, type, int64_t{151936}, int64_t{2048})
        ->Arg(1)
        ->Arg(8)
        ->UseManualTime();
  }
  // The model's per-layer groups (Qwen3-Next-80B-A3B, Q4_K_M mix: attn_v and shared down Q6_K,
  // ssm_ba Q8_0, router and shared-expert gate vector F32).
  struct Group {
    const char* name;
    std::vector<MatrixSpec> specs;
  };
  const Group groups[] = {
      {"deltanet_qkv8192+gate4096+ba64",
       {{DType::Q4_K, 8192, 2048}, {DType::Q4_K, 4096, 2048}, {DType::Q8_0, 64, 2048}}},
      {"attention_q8192+k512+v512",
       {{DType::Q4_K, 8192, 2048}, {DType::Q4_K, 512, 2048}, {DType::Q6_K, 512, 2048}}},
      {"router512+shared_gate512+up512+scale1",
       {{DType::F32, 512, 2048},
        {DType::Q4_K, 512, 2048},
        {DType::Q4_K, 512, 2048},
        {DType::F32, 1, 2048}}},
      {"shared_down2048x512", {{DType::Q6_K, 2048, 512}}},
      {"deltanet_out2048x4096", {{DType::Q4_K, 2048, 4096}}},
  };
  for (const Group& g : groups) {
    for (bool batched : {true, false}) {
      const std::string name =
          std::string("layer/") + g.name + (batched ? "/batched" : "/separate");
      benchmark::RegisterBenchmark(name.c_str(), bm_group, g.specs, batched)
          ->Arg(1)
          ->Arg(8)
          ->UseManualTime();
    }
  }
  benchmark::RegisterBenchmark("experts_q4_K/decode_1tok_top10_of_512", bm_experts, int64_t{1},
                               true)
      ->UseManualTime();
  benchmark::RegisterBenchmark("experts_q4_K/decode_4tok_top10_of_512", bm_experts, int64_t{4},
                               true)
      ->UseManualTime();
  // Prefill: the int8 tensor-core kernels (default) and the dp4a kernels they replace.
  benchmark::RegisterBenchmark("experts_q4_K/prefill_512tok_top10_of_512/mma", bm_experts,
                               int64_t{512}, true)
      ->UseManualTime();
  benchmark::RegisterBenchmark("experts_q4_K/prefill_512tok_top10_of_512/dp4a", bm_experts,
                               int64_t{512}, false)
      ->UseManualTime();
  benchmark::RegisterBenchmark("experts_q4_K/prefill_64tok_top10_of_512/mma", bm_experts,
                               int64_t{64}, true)
      ->UseManualTime();
  benchmark::RegisterBenchmark("experts_q4_K/prefill_64tok_top10_of_512/dp4a", bm_experts,
                               int64_t{64}, false)
      ->UseManualTime();
}

}  // namespace
}  // namespace moerun

int main(int argc, char** argv) {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    std::fprintf(stderr, "bench_cuda_matmul: no CUDA device\n");
    return 0;
  }
  moerun::register_all();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
