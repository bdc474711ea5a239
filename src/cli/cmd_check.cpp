// `moerun check`: what this machine has, how fast it moves memory (stored as the cost model's
// calibration), and how a model would fit with the expected decode speed.
#include <algorithm>
#include <chrono>
#include <fstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/default_model.h"
#include "cli/machine_calibration.h"
#include "cli/model_fit.h"
#include "core/cpu_features.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "io/gguf_describe.h"
#include "io/gguf_file.h"
#include "model/language_model.h"
#include "ops/cpu/matmul.h"
#ifdef MOERUN_CUDA
#include "ops/cuda/device_info.h"
#endif

namespace moerun::cli {
namespace {

using nlohmann::json;

struct CheckArgs {
  std::string model;
  int threads = 0;
  bool skip_model = false;
  bool json = false;
  std::string calibration_path;  // default: cache_dir()/calibration.json
  int64_t context = kDefaultFitContext;
};

// Prints text only in the human-readable mode.
struct Out {
  bool quiet = false;
  template <typename... Args>
  void print(fmt::format_string<Args...> format, Args&&... args) const {
    if (!quiet) fmt::print(format, std::forward<Args>(args)...);
  }
};

// MemTotal and MemAvailable of /proc/meminfo in bytes (0 when unreadable).
struct HostMemory {
  int64_t total = 0;
  int64_t available = 0;
};

HostMemory read_meminfo() {
  HostMemory m;
  std::ifstream in("/proc/meminfo");
  std::string key;
  int64_t kib = 0;
  std::string unit;
  while (in >> key >> kib) {
    std::getline(in, unit);
    if (key == "MemTotal:") m.total = kib * 1024;
    if (key == "MemAvailable:") m.available = kib * 1024;
  }
  return m;
}

double gib(double bytes) {
  return bytes / double(uint64_t{1} << 30);
}

// The GPUs, printed; the first one's free VRAM is what the fit uses.
struct GpuSummary {
  bool any = false;
  uint64_t free_bytes = 0;
};

GpuSummary check_gpus(const Out& out, json& report) {
  GpuSummary s;
  report["gpus"] = json::array();
#ifdef MOERUN_CUDA
  const std::vector<GpuInfo> gpus = list_gpus();
  if (gpus.empty()) out.print("GPU        none found (CPU-only runs)\n");
  for (const GpuInfo& g : gpus) {
    out.print("GPU {}      {} (sm_{}{}, {} SMs), {:.1f} GiB total, {:.1f} GiB free\n", g.index,
              g.name, g.compute_major, g.compute_minor, g.multiprocessors,
              gib(static_cast<double>(g.total_bytes)), gib(static_cast<double>(g.free_bytes)));
    report["gpus"].push_back(
        {{"index", g.index},
         {"name", g.name},
         {"compute_capability", fmt::format("{}.{}", g.compute_major, g.compute_minor)},
         {"total_bytes", g.total_bytes},
         {"free_bytes", g.free_bytes}});
    if (!s.any) s.free_bytes = g.free_bytes;
    s.any = true;
  }
#else
  out.print("GPU        not built with CUDA (CPU-only runs)\n");
#endif
  return s;
}

// Times one-token matmuls over the model's routed experts (up to 2 GiB of them), 30 matrices per
// matmul_batch call as the expert dispatcher issues a layer's gate, up and down (one matmul call
// per small matrix would measure the thread pool's dispatch more than the kernels).
void time_model_experts(const GgufFile& file, ThreadPool& pool, const Out& out, json& report) {
  std::vector<WeightMatrix> experts;  // one [ffn, hidden] or [hidden, ffn] matrix per expert
  int64_t bytes = 0;
  int64_t max_cols = 0;
  int64_t max_rows = 0;
  for (const GgufTensorInfo& t : file.tensors()) {
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
      max_rows = std::max(max_rows, w.rows);
    }
    if (bytes > (int64_t{2} << 30)) break;  // 2 GiB of experts is plenty for a measurement
  }
  out.print("model      {} ({} routed expert matrices sampled, {:.2f} GB)\n", file.path(),
            experts.size(), static_cast<double>(bytes) / 1e9);
  if (experts.empty()) return;
  std::vector<float> x(static_cast<size_t>(max_cols), 0.5f);  // [cols] f32
  constexpr size_t kJobsPerCall = 30;
  std::vector<float> y(kJobsPerCall * static_cast<size_t>(max_rows));  // [30, rows] f32
  std::vector<MatmulJob> jobs;
  MatmulWorkspace ws;
  double best = 0.0;
  for (int rep = 0; rep < 3; ++rep) {
    const auto start = std::chrono::steady_clock::now();
    for (size_t first = 0; first < experts.size(); first += kJobsPerCall) {
      jobs.clear();
      for (size_t i = first; i < std::min(experts.size(), first + kJobsPerCall); ++i) {
        jobs.push_back({experts[i], x.data(), 1, y.data() + (i - first) * max_rows});
      }
      matmul_batch(jobs, &pool, ws);
    }
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best = std::max(best, static_cast<double>(bytes) / secs);
  }
  out.print("experts    CPU matvec over the model's experts: {:.1f} GB/s (one token, {} threads)\n",
            best / 1e9, pool.size());
  report["cpu_expert_matvec_bytes_per_s"] = best;
}

#ifdef MOERUN_CUDA
// Copies of the model's experts straight from the mapped file (page-locked in place, as the
// hybrid mode does) against copies of the same size from a pinned buffer: whether repacked
// pinned copies of the experts would copy faster.
void time_expert_copies(const GgufFile& file, const Out& out, json& report) {
  const GgufTensorInfo* largest = nullptr;
  for (const GgufTensorInfo& t : file.tensors()) {
    if (t.name.find("_exps.weight") == std::string::npos || t.view.n_dims != 3) continue;
    if (t.view.ne[2] == 0) continue;
    if (largest == nullptr || t.view.nbytes() > largest->view.nbytes()) largest = &t;
  }
  if (largest == nullptr) return;
  const auto chunk = static_cast<uint64_t>(largest->view.nbytes() / largest->view.ne[2]);
  const uint64_t bytes =
      std::min<uint64_t>(static_cast<uint64_t>(largest->view.nbytes()), uint64_t{1} << 30) / chunk *
      chunk;
  const double in_place = measure_h2d_in_place(0, largest->view.data, bytes, chunk);
  const double pinned = measure_h2d_bandwidth(0, bytes, true, 3, chunk);
  if (in_place <= 0) {
    out.print("copies     the mapped file cannot be page-locked here: expert copies are slow\n");
    return;
  }
  out.print(
      "copies     experts from the mapped file, page-locked in place: {:.1f} GB/s in {:.2f} MB "
      "copies; {:.1f} GB/s from a pinned buffer (repacked pinned copies {})\n",
      in_place / 1e9, static_cast<double>(chunk) / 1e6, pinned / 1e9,
      in_place >= 0.95 * pinned ? "would not be faster" : "would be faster");
  report["expert_copy_in_place_bytes_per_s"] = in_place;
  report["expert_copy_pinned_bytes_per_s"] = pinned;
}
#endif

// Sizes, budgets and the expected decode speed of the model at `path`.
void check_model(const GgufFile& file, ThreadPool& pool, const GpuSummary& gpu,
                 const Calibration& cal, int64_t context, const Out& out, json& report) {
  ModelOptions options;
  options.pool = &pool;
  const auto model = load_language_model(file, options);
  const ModelFit f = fit_model(file, *model, context, gpu.any, gpu.free_bytes, cal);
  json& m = report["model"];
  m["path"] = file.path();
  m["routed_expert_bytes"] = f.bytes.routed_experts;
  m["dense_bytes"] = f.bytes.dense;
  m["embedding_bytes"] = f.bytes.embeddings;
  m["one_expert_bytes"] = f.bytes.largest_expert;
  m["total_experts"] = f.total_experts;
  m["top_k"] = f.top_k;
  m["context"] = f.context;
  m["state_bytes"] = f.state_bytes;
  m["min_budget_bytes"] = f.min_budget;
  m["full_budget_bytes"] = f.full_budget;
  out.print("sizes      routed experts {} ({} experts of {}), dense GPU part {}, embeddings {}\n",
            format_bytes(f.bytes.routed_experts), f.total_experts,
            format_bytes(f.bytes.largest_expert), format_bytes(f.bytes.dense),
            format_bytes(f.bytes.embeddings));
  out.print(
      "budget     minimum {} (dense + embeddings + state for {} tokens {} + workspace {}); "
      "whole model {}\n",
      format_bytes(f.min_budget), f.context, format_bytes(static_cast<uint64_t>(f.state_bytes)),
      format_bytes(kWorkspaceMargin), format_bytes(f.full_budget));
  const Roofline& r = f.roofline;
  m["estimate_note"] = "estimate from measured constants: decode roofline of spec/bench.md";
  m["roofline_tok_s"] = r.tok_s;
  m["roofline_tok_s_no_copy"] = r.tok_s_no_copy;
  if (!gpu.any) {
    m["placement"] = "cpu";
    out.print("fit        no GPU found: the whole model runs on the CPU\n");
    out.print(
        "estimate   decode at most {:.1f} tok/s on the CPU (roofline: {:.2f} GB per token at "
        "{:.1f} GB/s measured; an estimate, not a measurement)\n",
        r.tok_s, (f.roofline_inputs.dense_bytes + f.roofline_inputs.expert_bytes) / 1e9,
        cal.cpu_read_bw / 1e9);
    return;
  }
  m["dense_fits"] = f.dense_fits;
  m["vram_free_bytes"] = f.vram_free;
  if (!f.dense_fits) {
    m["placement"] = "cpu";
    out.print(
        "fit        the dense part does NOT fit: needs {}, the GPU has {} free ({} kept "
        "free); the model would run on the CPU\n",
        format_bytes(f.min_budget), format_bytes(f.vram_free), format_bytes(kVramReserve));
    out.print("estimate   decode at most {:.1f} tok/s on the CPU (roofline estimate)\n", r.tok_s);
    return;
  }
  m["placement"] = "hybrid";
  m["suggested_budget_bytes"] = f.suggested_budget;
  m["cached_experts"] = f.cached_experts;
  m["hit_fraction"] = f.hit_fraction;
  m["hbm_measured"] = f.hbm_measured;
  out.print(
      "fit        the dense part fits: suggested --gpu-mem {}MiB caches {} of {} experts "
      "({:.1f}%)\n",
      f.suggested_budget >> 20, f.cached_experts, f.total_experts, 100.0 * f.hit_fraction);
  out.print(
      "estimate   decode at most {:.1f} tok/s with copies of misses, {:.1f} without (roofline at "
      "h = {:.3f} under uniform routing; {}; an estimate from measured constants)\n",
      r.tok_s, r.tok_s_no_copy, f.hit_fraction,
      f.hbm_measured ? "GPU bandwidth measured"
                     : "GPU memory bandwidth not measured: T_gpu left out");
}

void run_check(const CheckArgs& args) {
  const Out out{args.json};
  json report;
  ThreadPool pool(args.threads > 0 ? args.threads : default_thread_count());
  const CpuFeatures& f = cpu_features();
  const MachineIdentity machine = current_machine(static_cast<int>(pool.size()));
  out.print("CPU        {}\n", machine.cpu_model);
  out.print("threads    {} (pinned pool)\n", pool.size());
  out.print(
      "features   avx2={} fma={} f16c={} avx512f={} avx512bw={} avx512vnni={} avx512bf16={} "
      "amx={}\n",
      f.avx2, f.fma, f.f16c, f.avx512f, f.avx512bw, f.avx512vnni, f.avx512bf16, f.amx);
  out.print("kernels    {}\n", cpu_isa_name(detect_cpu_isa()));
  const HostMemory ram = read_meminfo();
  out.print("RAM        {:.1f} GiB total, {:.1f} GiB available\n", gib(double(ram.total)),
            gib(double(ram.available)));
  report["cpu"] = {{"model", machine.cpu_model},
                   {"threads", pool.size()},
                   {"kernels", cpu_isa_name(detect_cpu_isa())},
                   {"features",
                    {{"avx2", f.avx2},
                     {"fma", f.fma},
                     {"f16c", f.f16c},
                     {"avx512f", f.avx512f},
                     {"avx512bw", f.avx512bw},
                     {"avx512vnni", f.avx512vnni},
                     {"avx512bf16", f.avx512bf16},
                     {"amx", f.amx}}}};
  report["ram"] = {{"total_bytes", ram.total}, {"available_bytes", ram.available}};
  const GpuSummary gpu = check_gpus(out, report);

  // The model (if any) sets the size of the expert-sized probe copy.
  std::unique_ptr<GgufFile> file;
  int64_t expert_bytes = kDefaultExpertBytes;
  if (!args.skip_model) {
    file = GgufFile::open(resolve_model_path(args.model));
    const TensorBytes sizes = tensor_bytes(*file);
    if (sizes.largest_expert > 0 && gpu.any) {
      expert_bytes = static_cast<int64_t>(sizes.largest_expert);
    }
  }
  const Calibration cal = measure_calibration(pool, expert_bytes);
  out.print("CPU read   {:.1f} GB/s with 1 thread, {:.1f} GB/s with {} threads\n",
            cal.cpu_read_bw_1thread / 1e9, cal.cpu_read_bw / 1e9, pool.size());
  out.print("CPU GEMM   {:.1f} GB/s of Q4_K weights x 64 tokens\n",
            cal.cpu_gemm_bytes_tokens / 64 / 1e9);
  if (cal.has_gpu()) {
    out.print(
        "H2D copy   {:.1f} GB/s pinned, {:.1f} GB/s pageable (1 GiB copies); {:.1f} us per "
        "{:.2f} MB expert copy\n",
        cal.h2d_pinned_bw / 1e9, cal.h2d_pageable_bw / 1e9, cal.expert_copy_seconds * 1e6,
        static_cast<double>(cal.expert_copy_bytes) / 1e6);
  }
  const std::string path =
      args.calibration_path.empty() ? default_calibration_path() : args.calibration_path;
  save_calibration(cal, path);
  const CalibrationLoad reread = load_calibration(path, cal.machine);
  if (!reread.calibration)
    fail("the calibration just written could not be read back: {}", reread.problem);
  out.print("calibration stored in {}\n", path);
  report["calibration_path"] = path;
  report["calibration"] = json::parse(calibration_to_json(cal));

  if (file) {
    time_model_experts(*file, pool, out, report);
#ifdef MOERUN_CUDA
    if (cal.has_gpu()) time_expert_copies(*file, out, report);
#endif
    check_model(*file, pool, gpu, cal, args.context, out, report);
  }
  if (args.json) fmt::print("{}\n", report.dump(2));
}

}  // namespace

void add_check_command(CLI::App& app) {
  auto args = std::make_shared<CheckArgs>();
  CLI::App* cmd = app.add_subcommand(
      "check",
      "Check this machine (CPU features, RAM, GPUs, measured bandwidths, stored as the cost "
      "model's calibration) and how a model fits it");
  cmd->add_option("-m,--model", args->model,
                  "Model GGUF to size and time the CPU expert kernels on (default: the tiny "
                  "model)");
  cmd->add_flag("--no-model", args->skip_model, "Only check the machine");
  cmd->add_option("-t,--threads", args->threads, "Threads (default: physical cores)");
  cmd->add_flag("--json", args->json, "Print one JSON object instead of text");
  cmd->add_option("--calibration", args->calibration_path,
                  "Where to store the calibration (default: the cache folder's calibration.json)");
  cmd->add_option("--ctx", args->context,
                  "Context the minimum budget's KV/state is sized for (default: 32768)")
      ->check(CLI::PositiveNumber);
  cmd->callback([args] { run_check(*args); });
}

}  // namespace moerun::cli
