// `moerun synth`: writes a synthetic qwen3next GGUF (real shape and tokenizer, random weights).
#include <chrono>
#include <filesystem>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "cli/progress_bar.h"
#include "core/error.h"
#include "core/paths.h"
#include "core/thread_pool.h"
#include "model/synthetic_model.h"

namespace moerun::cli {
namespace {

struct SynthArgs {
  std::string preset = "tiny";
  std::string output;
  std::string types = "q4_k_m";
  std::string layout = "attn_qkv";
  std::string tokenizer_dir;
  uint64_t seed = 1;
  int threads = 0;
  int64_t layers = 0, experts = 0, top_k = 0, hidden = 0, expert_ffn = 0, shared_ffn = 0;
};

void run_synth(const SynthArgs& a) {
  std::optional<Qwen3NextConfig> config = synth_preset(a.preset);
  if (!config) fail("synth: unknown preset '{}' (known: qwen3-next-80b-a3b, tiny)", a.preset);
  std::optional<TypeMix> mix = parse_type_mix(a.types);
  if (!mix) fail("synth: unknown --types '{}' (known: q4_k_m, q8_0, bf16, f32)", a.types);
  SynthOptions o;
  o.config = *config;
  o.types = *mix;
  o.seed = a.seed;
  o.tokenizer_dir = a.tokenizer_dir.empty() ? default_tokenizer_dir() : a.tokenizer_dir;
  o.name = fmt::format("moerun synthetic {} ({}, random weights)", a.preset, a.types);
  if (a.layout == "ssm_in") {
    o.layout = DeltaNetLayout::ssm_in;
  } else if (a.layout != "attn_qkv") {
    fail("synth: unknown --deltanet-layout '{}' (known: attn_qkv, ssm_in)", a.layout);
  }
  if (a.layers) o.config.n_layers = a.layers;
  if (a.experts) o.config.n_experts = a.experts;
  if (a.top_k) o.config.n_experts_used = a.top_k;
  if (a.hidden) o.config.hidden = a.hidden;
  if (a.expert_ffn) o.config.expert_ffn = a.expert_ffn;
  if (a.shared_ffn) o.config.shared_ffn = a.shared_ffn;

  ThreadPool pool(a.threads > 0 ? a.threads : default_thread_count());
  const auto start = std::chrono::steady_clock::now();
  ProgressBar bar("synth");
  write_synthetic_model(o, a.output, pool, [&](uint64_t d, uint64_t t) { bar.update(d, t); });
  bar.finish();
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const auto size = std::filesystem::file_size(a.output);
  fmt::print("wrote {} ({:.3f} GB) in {:.1f} s: {:.0f} MB/s with {} threads\n", a.output,
             static_cast<double>(size) / 1e9, secs, static_cast<double>(size) / secs / 1e6,
             pool.size());
}

}  // namespace

void add_synth_command(CLI::App& app) {
  auto args = std::make_shared<SynthArgs>();
  CLI::App* cmd = app.add_subcommand(
      "synth", "Write a synthetic Qwen3-Next GGUF: real shape and tokenizer, random weights");
  cmd->add_option("--preset", args->preset, "Shape: qwen3-next-80b-a3b or tiny")
      ->capture_default_str();
  cmd->add_option("-o,--output", args->output, "Output GGUF file")->required();
  cmd->add_option("--types", args->types, "Type mix: q4_k_m, q8_0, bf16 or f32")
      ->capture_default_str();
  cmd->add_option("--deltanet-layout", args->layout,
                  "DeltaNet projection layout: attn_qkv (newer files) or ssm_in (older)")
      ->capture_default_str();
  cmd->add_option("--tokenizer", args->tokenizer_dir,
                  "Folder with tokenizer.json and tokenizer_config.json (default: the cache)");
  cmd->add_option("--seed", args->seed, "Random seed")->capture_default_str();
  cmd->add_option("-t,--threads", args->threads, "Threads (default: physical cores)");
  cmd->add_option("--layers", args->layers, "Override the number of layers")
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--experts", args->experts, "Override experts per layer")
      ->check(CLI::Range(1, 4096));
  cmd->add_option("--top-k", args->top_k, "Override experts used per token")
      ->check(CLI::Range(1, 4096));
  cmd->add_option("--hidden", args->hidden, "Override the hidden size")
      ->check(CLI::Range(32, 65536));
  cmd->add_option("--expert-ffn", args->expert_ffn, "Override the expert FFN width")
      ->check(CLI::Range(32, 65536));
  cmd->add_option("--shared-ffn", args->shared_ffn, "Override the shared expert FFN width")
      ->check(CLI::Range(32, 65536));
  cmd->callback([args] { run_synth(*args); });
}

}  // namespace moerun::cli
