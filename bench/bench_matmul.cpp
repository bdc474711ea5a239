// CPU matmul throughput against the machine's measured memory read bandwidth.
//
// First measures the read bandwidth of the pool's threads, then runs every weight format on
// expert-sized matrices (2048x512 and 512x2048) one matmul call each, and as one MoE layer's 10
// experts (30 matrices) in one matmul_batch call, cycling through enough distinct matrices (at
// least 512 MiB, several times any last-level cache) that weights always come from DRAM.
// Threads: --threads=N or MOERUN_THREADS (default: physical cores); path: MOERUN_ISA
// (scalar|avx2|avx512, default the widest).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/memory_bandwidth.h"
#include "core/quant.h"
#include "core/thread_pool.h"
#include "ops/cpu/matmul.h"

namespace moerun {
namespace {

// Bytes of weights cycled through per format: at least 512 MiB and 4x the last-level cache.
size_t g_arena_bytes = size_t{512} << 20;

// Size of the largest CPU cache in bytes (sysfs), 0 when unknown.
size_t largest_cache_bytes() {
  size_t best = 0;
  for (int index = 0; index < 8; ++index) {
    std::FILE* f = std::fopen(
        ("/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(index) + "/size").c_str(),
        "r");
    if (f == nullptr) continue;
    unsigned long value = 0;
    char unit = 0;
    if (std::fscanf(f, "%lu%c", &value, &unit) >= 1) {
      const size_t bytes = unit == 'K' ? value << 10 : unit == 'M' ? value << 20 : value;
      best = std::max(best, bytes);
    }
    std::fclose(f);
  }
  return best;
}

ThreadPool* g_pool = nullptr;
double g_read_bw = 0.0;  // bytes/s
CpuIsa g_isa = CpuIsa::best;

// A buffer of weights, rows filled with one valid quantized row (speed does not depend on values).
struct Arena {
  DType type = DType::F32;
  int64_t cols = 0;
  std::unique_ptr<uint8_t[]> data;  // [g_arena_bytes]
};
Arena g_arena;

void fill_arena(DType type, int64_t cols) {
  if (!g_arena.data) {
    g_arena.data = std::make_unique<uint8_t[]>(g_arena_bytes);
  }
  if (g_arena.type == type && g_arena.cols == cols) return;
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> src(static_cast<size_t>(cols));
  for (float& v : src) v = normal(rng);
  const int64_t rb = row_bytes(type, cols);
  std::vector<uint8_t> row(static_cast<size_t>(rb));
  quantize_row(type, src.data(), row.data(), cols);
  const int64_t n_rows = static_cast<int64_t>(g_arena_bytes) / rb;
  // Fill from the pool's threads so pages land near the threads that will read them.
  g_pool->parallel_for(g_pool->size(), [&](int64_t t, int) {
    const int64_t b = n_rows * t / g_pool->size(), e = n_rows * (t + 1) / g_pool->size();
    for (int64_t r = b; r < e; ++r) std::memcpy(g_arena.data.get() + r * rb, row.data(), rb);
  });
  g_arena.type = type;
  g_arena.cols = cols;
}

// Rows of this many columns fill the arena; every format's rows are whole blocks, so the arena
// also reads as valid rows of any multiple of it (2048 columns).
constexpr int64_t kFillCols = 512;

void BM_matmul(benchmark::State& state, DType type, int64_t rows, int64_t cols) {
  const int64_t n_tokens = state.range(0);
  fill_arena(type, kFillCols);
  const int64_t matrix_bytes = rows * row_bytes(type, cols);
  const int64_t n_matrices = static_cast<int64_t>(g_arena_bytes) / matrix_bytes;
  std::vector<float> x(static_cast<size_t>(n_tokens * cols), 0.5f);  // [n_tokens, cols]
  std::vector<float> y(static_cast<size_t>(n_tokens * rows));        // [n_tokens, rows]
  int64_t i = 0;
  for (auto _ : state) {
    const WeightMatrix w{type, rows, cols, row_bytes(type, cols),
                         g_arena.data.get() + (i % n_matrices) * matrix_bytes};
    matmul(w, x.data(), n_tokens, y.data(), g_pool, g_isa);
    benchmark::DoNotOptimize(y.data());
    ++i;
  }
  const double bytes = static_cast<double>(matrix_bytes);
  state.counters["GB/s"] =
      benchmark::Counter(bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["of_read_bw"] =
      benchmark::Counter(bytes / g_read_bw, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["matrices"] = static_cast<double>(n_matrices);
}

// One MoE layer's routed experts in one matmul_batch call: 10 experts, each gate and up
// [512 x 2048] on the shared input and down [2048 x 512] on its own input: 30 jobs, cycling
// through distinct experts of the arena so that weights come from DRAM; with `hot`, all 10 use one
// expert's weights (from cache: the kernels' compute rate without the DRAM limit).
void BM_matmul_batch(benchmark::State& state, DType type, bool hot) {
  constexpr int kExperts = 10;
  constexpr int64_t kHidden = 2048, kInter = 512;
  const int64_t n_tokens = state.range(0);
  fill_arena(type, kFillCols);
  const int64_t proj_bytes = kInter * row_bytes(type, kHidden);  // gate, up and down alike
  const int64_t expert_bytes = 3 * proj_bytes;
  const int64_t n_arena_experts = hot ? 1 : static_cast<int64_t>(g_arena_bytes) / expert_bytes;
  std::vector<float> x(static_cast<size_t>(n_tokens * kHidden), 0.5f);  // [n_tokens, 2048]
  std::vector<float> x_down(static_cast<size_t>(kExperts * n_tokens * kInter), 0.25f);
  std::vector<float> y(static_cast<size_t>(kExperts * 3 * n_tokens * kHidden));
  std::vector<MatmulJob> jobs(3 * kExperts);
  MatmulWorkspace ws;
  int64_t call = 0;
  for (auto _ : state) {
    for (int e = 0; e < kExperts; ++e) {
      const uint8_t* w =
          g_arena.data.get() + ((call * kExperts + e) % n_arena_experts) * expert_bytes;
      float* ye = y.data() + static_cast<size_t>(e * 3 * n_tokens * kHidden);
      const int64_t rb_h = row_bytes(type, kHidden), rb_i = row_bytes(type, kInter);
      jobs[3 * e] = {{type, kInter, kHidden, rb_h, w}, x.data(), n_tokens, ye};
      jobs[3 * e + 1] = {{type, kInter, kHidden, rb_h, w + proj_bytes},
                         x.data(),
                         n_tokens,
                         ye + n_tokens * kInter};
      jobs[3 * e + 2] = {{type, kHidden, kInter, rb_i, w + 2 * proj_bytes},
                         x_down.data() + e * n_tokens * kInter,
                         n_tokens,
                         ye + 2 * n_tokens * kInter};
    }
    matmul_batch(jobs, g_pool, ws, g_isa);
    benchmark::DoNotOptimize(y.data());
    ++call;
  }
  const double bytes = static_cast<double>(kExperts * expert_bytes);
  state.counters["GB/s"] =
      benchmark::Counter(bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["of_read_bw"] =
      benchmark::Counter(bytes / g_read_bw, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["experts"] = static_cast<double>(n_arena_experts);
}

// Latency of one parallel_for with empty tasks (the engine calls it ~100 times per token).
void BM_parallel_for_dispatch(benchmark::State& state) {
  for (auto _ : state) {
    g_pool->parallel_for(g_pool->size(), [](int64_t, int) {});
  }
}

// Console output plus a summary table of bandwidth per format at the end.
class SummaryReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& run : runs) {
      const auto it = run.counters.find("of_read_bw");
      if (it != run.counters.end()) {
        summary_.push_back({run.benchmark_name(), run.counters.at("GB/s").value, it->second.value});
      }
    }
    ConsoleReporter::ReportRuns(runs);
  }
  void print_summary() const {
    std::printf("\nsummary: %d threads, path %s, read bandwidth %.1f GB/s\n", g_pool->size(),
                std::string(cpu_isa_name(g_isa == CpuIsa::best ? detect_cpu_isa() : g_isa)).c_str(),
                g_read_bw * 1e-9);
    double worst = 1e9;
    for (const Entry& e : summary_) {
      std::printf("  %-40s %7.2f GB/s  %5.1f%% of read bandwidth\n", e.name.c_str(), e.gbps,
                  100.0 * e.fraction);
      worst = std::min(worst, e.fraction);
    }
    if (!summary_.empty()) std::printf("  worst: %.1f%%\n", 100.0 * worst);
  }

 private:
  struct Entry {
    std::string name;
    double gbps, fraction;
  };
  std::vector<Entry> summary_;
};

int thread_count(int* argc, char** argv) {
  int threads = 0;
  if (const char* env = std::getenv("MOERUN_THREADS")) threads = std::atoi(env);
  int out = 1;
  for (int i = 1; i < *argc; ++i) {
    if (std::strncmp(argv[i], "--threads=", 10) == 0) {
      threads = std::atoi(argv[i] + 10);
    } else {
      argv[out++] = argv[i];
    }
  }
  *argc = out;
  return threads > 0 ? threads : default_thread_count();
}

CpuIsa isa_from_env() {
  const char* env = std::getenv("MOERUN_ISA");
  if (env == nullptr) return CpuIsa::best;
  const std::string s = env;
  if (s == "scalar") return CpuIsa::scalar;
  if (s == "avx2") return CpuIsa::avx2;
  if (s == "avx512") return CpuIsa::avx512;
  return CpuIsa::best;
}

}  // namespace
}  // namespace moerun

int main(int argc, char** argv) {
  using namespace moerun;
  ThreadPool pool(thread_count(&argc, argv));
  g_pool = &pool;
  g_isa = isa_from_env();
  g_arena_bytes = std::max(g_arena_bytes, 4 * largest_cache_bytes());
  const size_t bw_bytes = std::max(size_t{1} << 30, g_arena_bytes);
  g_read_bw = measure_read_bandwidth(pool, bw_bytes, 3);
  std::printf(
      "memory read bandwidth: %.1f GB/s with %d threads (best of 3, %.0f MiB); weights cycled: "
      "%.0f MiB\n",
      g_read_bw * 1e-9, pool.size(), bw_bytes / 1048576.0, g_arena_bytes / 1048576.0);

  const std::pair<DType, const char*> formats[] = {
      {DType::Q4_K, "q4_K"}, {DType::Q5_K, "q5_K"}, {DType::Q6_K, "q6_K"}, {DType::Q8_0, "q8_0"},
      {DType::Q4_0, "q4_0"}, {DType::BF16, "bf16"}, {DType::F16, "f16"},   {DType::F32, "f32"}};
  const std::pair<int64_t, int64_t> shapes[] = {{2048, 512}, {512, 2048}};
  for (const auto& [type, name] : formats) {
    for (const auto& [rows, cols] : shapes) {
      const std::string bm =
          std::string("matmul/") + name + "/" + std::to_string(rows) + "x" + std::to_string(cols);
      benchmark::RegisterBenchmark(bm.c_str(), BM_matmul, type, rows, cols)
          ->ArgName("tokens")
          ->Arg(1)
          ->Arg(8)
          ->MinTime(0.3)
          ->UseRealTime();
    }
  }
  for (const auto& [type, name] : formats) {
    benchmark::RegisterBenchmark((std::string("batch/") + name + "/10experts").c_str(),
                                 BM_matmul_batch, type, false)
        ->ArgName("tokens")
        ->Arg(1)
        ->Arg(8)
        ->MinTime(0.3)
        ->UseRealTime();
  }
  for (const auto& [type, name] : formats) {
    benchmark::RegisterBenchmark((std::string("hot/") + name + "/10experts").c_str(),
                                 BM_matmul_batch, type, true)
        ->ArgName("tokens")
        ->Arg(1)
        ->Arg(8)
        ->Arg(32)
        ->MinTime(0.3)
        ->UseRealTime();
  }
  benchmark::RegisterBenchmark("parallel_for_dispatch", BM_parallel_for_dispatch)->MinTime(0.2);

  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  SummaryReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.print_summary();
  benchmark::Shutdown();
  return 0;
}
