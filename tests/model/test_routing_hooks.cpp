// The routing hooks of ModelOptions: an override really changes which experts run, an observer sees
// the final choice, and without hooks the model's own path is unchanged.
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <span>
#include <vector>

#include "core/thread_pool.h"
#include "io/gguf_file.h"
#include "model/language_model.h"
#include "moe/expert_stats.h"
#include "moe/routing_override.h"
#include "moe/synthetic_routing.h"
#include "tiny_models.h"

namespace moerun {
namespace {

ThreadPool& pool() {
  static ThreadPool p(2, false);
  return p;
}

// Always chooses experts 5, 6, 7 (weights kept).
class FixedRouting : public RoutingOverride {
 public:
  void choose(int64_t /*layer*/, int64_t n_tokens, int64_t top_k, int32_t* ids,
              float* /*weights*/) override {
    for (int64_t i = 0; i < n_tokens * top_k; ++i) ids[i] = static_cast<int32_t>(5 + i % top_k);
  }
};

// Counts what it sees per layer and expert.
class CountingObserver : public RoutingObserver {
 public:
  CountingObserver(int64_t layers, int64_t experts)
      : experts_(experts), counts(static_cast<size_t>(layers * experts), 0) {}
  void observe(int64_t layer, int64_t n_tokens, int64_t top_k, const int32_t* ids,
               const float* /*weights*/) override {
    for (int64_t i = 0; i < n_tokens * top_k; ++i)
      ++counts[static_cast<size_t>(layer * experts_ + ids[i])];
  }
  int64_t experts_;
  std::vector<uint64_t> counts;  // [layers, experts]
};

struct RunResult {
  std::vector<float> logits;
  ExpertStatsSnapshot stats;
};

RunResult run(const std::string& path, RoutingOverride* replace, RoutingObserver* observe) {
  auto file = GgufFile::open(path);
  ModelOptions o{&pool(), nullptr};
  o.routing_override = replace;
  o.routing_observer = observe;
  auto model = load_language_model(*file, o);
  auto state = model->new_sequence(16);
  Batch b;
  const std::vector<int32_t> ids = {3, 14, 15, 92, 6, 5};
  b.add(ids, 0, true);
  RunResult r;
  r.logits.resize(static_cast<size_t>(model->info().vocab));
  SequenceState* states[] = {state.get()};
  model->forward(b, states, r.logits.data());
  r.stats = model->expert_stats()->snapshot();
  return r;
}

TEST(RoutingHooks, OverrideChangesTheExpertsThatRunAndObserverSeesThem) {
  const Qwen3NextConfig c = test::tiny_next_config();
  const std::string path = test::temp_model_path("routing_hooks.gguf");
  test::write_tiny_gguf(test::make_next_weights(c, 17), c, path);
  const int64_t layers = c.n_layers, experts = c.n_experts;

  const RunResult plain = run(path, nullptr, nullptr);
  CountingObserver seen(layers, experts);
  const RunResult observed = run(path, nullptr, &seen);
  EXPECT_EQ(observed.logits, plain.logits);  // observing changes nothing
  for (int64_t l = 0; l < layers; ++l) {
    for (int64_t e = 0; e < experts; ++e) {
      EXPECT_EQ(seen.counts[static_cast<size_t>(l * experts + e)],
                observed.stats.usage[static_cast<size_t>(l)][static_cast<size_t>(e)]);
    }
  }

  FixedRouting fixed;
  CountingObserver seen_fixed(layers, experts);
  const RunResult overridden = run(path, &fixed, &seen_fixed);
  EXPECT_NE(overridden.logits, plain.logits);
  for (int64_t l = 0; l < layers; ++l) {
    const auto& usage = overridden.stats.usage[static_cast<size_t>(l)];
    for (int64_t e = 0; e < experts; ++e) {
      EXPECT_EQ(usage[static_cast<size_t>(e)], e >= 5 ? 6u : 0u)
          << "layer " << l << " expert " << e;
      EXPECT_EQ(seen_fixed.counts[static_cast<size_t>(l * experts + e)],
                usage[static_cast<size_t>(e)]);
    }
  }
  // The router alone does not pick exactly those.
  bool other = false;
  for (const auto& usage : plain.stats.usage) other = other || usage[0] + usage[1] + usage[2] > 0;
  EXPECT_TRUE(other);

  SyntheticRouting synthetic(parse_synthetic_routing("synthetic:reuse=0.5,within8=0.9,zipf=1"),
                             layers, experts, c.n_experts_used);
  const RunResult synth = run(path, &synthetic, nullptr);
  EXPECT_EQ(synth.stats.total().routed, plain.stats.total().routed);
  EXPECT_NE(synth.stats.usage, plain.stats.usage);
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace moerun
