// `moerun check`: what this machine has, how fast it moves memory, and how a model would fit.
#include <sys/sysinfo.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "cli/default_model.h"
#include "core/cpu_features.h"
#include "core/error.h"
#include "core/memory_bandwidth.h"
#include "core/thread_pool.h"
#include "io/gguf_file.h"
#include "ops/cpu/matmul.h"
#ifdef MOERUN_CUDA
#include "ops/cuda/device_info.h"
#endif

namespace moerun::cli {
namespace {

struct CheckArgs {
  std::string model;
  int threads = 0;
  bool skip_model = false;
};

std::string cpu_model_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const size_t colon = line.find(':');
      if (colon != std::string::npos) return line.substr(colon + 2);
    }
  }
  return "unknown CPU";
}

void print_machine(ThreadPool& pool) {
  const CpuFeatures& f = cpu_features();
  fmt::print("CPU        {}\n", cpu_model_name());
  fmt::print("threads    {} (pinned pool)\n", pool.size());
  fmt::print(
      "features   avx2={} fma={} f16c={} avx512f={} avx512bw={} avx512vnni={} avx512bf16={} "
      "amx={}\n",
      f.avx2, f.fma, f.f16c, f.avx512f, f.avx512bw, f.avx512vnni, f.avx512bf16, f.amx);
  fmt::print("kernels    {}\n", cpu_isa_name(detect_cpu_isa()));
  struct sysinfo si {};
  if (sysinfo(&si) == 0) {
    const double unit = static_cast<double>(si.mem_unit);
    fmt::print("RAM        {:.1f} GiB total, {:.1f} GiB free\n",
               static_cast<double>(si.totalram) * unit / (1 << 30),
               static_cast<double>(si.freeram) * unit / (1 << 30));
  }
  ThreadPool single(1);
  const double bw1 = measure_read_bandwidth(single, size_t{256} << 20, 3);
  const double bwn = measure_read_bandwidth(pool);
  fmt::print("CPU read   {:.1f} GB/s with 1 thread, {:.1f} GB/s with {} threads\n", bw1 / 1e9,
             bwn / 1e9, pool.size());
}

void print_gpus() {
#ifdef MOERUN_CUDA
  const std::vector<GpuInfo> gpus = list_gpus();
  if (gpus.empty()) fmt::print("GPU        none found (CPU-only runs)\n");
  for (const GpuInfo& g : gpus) {
    fmt::print("GPU {}      {} (sm_{}{}, {} SMs), {:.1f} GiB total, {:.1f} GiB free\n", g.index,
               g.name, g.compute_major, g.compute_minor, g.multiprocessors,
               static_cast<double>(g.total_bytes) / (1 << 30),
               static_cast<double>(g.free_bytes) / (1 << 30));
    const double pinned = measure_h2d_bandwidth(g.index, uint64_t{1} << 30, true);
    const double pageable = measure_h2d_bandwidth(g.index, uint64_t{1} << 30, false, 3);
    fmt::print("H2D copy   {:.1f} GB/s pinned, {:.1f} GB/s pageable (1 GiB copies)\n", pinned / 1e9,
               pageable / 1e9);
  }
#else
  fmt::print("GPU        not built with CUDA (CPU-only runs)\n");
#endif
}

// Times one-token matmuls over every routed expert of the model's first layers.
void check_model(const std::string& path, ThreadPool& pool) {
  const auto file = GgufFile::open(path);
  std::vector<WeightMatrix> experts;  // one [ffn, hidden] or [hidden, ffn] matrix per expert
  int64_t bytes = 0;
  int64_t max_cols = 0;
  for (const GgufTensorInfo& t : file->tensors()) {
    if (t.name.find("_exps.weight") == std::string::npos || t.view.n_dims != 3) continue;
    if (!dtype_info(t.view.type).supported) continue;
    for (int64_t e = 0; e < t.view.ne[2]; ++e) {
      WeightMatrix w;
      w.type = t.view.type;
      w.rows = t.view.ne[1];
      w.cols = t.view.ne[0];
      w.row_stride = row_bytes(w.type, w.cols);
      w.data = static_cast<const uint8_t*>(t.view.data) + e * w.rows * w.row_stride;
      experts.push_back(w);
      bytes += w.rows * w.row_stride;
      max_cols = std::max(max_cols, w.cols);
    }
    if (bytes > (int64_t{2} << 30)) break;  // 2 GiB of experts is plenty for a measurement
  }
  fmt::print("model      {} ({} routed expert matrices sampled, {:.2f} GB)\n", path, experts.size(),
             static_cast<double>(bytes) / 1e9);
  if (experts.empty()) return;
  std::vector<float> x(static_cast<size_t>(max_cols), 0.5f);  // [cols] f32
  std::vector<float> y(static_cast<size_t>(max_cols) * 8);    // [rows] f32
  for (const WeightMatrix& w : experts) y.resize(std::max(y.size(), size_t(w.rows)));
  double best = 0.0;
  for (int rep = 0; rep < 3; ++rep) {
    const auto start = std::chrono::steady_clock::now();
    for (const WeightMatrix& w : experts) matmul(w, x.data(), 1, y.data(), &pool);
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best = std::max(best, static_cast<double>(bytes) / secs);
  }
  fmt::print(
      "experts    CPU matvec over the model's experts: {:.1f} GB/s (one token, {} threads)\n",
      best / 1e9, pool.size());
}

}  // namespace

void add_check_command(CLI::App& app) {
  auto args = std::make_shared<CheckArgs>();
  CLI::App* cmd =
      app.add_subcommand("check", "Check this machine: CPU features, memory bandwidth, kernels");
  cmd->add_option("-m,--model", args->model,
                  "Model GGUF to time the CPU expert kernels on (default: the tiny model)");
  cmd->add_flag("--no-model", args->skip_model, "Only check the machine");
  cmd->add_option("-t,--threads", args->threads, "Threads (default: physical cores)");
  cmd->callback([args] {
    ThreadPool pool(args->threads > 0 ? args->threads : default_thread_count());
    print_machine(pool);
    print_gpus();
    if (!args->skip_model) check_model(resolve_model_path(args->model), pool);
  });
}

}  // namespace moerun::cli
