#include "cli/model_session.h"

#include <algorithm>
#include <charconv>
#include <cstdio>

#include "cli/default_model.h"
#include "core/error.h"
#include "core/memory_size.h"
#include "io/gguf_vocab.h"
#if MOERUN_CUDA
#include "ops/cuda/device_info.h"
#endif

namespace moerun::cli {
namespace {

#if MOERUN_CUDA
// Bytes the whole model needs in VRAM: every tensor but the embedding table (gathered on the
// host), plus a margin for activations, caches and workspaces.
uint64_t whole_model_vram(const GgufFile& file) {
  uint64_t bytes = uint64_t{1} << 30;
  for (const GgufTensorInfo& t : file.tensors()) {
    if (t.name != "token_embd.weight") bytes += t.nbytes;
  }
  return bytes;
}
#endif

// Where the model runs: --device cpu, cuda, or auto (the GPU when this build has CUDA, a GPU is
// present and the model fits the budget).
GpuOptions gpu_options(const GgufFile& file, const DeviceFlags& device) {
  GpuOptions gpu;
  if (!device.gpu_mem.empty()) gpu.budget = parse_memory_size(device.gpu_mem);
  if (device.device == "cpu") return gpu;
#if MOERUN_CUDA
  const std::vector<GpuInfo> gpus = list_gpus();
  if (gpus.empty()) {
    if (device.device == "cuda") fail("--device cuda: no CUDA device is available");
    return gpu;
  }
  const uint64_t budget = gpu.budget != 0 ? gpu.budget : gpus[0].free_bytes;
  const uint64_t need = whole_model_vram(file);
  if (device.device == "auto" && need > budget) {
    std::fprintf(stderr,
                 "moerun: the model needs about %.1f GiB of VRAM, more than the %.1f GiB budget; "
                 "running on the CPU\n",
                 static_cast<double>(need) / (1u << 30), static_cast<double>(budget) / (1u << 30));
    return gpu;
  }
  gpu.enabled = true;
  return gpu;
#else
  (void)file;
  if (device.device == "cuda") {
    fail("--device cuda: this build of moerun has no CUDA backend (build it with nvcc present)");
  }
  return gpu;
#endif
}

}  // namespace

ModelSession open_model_session(const std::string& path_arg, int threads, const DeviceFlags& device,
                                const RoutingHooks& hooks) {
  ModelSession s;
  s.file = GgufFile::open(resolve_model_path(path_arg));
  s.pool = std::make_unique<ThreadPool>(threads > 0 ? threads : default_thread_count());
  ModelOptions options;
  options.pool = s.pool.get();
  options.routing_override = hooks.replace;
  options.routing_observer = hooks.observe;
  options.gpu = gpu_options(*s.file, device);
  s.model = load_language_model(*s.file, options);
  if (s.file->find("tokenizer.ggml.tokens")) {
    s.tokenizer = std::make_unique<Tokenizer>(read_vocab(*s.file));
    if (s.tokenizer->n_vocab() > s.model->info().vocab) {
      fail("{}: the tokenizer has {} tokens but the model's output has only {} rows",
           s.file->path(), s.tokenizer->n_vocab(), s.model->info().vocab);
    }
    const int32_t eos = s.tokenizer->vocab().eos_id;
    if (eos >= 0) s.end_of_turn.push_back(eos);
    for (const char* text : {"<|im_end|>", "<|endoftext|>"}) {
      const int32_t id = s.tokenizer->find_token(text);
      if (id >= 0 &&
          std::find(s.end_of_turn.begin(), s.end_of_turn.end(), id) == s.end_of_turn.end()) {
        s.end_of_turn.push_back(id);
      }
    }
  }
  return s;
}

std::vector<int32_t> parse_token_ids(const std::string& text, int64_t vocab) {
  std::vector<int32_t> ids;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find(',', pos);
    if (end == std::string::npos) end = text.size();
    std::string item = text.substr(pos, end - pos);
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    int64_t value = -1;
    const auto [ptr, ec] = std::from_chars(item.data(), item.data() + item.size(), value);
    if (item.empty() || ec != std::errc() || ptr != item.data() + item.size()) {
      fail("--prompt-ids: '{}' is not a token id (expected comma-separated integers)", item);
    }
    if (value < 0 || value >= vocab) {
      fail("--prompt-ids: token id {} is outside the vocabulary [0, {})", value, vocab);
    }
    ids.push_back(static_cast<int32_t>(value));
    pos = end + 1;
  }
  return ids;
}

}  // namespace moerun::cli
