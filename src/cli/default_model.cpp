#include "cli/default_model.h"

#include <filesystem>

#include <fmt/format.h>

#include "core/error.h"
#include "core/paths.h"
#include "core/thread_pool.h"
#include "model/synthetic_model.h"

namespace moerun::cli {

std::string resolve_model_path(const std::string& arg) {
  if (!arg.empty() && arg != "default" && arg != "tiny") return arg;
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(cache_dir()) / "models";
  const fs::path path = dir / "tiny-q4_k_m.gguf";
  if (fs::exists(path)) return path.string();
  fs::create_directories(dir);
  fmt::print(stderr, "moerun: writing the default model (tiny, random weights) to {}\n",
             path.string());
  SynthOptions options;
  options.config = *synth_preset("tiny");
  options.tokenizer_dir = default_tokenizer_dir();
  options.name = "moerun tiny synthetic (random weights)";
  const fs::path tmp = path.string() + ".partial";
  ThreadPool pool(default_thread_count());
  write_synthetic_model(options, tmp.string(), pool);
  fs::rename(tmp, path);
  return path.string();
}

}  // namespace moerun::cli
