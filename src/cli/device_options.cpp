#include "cli/device_options.h"

#include <CLI/CLI.hpp>

namespace moerun::cli {

void add_device_options(CLI::App* cmd, DeviceFlags& flags, bool routing) {
  cmd->add_option("--device", flags.device,
                  "where the model runs: auto (the GPU when there is one), cpu, cuda")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  cmd->add_option("--gpu-mem", flags.gpu_mem,
                  "VRAM budget, e.g. 16GiB or 12000MiB (default: free VRAM minus a margin)");
  cmd->add_option("--cache-policy", flags.cache_policy,
                  "expert cache replacement: lru, lfu, static, adaptive");
  cmd->add_option("--expert-profile", flags.expert_profile,
                  "expert usage profile (from `moerun profile`) to warm-start the cache");
  cmd->add_flag("--mlock", flags.mlock, "lock the routed experts in host RAM");
  cmd->add_option("--prefetch", flags.prefetch,
                  "hybrid decode: predicted next-layer experts copied ahead per layer (default 0: "
                  "off, measured faster)")
      ->check(CLI::Range(0, 64));
  if (routing) {
    cmd->add_option("--routing", flags.routing,
                    "benchmark mode: replace the router's choice, "
                    "synthetic:reuse=0.45,within8=0.8,zipf=1.1 or a trace file from `profile`");
  }
}

}  // namespace moerun::cli
