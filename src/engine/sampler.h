// Choosing the next token from logits: greedy, temperature, top-k, top-p, min-p and penalties,
// with a seeded generator so that the same seed gives the same output on every machine.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <unordered_map>
#include <vector>

namespace moerun {

// How to sample; temperature <= 0 means greedy (argmax, lowest id on ties).
struct SamplingParams {
  float temperature = 0.7f;
  int32_t top_k = 20;               // 0: off
  float top_p = 0.8f;               // 1: off
  float min_p = 0.0f;               // 0: off
  float presence_penalty = 0.0f;    // OpenAI: subtracted once from every generated token's logit
  float frequency_penalty = 0.0f;   // OpenAI: subtracted per occurrence in the generated text
  float repetition_penalty = 1.0f;  // Hugging Face: over prompt and generated tokens; 1: off
  uint64_t seed = 0;
};

// The sampled token with its log-probability under the final distribution (after penalties and
// temperature; 0 for greedy).
struct SampledToken {
  int32_t id = -1;
  float logprob = 0.0f;
};

// One per sequence: holds the generator state and the token counts the penalties need.
class Sampler {
 public:
  // Throws Error when a parameter is out of range (e.g. top_p outside (0, 1]).
  Sampler(const SamplingParams& params, int64_t vocab);
  // Starts over with `params` (validated as by the constructor), keeping the buffers, so that a
  // sampler can serve one request after another without allocating.
  void reset(const SamplingParams& params);
  // Records prompt tokens (they count for the repetition penalty only).
  void add_prompt(std::span<const int32_t> ids);
  // Picks the next token from logits [vocab] and records it as generated.
  SampledToken sample(std::span<const float> logits);
  // Whether the n largest logits of a row are enough for sample_top() to pick exactly what
  // sample() would on the whole row: n >= vocab; or no penalty is active (they move tokens into or
  // out of the top) and sampling is greedy or keeps top_k in [1, n] tokens.
  bool can_sample_top(int64_t n) const;
  // As sample() (same token, logprob and generator draws), from the n largest logits of the row
  // only: logits [n] largest first, equal values by lower id (ops/cpu/top_k.h), ids [n] their
  // token ids. Requires can_sample_top(n).
  SampledToken sample_top(std::span<const float> logits, std::span<const int32_t> ids);
  // The parameters this sampler uses.
  const SamplingParams& params() const { return params_; }

 private:
  static void check(const SamplingParams& params);
  double uniform();
  void apply_penalties(std::vector<float>& logits) const;
  SampledToken sample_work();
  SampledToken draw_from_candidates();
  SampledToken record(SampledToken token);

  SamplingParams params_;
  int64_t vocab_;
  std::mt19937_64 rng_;
  std::unordered_map<int32_t, int32_t> generated_counts_;  // id -> times generated
  std::unordered_map<int32_t, int32_t> seen_;              // id -> 1 for prompt or generated
  std::vector<float> work_;                                // [vocab] penalised logits
  std::vector<std::pair<float, int32_t>> candidates_;      // (scaled logit, id), best first
};

}  // namespace moerun
