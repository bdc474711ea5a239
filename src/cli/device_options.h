// Where a model runs: the flags shared by every command that loads a model for generation
// (--device, --gpu-mem, --cache-policy, --expert-profile, --routing, --mlock, --prefetch).
#pragma once

#include <cstdint>
#include <string>

namespace CLI {
class App;
}

namespace moerun::cli {

// Placement flags as parsed (strings are validated when the model is loaded).
struct DeviceFlags {
  std::string device = "auto";  // auto | cpu | cuda (cuda: dense part on the GPU)
  std::string gpu_mem;          // VRAM budget, e.g. "16GiB"; empty: free VRAM minus a margin
  std::string cache_policy = "adaptive";  // lru | lfu | static | adaptive
  std::string expert_profile;             // profile JSON that warm-starts the expert cache
  std::string routing;  // benchmark mode: synthetic:reuse=..,within8=..,zipf=.. or a trace
  bool mlock = false;   // keep the experts resident in host RAM
  // Hybrid decode: predicted experts copied ahead per layer. Off by default: on the reference
  // machine S1 decoded at 62.6 tok/s with 4 and 75.0 without (BENCHMARKS.md).
  int64_t prefetch = 0;
  // Set by the command, not by flags: the sequences and context the GPU plan reserves state for
  // before it gives the rest of the budget to expert slots.
  int64_t plan_sequences = 1;
  int64_t plan_context = 4096;
};

// Adds the placement flags to `cmd`, writing into `flags`; `routing` adds --routing too (refused
// by serve).
void add_device_options(CLI::App* cmd, DeviceFlags& flags, bool routing = false);

}  // namespace moerun::cli
