#include "cli/model_session.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>

#include "cli/default_model.h"
#include "cli/machine_calibration.h"
#include "core/error.h"
#include "core/memory_size.h"
#include "io/gguf_vocab.h"
#include "model/model_info.h"
#include "moe/expert_profile.h"
#if MOERUN_CUDA
#include "ops/cuda/device_info.h"
#endif

namespace moerun::cli {
namespace {

#if MOERUN_CUDA
// Bytes the GPU needs at least: every tensor but the embedding table (gathered on the host) and
// the routed experts (kept in host memory when they do not fit), plus a margin for activations,
// caches and workspaces.
uint64_t dense_vram(const GgufFile& file) {
  uint64_t bytes = uint64_t{1} << 30;
  for (const GgufTensorInfo& t : file.tensors()) {
    if (t.name != "token_embd.weight" && t.name.find("_exps.") == std::string::npos) {
      bytes += t.nbytes;
    }
  }
  return bytes;
}
#endif

// Architecture, layer and expert counts from the file's metadata (before the model is loaded).
ModelInfo moe_shape_of(const GgufFile& file) {
  const GgufValue* a = file.find("general.architecture");
  if (a == nullptr) fail("{}: no general.architecture key", file.path());
  ModelInfo info;
  info.architecture = a->as_string("general.architecture");
  auto count = [&](const char* key) {
    const std::string name = info.architecture + "." + key;
    const GgufValue* v = file.find(name);
    if (v == nullptr) fail("{}: no {} key", file.path(), name);
    return static_cast<int64_t>(v->as_uint(name));
  };
  info.n_layers = count("block_count");
  info.n_experts = count("expert_count");
  info.n_experts_used = count("expert_used_count");
  return info;
}

#if MOERUN_CUDA
// The expert usage profile of --expert-profile, checked against the model; a bad or mismatched
// profile is reported and ignored (empty counts).
std::vector<std::vector<uint64_t>> profile_counts(const GgufFile& file, const std::string& path) {
  if (path.empty()) return {};
  try {
    const ExpertProfile profile = load_expert_profile(path);
    check_profile_model(profile, profile_model_of(file, moe_shape_of(file)), path);
    return profile.counts;
  } catch (const Error& e) {
    std::fprintf(stderr, "moerun: ignoring the expert profile: %s\n", e.what());
    return {};
  }
}
#endif

// --mlock: locks the pages of the routed experts in RAM so the kernel never evicts them.
void lock_experts(const GgufFile& file) {
  const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  for (const GgufTensorInfo& t : file.tensors()) {
    if (t.name.find("_exps.") == std::string::npos || t.nbytes == 0) continue;
    const auto begin = reinterpret_cast<uintptr_t>(t.view.data) / page * page;
    const auto end = reinterpret_cast<uintptr_t>(t.view.data) + t.nbytes;
    if (mlock(reinterpret_cast<const void*>(begin), end - begin) != 0) {
      fail(
          "--mlock: cannot lock {} ({} bytes) in RAM: {}; raise the locked-memory limit "
          "(ulimit -l) or run without --mlock",
          t.name, t.nbytes, std::strerror(errno));
    }
  }
}

// Where the model runs: --device cpu, cuda, or auto (the GPU when this build has CUDA, a GPU is
// present and at least the dense part fits the budget: the routed experts that do not fit stay in
// host memory, hot ones cached in VRAM).
GpuOptions gpu_options(const GgufFile& file, const DeviceFlags& device) {
  GpuOptions gpu;
  if (!device.gpu_mem.empty()) gpu.budget = parse_memory_size(device.gpu_mem);
  gpu.cache_policy = parse_cache_policy(device.cache_policy);
  gpu.plan_sequences = device.plan_sequences;
  gpu.plan_context = device.plan_context;
  gpu.max_prefetch = device.prefetch;
  gpu.max_sequences = std::max<int64_t>(gpu.max_sequences, device.plan_sequences);
  if (device.device == "cpu") return gpu;
#if MOERUN_CUDA
  const std::vector<GpuInfo> gpus = list_gpus();
  if (gpus.empty()) {
    if (device.device == "cuda") fail("--device cuda: no CUDA device is available");
    return gpu;
  }
  const uint64_t budget = gpu.budget != 0 ? gpu.budget : gpus[0].free_bytes;
  const uint64_t need = dense_vram(file);
  if (device.device == "auto" && need > budget) {
    std::fprintf(stderr,
                 "moerun: the model's dense part needs about %.1f GiB of VRAM, more than the "
                 "%.1f GiB budget; running on the CPU\n",
                 static_cast<double>(need) / (1u << 30), static_cast<double>(budget) / (1u << 30));
    return gpu;
  }
  gpu.enabled = true;
  gpu.profile_counts = profile_counts(file, device.expert_profile);
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
  if (!device.routing.empty() && is_benchmark_routing(device.routing)) {
    const ModelInfo shape = moe_shape_of(*s.file);
    s.routing = make_routing_override(device.routing, shape.n_layers, shape.n_experts,
                                      shape.n_experts_used);
    options.routing_override = s.routing.get();
  }
  options.routing_observer = hooks.observe;
  options.gpu = gpu_options(*s.file, device);
  if (options.gpu.enabled) {
    // The hybrid mode's prefill split weighs copies against the CPU with the constants `moerun
    // check` measured on this machine (the GPU plan says when it falls back to defaults).
    const CalibrationLoad cal = load_calibration(default_calibration_path(),
                                                 current_machine(static_cast<int>(s.pool->size())));
    if (cal.calibration) options.gpu.calibration = *cal.calibration;
  }
  if (device.mlock) lock_experts(*s.file);
  s.model = load_language_model(*s.file, options);
  if (options.gpu.enabled)
    std::fprintf(stderr, "moerun: %s\n", s.model->describe_placement().c_str());
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
