// `moerun bench`: the end-to-end scenarios of spec/bench.md (S1, S2, S3, S5, S6) or the run the
// flags describe (`custom`), repeated, with prefill/decode tok/s, TTFT, ITL p50/p95, memory,
// expert traffic and the fraction of the decode roofline reached. The prompt is synthetic: token
// ids drawn uniformly from the vocabulary by a seeded generator (speed does not depend on text).
#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/default_model.h"
#include "cli/device_options.h"
#include "cli/machine_calibration.h"
#include "cli/model_fit.h"
#include "cli/model_session.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "engine/bench_runner.h"
#include "io/gguf_describe.h"
#include "io/gguf_file.h"
#include "moe/cost_model.h"
#ifdef MOERUN_CUDA
#include "ops/cuda/device_info.h"
#endif

namespace moerun::cli {
namespace {

using nlohmann::json;

struct BenchArgs {
  std::string model;
  std::string scenario;  // "" = all (or custom when --device is given)
  int64_t prompt_tokens = 512;
  int64_t gen_tokens = 128;
  int64_t prefill_chunk = 512;
  int repeats = 3;
  int threads = 0;
  uint64_t seed = 1;
  bool json = false;
  DeviceFlags device;
};

// One scenario to run: its placement flags and sizes.
struct Scenario {
  std::string id;
  std::string description;
  DeviceFlags device;
  int64_t prompt_tokens = 0;
  int64_t gen_tokens = 0;
  bool needs_gpu = false;
};

constexpr const char* kS6Routing = "synthetic:reuse=0.45,within8=0.8,zipf=1.1";

// Whether a GPU can run here; `why` says why not.
bool gpu_available(std::string& why) {
#ifdef MOERUN_CUDA
  if (list_gpus().empty()) {
    why = "no GPU found";
    return false;
  }
  return true;
#else
  why = "this build has no CUDA (MOERUN_CUDA=OFF)";
  return false;
#endif
}

// A budget just above the dense part (dense + embeddings + workspace margin), in MiB.
std::string dense_only_budget(const GgufFile& file) {
  const TensorBytes b = tensor_bytes(file);
  const uint64_t bytes = b.dense + b.embeddings + kWorkspaceMargin;
  return fmt::format("{}MiB", (bytes + (uint64_t{1} << 20) - 1) >> 20);
}

// The scenarios `name` selects ("all", one id, or "custom").
std::vector<Scenario> select_scenarios(const std::string& name, const BenchArgs& a,
                                       const GgufFile& file) {
  auto preset = [&](const char* id, const char* what) {
    Scenario s;
    s.id = id;
    s.description = what;
    s.device = a.device;
    s.device.device = "cuda";
    s.prompt_tokens = a.prompt_tokens;
    s.gen_tokens = a.gen_tokens;
    s.needs_gpu = true;
    return s;
  };
  std::vector<Scenario> all;
  Scenario s1 = preset("S1", "VRAM budget 16 GiB");
  s1.device.gpu_mem = "16GiB";
  all.push_back(s1);
  Scenario s2 = preset("S2", "all routed experts on the CPU (budget just above the dense part)");
  s2.device.gpu_mem = dense_only_budget(file);
  all.push_back(s2);
  Scenario s3 = preset("S3", "whole model on the GPU");
  s3.device.gpu_mem.clear();
  all.push_back(s3);
  Scenario s5 = s1;
  s5.id = "S5";
  s5.description = "VRAM budget 16 GiB, 32k-token prompt";
  s5.prompt_tokens = 32768;
  all.push_back(s5);
  Scenario s6 = s1;
  s6.id = "S6";
  s6.description = std::string("VRAM budget 16 GiB, routing ") + kS6Routing;
  s6.device.routing = kS6Routing;
  all.push_back(s6);

  if (name == "all") return all;
  if (name == "custom") {
    Scenario c;
    c.id = "custom";
    c.description = "the given flags";
    c.device = a.device;
    c.prompt_tokens = a.prompt_tokens;
    c.gen_tokens = a.gen_tokens;
    c.needs_gpu = a.device.device == "cuda";
    return {c};
  }
  for (const Scenario& s : all) {
    if (s.id == name) return {s};
  }
  fail("--scenario {}: unknown; choose S1, S2, S3, S5, S6, all or custom", name);
}

json spread_json(const Spread& s, double scale = 1.0) {
  return {{"median", s.median * scale}, {"min", s.min * scale}, {"max", s.max * scale}};
}

// The median over repeats of one field of the results.
Spread spread_over(const std::vector<BenchRunResult>& runs,
                   const std::function<double(const BenchRunResult&)>& field) {
  std::vector<double> v;
  for (const BenchRunResult& r : runs) v.push_back(field(r));
  return spread_of(v);
}

// Runs one scenario and returns its JSON record (status ok); throws Error when it cannot run.
json run_scenario(const Scenario& sc, const BenchArgs& a, const std::string& path,
                  bool gpu_present) {
  DeviceFlags device = sc.device;
  device.plan_context = sc.prompt_tokens + sc.gen_tokens;  // VRAM for the run's sequence first
  ModelSession session = open_model_session(path, a.threads, device);
  LanguageModel& model = *session.model;
  BenchRunConfig cfg;
  cfg.prompt_tokens = sc.prompt_tokens;
  cfg.gen_tokens = sc.gen_tokens;
  cfg.prefill_chunk = a.prefill_chunk;
  cfg.seed = a.seed;

  // Warm-up: a short run faults in the weights it touches and wakes the threads.
  BenchRunConfig warm = cfg;
  warm.prompt_tokens = std::min<int64_t>(cfg.prompt_tokens, 32);
  warm.gen_tokens = std::min<int64_t>(cfg.gen_tokens, 4);
  run_bench_once(model, warm);
  std::vector<BenchRunResult> runs;
  for (int i = 0; i < a.repeats; ++i) runs.push_back(run_bench_once(model, cfg));

  std::string cal_note;
  const Calibration cal = calibration_for_run(*session.pool, cal_note);
  const bool on_gpu = sc.device.device == "cuda" || (sc.device.device == "auto" && gpu_present);
  const TensorBytes bytes = tensor_bytes(*session.file);
  const Spread hit = spread_over(runs, [](const BenchRunResult& r) { return r.decode_hit_rate; });
  RooflineInputs in;
  in.expert_bytes = static_cast<double>(model.info().n_experts_used) *
                    static_cast<double>(bytes.expert_all_layers);
  in.dense_bytes = static_cast<double>(bytes.dense);
  in.cpu_bw = cal.cpu_read_bw;
  in.dense_on_gpu = on_gpu;
  bool hbm_measured = true;
  if (on_gpu) {
    // A model on the GPU without expert statistics holds every routed expert in VRAM (S3).
    const bool all_experts_on_gpu = model.gpu_memory().has_value() && !runs.back().has_expert_stats;
    in.hit_fraction = all_experts_on_gpu ? 1.0 : hit.median;
    in.pcie_bw = cal.h2d_pinned_bw;
    hbm_measured = cal.gpu_device_bw > 0;
    in.hbm_bw = hbm_measured ? cal.gpu_device_bw : std::numeric_limits<double>::infinity();
  }
  const Roofline roof = compute_roofline(in);
  const Spread decode = spread_over(runs, [](const BenchRunResult& r) { return r.decode_tok_s; });

  json j;
  j["id"] = sc.id;
  j["status"] = "ok";
  j["description"] = sc.description;
  j["settings"] = {{"device", sc.device.device},
                   {"gpu_mem", sc.device.gpu_mem},
                   {"cache_policy", sc.device.cache_policy},
                   {"routing", sc.device.routing.empty() ? "model" : sc.device.routing},
                   {"prompt_tokens", sc.prompt_tokens},
                   {"gen_tokens", sc.gen_tokens},
                   {"prefill_chunk", a.prefill_chunk},
                   {"repeats", a.repeats},
                   {"threads", session.pool->size()},
                   {"prompt", fmt::format("synthetic token ids, seed {}", a.seed)}};
  j["prefill_tok_s"] =
      spread_json(spread_over(runs, [](const BenchRunResult& r) { return r.prefill_tok_s; }));
  j["decode_tok_s"] = spread_json(decode);
  j["ttft_ms"] =
      spread_json(spread_over(runs, [](const BenchRunResult& r) { return r.ttft_seconds; }), 1e3);
  j["itl_p50_ms"] =
      spread_json(spread_over(runs, [](const BenchRunResult& r) { return r.itl_p50; }), 1e3);
  j["itl_p95_ms"] =
      spread_json(spread_over(runs, [](const BenchRunResult& r) { return r.itl_p95; }), 1e3);
  const std::optional<GpuMemoryUse> vram = model.gpu_memory();
  j["peak_vram_bytes"] = vram ? json(vram->peak) : json(nullptr);  // the accountant's peak
  j["peak_rss_bytes"] = runs.back().peak_rss_bytes;
  j["expert_stats"] = runs.back().has_expert_stats;
  j["hit_rate"] = hit.median;
  j["pcie_bytes_per_token"] = spread_over(runs, [](const BenchRunResult& r) {
                                return r.decode_pcie_bytes_per_token;
                              }).median;
  j["host_bytes_per_token"] = spread_over(runs, [](const BenchRunResult& r) {
                                return r.decode_host_bytes_per_token;
                              }).median;
  j["cpu_busy_ms_per_token"] = 1e3 * spread_over(runs, [](const BenchRunResult& r) {
                                       return r.decode_cpu_busy_per_token;
                                     }).median;
  j["gpu_busy_ms_per_token"] = 1e3 * spread_over(runs, [](const BenchRunResult& r) {
                                       return r.decode_gpu_busy_per_token;
                                     }).median;
  j["roofline"] = {{"placement", on_gpu ? "dense on the GPU" : "CPU only"},
                   {"expert_bytes_per_token", in.expert_bytes},
                   {"dense_bytes_per_token", in.dense_bytes},
                   {"hit_fraction", in.hit_fraction},
                   {"cpu_bytes_per_s", in.cpu_bw},
                   {"pcie_bytes_per_s", in.pcie_bw},
                   {"hbm_bytes_per_s", hbm_measured && on_gpu ? json(in.hbm_bw) : json(nullptr)},
                   {"t_floor_ms", roof.t_floor * 1e3},
                   {"tok_s", roof.tok_s},
                   {"tok_s_no_copy", roof.tok_s_no_copy},
                   {"constants", cal_note}};
  j["roofline_fraction"] = roof.tok_s > 0 ? decode.median / roof.tok_s : 0.0;
  return j;
}

std::string format_spread(const json& s, const char* unit, int digits = 1) {
  return fmt::format("{:.{}f} {} [{:.{}f}, {:.{}f}]", s["median"].get<double>(), digits, unit,
                     s["min"].get<double>(), digits, s["max"].get<double>(), digits);
}

void print_scenario(const json& j) {
  const std::string id = j["id"];
  if (j["status"] != "ok") {
    fmt::print("{:<7} {}: {}\n", id, j["status"].get<std::string>(),
               j["reason"].get<std::string>());
    return;
  }
  const json& st = j["settings"];
  fmt::print(
      "{:<7} {} (--device {}{}, routing {}, prompt {}, generate {}, {} threads, {} "
      "repeats: median [min, max])\n",
      id, j["description"].get<std::string>(), st["device"].get<std::string>(),
      st["gpu_mem"].get<std::string>().empty() ? ""
                                               : " --gpu-mem " + st["gpu_mem"].get<std::string>(),
      st["routing"].get<std::string>(), st["prompt_tokens"].get<int64_t>(),
      st["gen_tokens"].get<int64_t>(), st["threads"].get<int64_t>(), st["repeats"].get<int64_t>());
  fmt::print("  prefill      {}\n", format_spread(j["prefill_tok_s"], "tok/s"));
  fmt::print("  decode       {}\n", format_spread(j["decode_tok_s"], "tok/s"));
  fmt::print("  TTFT         {}\n", format_spread(j["ttft_ms"], "ms", 2));
  fmt::print("  ITL p50      {}\n", format_spread(j["itl_p50_ms"], "ms", 2));
  fmt::print("  ITL p95      {}\n", format_spread(j["itl_p95_ms"], "ms", 2));
  fmt::print("  peak VRAM    {}\n", j["peak_vram_bytes"].is_null()
                                        ? std::string("n/a (no GPU memory accountant)")
                                        : format_bytes(j["peak_vram_bytes"].get<uint64_t>()));
  fmt::print("  peak RSS     {}\n", format_bytes(j["peak_rss_bytes"].get<uint64_t>()));
  if (j["expert_stats"].get<bool>()) {
    fmt::print("  hit rate     {:.1f}% of routed experts served from VRAM (decode)\n",
               100.0 * j["hit_rate"].get<double>());
    fmt::print("  per token    {} over PCIe, {} of experts read from host memory (decode)\n",
               format_bytes(static_cast<uint64_t>(j["pcie_bytes_per_token"].get<double>())),
               format_bytes(static_cast<uint64_t>(j["host_bytes_per_token"].get<double>())));
    fmt::print("  busy         CPU {:.2f} ms, GPU {:.2f} ms per token on routed experts (decode)\n",
               j["cpu_busy_ms_per_token"].get<double>(), j["gpu_busy_ms_per_token"].get<double>());
  } else {
    fmt::print("  hit rate     n/a (the model keeps no expert statistics)\n");
  }
  const json& r = j["roofline"];
  fmt::print(
      "  roofline     {:.3f} ms per token = {:.1f} tok/s ({}, B_exp {:.1f} MB, B_dense {:.1f} "
      "MB, h {:.3f}); {:.1f}% reached\n",
      r["t_floor_ms"].get<double>(), r["tok_s"].get<double>(), r["placement"].get<std::string>(),
      r["expert_bytes_per_token"].get<double>() / 1e6,
      r["dense_bytes_per_token"].get<double>() / 1e6, r["hit_fraction"].get<double>(),
      100.0 * j["roofline_fraction"].get<double>());
  fmt::print("  constants    {}\n", r["constants"].get<std::string>());
}

void run_bench(const BenchArgs& a, bool device_given) {
  if (a.repeats < 1) fail("--repeats must be >= 1 (got {})", a.repeats);
  if (a.prompt_tokens < 1) fail("--prompt-tokens must be >= 1 (got {})", a.prompt_tokens);
  if (a.gen_tokens < 2) fail("--gen-tokens must be >= 2 to time decode (got {})", a.gen_tokens);
  const std::string name = !a.scenario.empty()
                               ? a.scenario
                               : (device_given && a.device.device == "cpu" ? "custom" : "all");
  const std::string path = resolve_model_path(a.model);
  const auto file = GgufFile::open(path);
  const std::vector<Scenario> scenarios = select_scenarios(name, a, *file);
  std::string no_gpu;
  const bool gpu_present = gpu_available(no_gpu);
  json report;
  report["model"] = path;
  report["scenarios"] = json::array();
  std::vector<std::string> failures;  // "ID: reason" of each failed scenario
  for (const Scenario& sc : scenarios) {
    json j;
    if (sc.needs_gpu && !gpu_present) {
      j = {{"id", sc.id},
           {"status", "skipped"},
           {"description", sc.description},
           {"reason", fmt::format("needs a GPU: {}", no_gpu)}};
    } else {
      try {
        j = run_scenario(sc, a, path, gpu_present);
      } catch (const Error& e) {
        failures.push_back(fmt::format("{}: {}", sc.id, e.what()));
        j = {{"id", sc.id},
             {"status", "failed"},
             {"description", sc.description},
             {"reason", e.what()}};
      }
    }
    if (!a.json) print_scenario(j);
    report["scenarios"].push_back(j);
  }
  if (a.json) fmt::print("{}\n", report.dump(2));
  if (!failures.empty()) fail("scenario {}", fmt::join(failures, "; scenario "));
  if (!a.json && !gpu_present && name == "all") {
    fmt::print("(every scenario needs a GPU; `--device cpu` runs the given flags as 'custom')\n");
  }
}

}  // namespace

void add_bench_command(CLI::App& app) {
  auto args = std::make_shared<BenchArgs>();
  CLI::App* cmd = app.add_subcommand(
      "bench",
      "End-to-end speed: the scenarios of spec/bench.md or a custom run (synthetic prompt of "
      "seeded token ids, greedy decode)");
  cmd->add_option("-m,--model", args->model, "Model GGUF (default: the tiny synthetic model)");
  cmd->add_option("--scenario", args->scenario,
                  "S1, S2, S3, S5, S6, all or custom (default: all; custom when --device cpu)")
      ->check(CLI::IsMember({"S1", "S2", "S3", "S5", "S6", "all", "custom"}));
  cmd->add_option("-p,--prompt-tokens", args->prompt_tokens, "Prompt tokens (default 512)");
  cmd->add_option("-n,--gen-tokens", args->gen_tokens, "Generated tokens (default 128)");
  cmd->add_option("--prefill-chunk", args->prefill_chunk,
                  "Prompt tokens per forward pass (default 512)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--repeats", args->repeats, "Timed runs after a warm-up (default 3)");
  cmd->add_option("-t,--threads", args->threads, "CPU threads (default: physical cores)");
  cmd->add_option("--seed", args->seed, "Seed of the synthetic prompt (default 1)");
  cmd->add_flag("--json", args->json, "Print one JSON object instead of text");
  add_device_options(cmd, args->device, /*routing=*/true);
  cmd->callback([args, cmd] { run_bench(*args, cmd->get_option("--device")->count() > 0); });
}

}  // namespace moerun::cli
