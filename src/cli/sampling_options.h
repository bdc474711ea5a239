// The sampling flags shared by `generate` and `chat`.
#pragma once

#include <optional>

#include "engine/sampler.h"

namespace CLI {
class App;
}

namespace moerun::cli {

// Sampling flags as parsed; the seed is random unless given.
struct SamplingFlags {
  SamplingParams params;
  std::optional<uint64_t> seed;
};

// Adds --temp, --top-k, --top-p, --min-p, --presence-penalty, --frequency-penalty,
// --repeat-penalty and --seed to `cmd`, writing into `flags`.
void add_sampling_options(CLI::App* cmd, SamplingFlags& flags);

// The parameters with the seed filled in (a random one when none was given).
SamplingParams resolve_sampling(const SamplingFlags& flags);

}  // namespace moerun::cli
