// `moerun convert`: a Hugging Face checkpoint directory to a GGUF file in llama.cpp's layout.
#include <chrono>
#include <filesystem>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "cli/progress_bar.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "model/convert_hf.h"

namespace moerun::cli {
namespace {

struct ConvertArgs {
  std::string hf_dir;
  std::string output;
  std::string types = "bf16";
  std::string layout = "attn_qkv";
  std::string name;
  int threads = 0;
};

void run_convert(const ConvertArgs& a) {
  const std::optional<TypeMix> mix = parse_type_mix(a.types);
  if (!mix) fail("convert: unknown --type '{}' (known: f32, bf16, q8_0, q4_k_m)", a.types);
  ConvertOptions options;
  options.name = a.name;
  if (a.layout == "ssm_in") {
    options.layout = DeltaNetLayout::ssm_in;
  } else if (a.layout != "attn_qkv") {
    fail("convert: unknown --deltanet-layout '{}' (known: attn_qkv, ssm_in)", a.layout);
  }
  ThreadPool pool(a.threads > 0 ? a.threads : default_thread_count());
  const auto start = std::chrono::steady_clock::now();
  ProgressBar bar("convert");
  // The converter checks everything before creating the output, and its writer removes a partial
  // file when anything fails later.
  convert_hf_checkpoint(
      a.hf_dir, a.output, *mix, pool,
      [&](uint64_t done, uint64_t total, const std::string&) { bar.update(done, total); }, options);
  bar.finish();
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const auto size = std::filesystem::file_size(a.output);
  fmt::print("wrote {} ({:.3f} GB, {}) in {:.1f} s with {} threads\n", a.output,
             static_cast<double>(size) / 1e9, a.types, secs, pool.size());
}

}  // namespace

void add_convert_command(CLI::App& app) {
  auto args = std::make_shared<ConvertArgs>();
  CLI::App* cmd = app.add_subcommand(
      "convert", "Convert a Hugging Face checkpoint (Qwen3-Next, Qwen3-MoE) to GGUF");
  cmd->add_option("HF_DIR", args->hf_dir,
                  "Directory with config.json, *.safetensors (f32/f16/bf16 or bitsandbytes NF4) "
                  "and optionally tokenizer.json")
      ->required();
  cmd->add_option("-o,--output", args->output, "Output GGUF file")->required();
  cmd->add_option("--type", args->types, "Storage types: f32, bf16, q8_0 or q4_k_m")
      ->capture_default_str();
  cmd->add_option("--deltanet-layout", args->layout,
                  "Qwen3-Next DeltaNet projection: attn_qkv (newer files) or ssm_in (older)")
      ->capture_default_str();
  cmd->add_option("--name", args->name, "general.name (default: the directory's name)");
  cmd->add_option("-t,--threads", args->threads, "Threads (default: physical cores)");
  cmd->callback([args] { run_convert(*args); });
}

}  // namespace moerun::cli
