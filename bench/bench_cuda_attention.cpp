// Causal attention of a prompt over itself on the GPU, Qwen3-Next-80B geometry (16 query heads,
// 2 KV heads, head_dim 256, output gate): the tiled prefill kernel against the split-key kernel,
// for one run of N tokens starting at position 0. Each benchmark iteration is one call timed with
// cudaEvents; the counter is ms per call (one attention layer).
#include <benchmark/benchmark.h>
#include <cuda_runtime_api.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

#include "ops/cuda/attention_cuda.h"
#include "ops/cuda/attention_prefill_cuda.h"

namespace moerun {
namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(e));
    std::exit(1);
  }
}

// A device allocation of `bytes` filled with 0x3c bytes (0.0115 as f32), freed on scope exit.
struct DeviceBytes {
  void* ptr = nullptr;
  explicit DeviceBytes(size_t bytes) {
    check(cudaMalloc(&ptr, bytes), "cudaMalloc");
    check(cudaMemset(ptr, 0x3c, bytes), "cudaMemset");
  }
  ~DeviceBytes() { cudaFree(ptr); }
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr);
  }
};

// state.range(0) tokens; prefill: the tiled kernel, else attention_cuda with one split per token
// (as the decoder chooses for many tokens).
void bm_attention(benchmark::State& state, bool prefill) {
  const AttentionShape s{16, 2, 256, 64, 1e-6f, true};
  const int64_t n = state.range(0);
  const int64_t qw = s.n_heads * s.head_dim, kvw = s.n_kv_heads * s.head_dim;
  DeviceBytes q(static_cast<size_t>(n * qw) * 4), gate(static_cast<size_t>(n * qw) * 4),
      out(static_cast<size_t>(n * qw) * 4),
      cache(static_cast<size_t>(2 * n * kvw) * 4);  // [2, n, kvw]
  DeviceBytes ws(prefill ? 4 : static_cast<size_t>(attention_workspace_floats(s, n, 1)) * 4);
  std::vector<int32_t> positions(static_cast<size_t>(n)), token_run(positions.size(), 0);
  for (int64_t t = 0; t < n; ++t) positions[t] = static_cast<int32_t>(t);
  const std::vector<int32_t> runs = {0, static_cast<int32_t>(n), static_cast<int32_t>(n)};
  DeviceBytes dpos(positions.size() * 4), drun(positions.size() * 4), druns(runs.size() * 4),
      dkv(sizeof(float*));
  float* kv_ptr = cache.as<float>();
  check(cudaMemcpy(dpos.ptr, positions.data(), positions.size() * 4, cudaMemcpyHostToDevice), "up");
  check(cudaMemcpy(drun.ptr, token_run.data(), token_run.size() * 4, cudaMemcpyHostToDevice), "up");
  check(cudaMemcpy(druns.ptr, runs.data(), runs.size() * 4, cudaMemcpyHostToDevice), "up");
  check(cudaMemcpy(dkv.ptr, &kv_ptr, sizeof(float*), cudaMemcpyHostToDevice), "up");
  DeviceBatch b;
  b.n_tokens = n;
  b.n_runs = 1;
  b.positions = dpos.as<int32_t>();
  b.token_run = drun.as<int32_t>();
  b.run_begin = druns.as<int32_t>();
  b.run_count = druns.as<int32_t>() + 1;
  b.capacity = druns.as<int32_t>() + 2;
  b.kv = dkv.as<float*>();
  auto call = [&] {
    if (prefill) {
      attention_prefill_cuda(s, b, 0, q.as<float>(), gate.as<float>(), out.as<float>(), nullptr);
    } else {
      attention_cuda(s, b, 0, q.as<float>(), gate.as<float>(), 1, ws.as<float>(), out.as<float>(),
                     nullptr);
    }
  };
  call();  // warm-up
  cudaEvent_t start, stop;
  check(cudaEventCreate(&start), "event");
  check(cudaEventCreate(&stop), "event");
  double total_ms = 0;
  int64_t calls = 0;
  for (auto _ : state) {
    check(cudaEventRecord(start, nullptr), "record");
    call();
    check(cudaEventRecord(stop, nullptr), "record");
    check(cudaEventSynchronize(stop), "sync");
    float ms = 0;
    check(cudaEventElapsedTime(&ms, start, stop), "elapsed");
    state.SetIterationTime(ms * 1e-3);
    total_ms += ms;
    ++calls;
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  if (calls > 0) state.counters["ms"] = total_ms / static_cast<double>(calls);
}

}  // namespace
}  // namespace moerun

using moerun::bm_attention;

BENCHMARK_CAPTURE(bm_attention, prefill_tiled, true)
    ->Arg(512)
    ->Arg(4096)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(bm_attention, split_key, false)
    ->Arg(512)
    ->Arg(4096)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
