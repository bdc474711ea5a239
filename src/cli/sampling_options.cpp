#include "cli/sampling_options.h"

#include <random>

#include <CLI/CLI.hpp>

namespace moerun::cli {

void add_sampling_options(CLI::App* cmd, SamplingFlags& f) {
  cmd->add_option("--temp", f.params.temperature, "Temperature (0: greedy)")->capture_default_str();
  cmd->add_option("--top-k", f.params.top_k, "Keep the k most likely tokens (0: off)")
      ->capture_default_str();
  cmd->add_option("--top-p", f.params.top_p, "Nucleus sampling threshold (1: off)")
      ->capture_default_str();
  cmd->add_option("--min-p", f.params.min_p, "Drop tokens below min-p times the best (0: off)")
      ->capture_default_str();
  cmd->add_option("--presence-penalty", f.params.presence_penalty,
                  "Subtracted once from each generated token's logit");
  cmd->add_option("--frequency-penalty", f.params.frequency_penalty,
                  "Subtracted per occurrence of a generated token");
  cmd->add_option("--repeat-penalty", f.params.repetition_penalty,
                  "Divides logits of tokens already seen (prompt included; 1: off)");
  cmd->add_option("--seed", f.seed, "Random seed (same seed, same output)");
}

SamplingParams resolve_sampling(const SamplingFlags& f) {
  SamplingParams p = f.params;
  p.seed = f.seed ? *f.seed : std::random_device{}();
  return p;
}

}  // namespace moerun::cli
