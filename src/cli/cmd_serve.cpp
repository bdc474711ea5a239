// `moerun serve`: the OpenAI-compatible HTTP server over the engine's continuous batching.
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <thread>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "cli/device_options.h"
#include "cli/model_session.h"
#include "core/error.h"
#include "engine/engine.h"
#include "engine/memory_report.h"
#include "server/http_server.h"
#include "server/server_context.h"

namespace moerun::cli {
namespace {

std::atomic<int> g_signal{0};

extern "C" void on_stop_signal(int sig) {
  g_signal.store(sig);
}

struct ServeArgs {
  std::string model = "default";
  std::string host = "127.0.0.1";
  int port = 8000;
  std::string api_key;
  int64_t max_seqs = 8;
  int64_t ctx = 4096;
  std::string alias;
  int threads = 0;
  int64_t max_queue = 64;
  int64_t prefill_chunk = 256;
  double timeout = 600;
  double grace = 10;
  int http_threads = 0;
  size_t max_body = size_t{8} << 20;
  DeviceFlags device;
};

// The model file's share of memory: its size and the bytes of routed-expert tensors in it.
class ModelFileMemory : public MemoryProvider {
 public:
  explicit ModelFileMemory(const GgufFile& file)
      : file_bytes_(static_cast<int64_t>(file.file_size())) {
    for (const GgufTensorInfo& t : file.tensors()) {
      if (t.name.find("_exps.") != std::string::npos)
        expert_bytes_ += static_cast<int64_t>(t.nbytes);
    }
  }
  void add_to(MemoryReport& report) const override {
    report.model_file_bytes += file_bytes_;
    report.expert_store_bytes += expert_bytes_;
  }

 private:
  int64_t file_bytes_ = 0;
  int64_t expert_bytes_ = 0;
};

// The GPU accountant's figures: budget, use by category (nothing on the CPU path).
class GpuMemory : public MemoryProvider {
 public:
  explicit GpuMemory(const LanguageModel& model) : model_(model) {}
  void add_to(MemoryReport& report) const override {
    const std::optional<GpuMemoryUse> u = model_.gpu_memory();
    if (!u) return;
    report.vram_budget_bytes += static_cast<int64_t>(u->budget);
    report.vram_used_bytes += static_cast<int64_t>(u->used);
    for (const auto& [name, bytes] : u->categories) {
      report.vram_categories.push_back(MemoryFigure{name, static_cast<int64_t>(bytes)});
    }
  }

 private:
  const LanguageModel& model_;
};

void run_serve(const ServeArgs& a) {
  DeviceFlags device = a.device;
  device.plan_sequences = a.max_seqs;
  device.plan_context = a.ctx;
  ModelSession s = open_model_session(a.model, a.threads, device);
  EngineOptions eo;
  eo.max_sequences = a.max_seqs;
  eo.context = std::min(a.ctx, s.model->info().context_length);
  eo.max_queue = a.max_queue;
  eo.prefill_chunk = a.prefill_chunk;
  eo.step_prefill_tokens = std::max<int64_t>(a.prefill_chunk, 512);
  Engine engine(*s.model, s.tokenizer.get(), eo);

  server::ServerContext ctx;
  ctx.engine = &engine;
  ctx.tokenizer = s.tokenizer.get();
  ctx.model = s.model->info();
  ctx.model_alias =
      a.alias.empty() ? std::filesystem::path(s.file->path()).stem().string() : a.alias;
  ctx.end_of_turn = s.end_of_turn;
  ctx.limits.max_body_bytes = a.max_body;
  ctx.request_timeout_seconds = a.timeout;
  ctx.created_unix = server::unix_now();
  ModelFileMemory file_memory(*s.file);
  ctx.memory.push_back(&file_memory);
  GpuMemory gpu_memory(*s.model);
  ctx.memory.push_back(&gpu_memory);

  server::HttpOptions ho;
  ho.host = a.host;
  ho.port = a.port;
  ho.api_key = a.api_key;
  ho.threads = a.http_threads;
  server::HttpServer http(ctx, ho);
  const int port = http.bind();

  // Signals only set a flag; this thread does the shutdown: refuse new requests, let those in
  // flight finish within the grace period, cancel the rest, then stop the HTTP server.
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  std::atomic<bool> stopped{false};
  std::thread watcher([&] {
    while (g_signal.load() == 0 && !stopped.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (stopped.load()) return;
    fmt::print(stderr, "moerun: shutting down (signal {}); finishing requests in flight\n",
               g_signal.load());
    ctx.shutting_down.store(true);
    engine.shutdown(std::chrono::milliseconds(static_cast<int64_t>(a.grace * 1000)));
    http.stop();
  });

  const std::string url = fmt::format(
      "http://{}:{}", a.host.find(':') != std::string::npos ? "[" + a.host + "]" : a.host, port);
  fmt::print(
      "moerun: serving '{}' ({} context, {} sequences) at {} - OpenAI API at {}/v1, docs at "
      "{}/docs\n",
      ctx.model_alias, eo.context, eo.max_sequences, url, url, url);
  std::fflush(stdout);
  http.listen();
  stopped.store(true);
  watcher.join();
  engine.shutdown(std::chrono::milliseconds(0));
  fmt::print(stderr, "moerun: stopped\n");
}

}  // namespace

void add_serve_command(CLI::App& app) {
  auto a = std::make_shared<ServeArgs>();
  CLI::App* cmd = app.add_subcommand("serve", "Serve a model over an OpenAI-compatible HTTP API");
  cmd->add_option("-m,--model", a->model, "GGUF model file (default: the embedded tiny model)");
  cmd->add_option("--host", a->host, "Address to listen on")->capture_default_str();
  cmd->add_option("--port", a->port, "Port (0: any free port)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  cmd->add_option("--api-key", a->api_key, "Require this key (Authorization: Bearer KEY)");
  cmd->add_option("--max-seqs", a->max_seqs, "Sequences decoded together at most")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1024}));
  cmd->add_option("--ctx", a->ctx, "Context per sequence in tokens")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{16}, int64_t{1} << 30));
  cmd->add_option("--model-alias", a->alias, "Model id clients use (default: the file name)");
  cmd->add_option("-t,--threads", a->threads, "CPU threads (default: physical cores)");
  cmd->add_option("--max-queue", a->max_queue, "Requests waiting at most (then 503)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 20));
  cmd->add_option("--prefill-chunk", a->prefill_chunk, "Prompt tokens per sequence per step")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  cmd->add_option("--timeout", a->timeout, "Seconds a request may take at most")
      ->capture_default_str()
      ->check(CLI::Range(0.001, 1e9));
  cmd->add_option("--shutdown-grace", a->grace,
                  "Seconds requests in flight get to finish on SIGINT/SIGTERM")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 3600.0));
  cmd->add_option("--http-threads", a->http_threads, "HTTP handler threads (default: enough)");
  cmd->add_option("--max-body", a->max_body, "Largest request body in bytes (then 413)")
      ->capture_default_str();
  add_device_options(cmd, a->device);
  cmd->callback([a] { run_serve(*a); });
}

}  // namespace moerun::cli
