// The bench runner: percentiles and medians against hand-computed values, the synthetic prompt,
// and one run against a stand-in model that counts its forward passes and expert traffic.
#include "engine/bench_runner.h"

#include <gtest/gtest.h>

#include <cmath>
#include <span>
#include <vector>

#include "core/error.h"
#include "model/language_model.h"
#include "moe/expert_stats.h"

namespace moerun {
namespace {

TEST(BenchStats, PercentileInterpolatesBetweenClosestRanks) {
  const std::vector<double> v = {5, 1, 4, 2, 3};  // sorted: 1 2 3 4 5
  EXPECT_DOUBLE_EQ(percentile(v, 0), 1);
  EXPECT_DOUBLE_EQ(percentile(v, 50), 3);
  EXPECT_DOUBLE_EQ(percentile(v, 100), 5);
  EXPECT_DOUBLE_EQ(percentile(v, 95), 4.8);  // rank 0.95 * 4 = 3.8
  EXPECT_DOUBLE_EQ(percentile(v, 25), 2);
  const std::vector<double> even = {10, 40, 20, 30};
  EXPECT_DOUBLE_EQ(percentile(even, 50), 25);    // rank 1.5
  EXPECT_DOUBLE_EQ(percentile(even, 95), 38.5);  // rank 2.85: 30 + 0.85 * 10
  EXPECT_DOUBLE_EQ(percentile(std::vector<double>{7}, 95), 7);
  EXPECT_DOUBLE_EQ(percentile(std::vector<double>{}, 50), 0);
  EXPECT_THROW(percentile(v, 101), Error);
  EXPECT_THROW(percentile(v, -1), Error);
}

TEST(BenchStats, SpreadIsMedianMinMax) {
  const std::vector<double> v = {3.0, 9.0, 1.0};
  const Spread s = spread_of(v);
  EXPECT_DOUBLE_EQ(s.median, 3.0);
  EXPECT_DOUBLE_EQ(s.min, 1.0);
  EXPECT_DOUBLE_EQ(s.max, 9.0);
  const Spread two = spread_of(std::vector<double>{2.0, 4.0});
  EXPECT_DOUBLE_EQ(two.median, 3.0);
  const Spread none = spread_of(std::vector<double>{});
  EXPECT_EQ(none.median, 0);
  EXPECT_EQ(none.max, 0);
}

TEST(BenchStats, SyntheticPromptIsSeededAndInRange) {
  const std::vector<int32_t> a = synthetic_prompt(1000, 151936, 7);
  const std::vector<int32_t> b = synthetic_prompt(1000, 151936, 7);
  const std::vector<int32_t> c = synthetic_prompt(1000, 151936, 8);
  ASSERT_EQ(a.size(), 1000u);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  int32_t hi = 0;
  for (int32_t id : a) {
    ASSERT_GE(id, 0);
    ASSERT_LT(id, 151936);
    hi = std::max(hi, id);
  }
  EXPECT_GT(hi, 100000);  // spread over the vocabulary, not a small range
  EXPECT_THROW(synthetic_prompt(4, 0, 1), Error);
}

TEST(BenchStats, PeakRssIsReadFromProc) {
  std::vector<char> touch(8 << 20, 1);  // make sure the process has some resident memory
  EXPECT_GT(read_peak_rss_bytes(), static_cast<int64_t>(touch.size()));
}

constexpr int64_t kVocab = 50;
constexpr int64_t kBytesPerToken = 1000;  // expert bytes the fake "CPU" reads per token

class FakeState : public SequenceState {
 public:
  explicit FakeState(int64_t cap) : cap_(cap) {}
  int64_t position() const override { return pos_; }
  int64_t capacity() const override { return cap_; }
  void reset() override { pos_ = 0; }
  int64_t bytes() const override { return 0; }
  int64_t pos_ = 0;
  int64_t cap_;
};

// Logits peak at (last token * 7 + position) % vocab; every token is routed to one expert, a hit
// for even positions, and costs kBytesPerToken of CPU reads.
class FakeModel : public LanguageModel {
 public:
  FakeModel() : stats_(1, 4) {
    info_.vocab = kVocab;
    info_.context_length = 64;
  }
  const ModelInfo& info() const override { return info_; }
  std::unique_ptr<SequenceState> new_sequence(int64_t max_tokens) const override {
    last_capacity = max_tokens;
    return std::make_unique<FakeState>(max_tokens);
  }
  void forward(const Batch& batch, std::span<SequenceState* const> states, float* logits) override {
    ++calls;
    batch_sizes.push_back(batch.size());
    int64_t row = 0;
    for (int64_t i = 0; i < batch.size(); ++i) {
      auto* s = static_cast<FakeState*>(states[0]);
      if (s->pos_ >= s->cap_) fail("context full");
      const int64_t pos = s->pos_++;
      const int32_t expert = 0;
      stats_.record_routing(0, &expert, 1);
      if (pos % 2 == 0) stats_.record_hits(0, 1);
      stats_.record_cpu(0, 1, kBytesPerToken);
      stats_.add_cpu_seconds(0.002);  // per token: 2 ms of CPU, 1 ms of GPU experts
      stats_.add_gpu_seconds(0.001);
      if (batch.want_logits[i]) {
        for (int64_t j = 0; j < kVocab; ++j) logits[row * kVocab + j] = 0.0f;
        logits[row * kVocab + (batch.tokens[i] * 7 + pos) % kVocab] = 1.0f;
        ++row;
      }
    }
  }
  ExpertStats* expert_stats() override { return &stats_; }
  ModelInfo info_;
  ExpertStats stats_;
  int calls = 0;
  std::vector<int64_t> batch_sizes;
  mutable int64_t last_capacity = 0;
};

TEST(BenchRunner, PrefillsInChunksAndDecodesGreedily) {
  FakeModel model;
  BenchRunConfig cfg;
  cfg.prompt_tokens = 10;
  cfg.gen_tokens = 6;
  cfg.prefill_chunk = 4;
  cfg.seed = 3;
  const BenchRunResult r = run_bench_once(model, cfg);
  EXPECT_EQ(model.last_capacity, 16);
  // 3 prefill passes (4 + 4 + 2) and 5 decode passes of one token.
  EXPECT_EQ(model.batch_sizes, (std::vector<int64_t>{4, 4, 2, 1, 1, 1, 1, 1}));
  const std::vector<int32_t> prompt = synthetic_prompt(10, kVocab, 3);
  std::vector<int32_t> want;
  int32_t last = prompt.back();
  for (int64_t pos = 9; pos < 15; ++pos) {
    last = static_cast<int32_t>((last * 7 + pos) % kVocab);
    want.push_back(last);
  }
  EXPECT_EQ(r.generated, want);
  ASSERT_EQ(r.itl_seconds.size(), 5u);
  EXPECT_GT(r.ttft_seconds, 0);
  EXPECT_GE(r.ttft_seconds, r.prefill_seconds);
  EXPECT_GT(r.decode_tok_s, 0);
  EXPECT_NEAR(r.decode_tok_s * r.decode_seconds, 5.0, 1e-9);
  EXPECT_NEAR(r.prefill_tok_s * r.prefill_seconds, 10.0, 1e-9);
  EXPECT_LE(r.itl_p50, r.itl_p95);
  // Decode positions 10..14: hits at 10, 12, 14 -> 3 of 5; prefill 0..9: 5 of 10.
  ASSERT_TRUE(r.has_expert_stats);
  EXPECT_DOUBLE_EQ(r.decode_hit_rate, 0.6);
  EXPECT_DOUBLE_EQ(r.prefill_hit_rate, 0.5);
  EXPECT_DOUBLE_EQ(r.decode_host_bytes_per_token, static_cast<double>(kBytesPerToken));
  EXPECT_DOUBLE_EQ(r.decode_pcie_bytes_per_token, 0.0);
  // Busy time per decode token: the 5 decode passes after the reset, one token each.
  EXPECT_NEAR(r.decode_cpu_busy_per_token, 0.002, 1e-9);
  EXPECT_NEAR(r.decode_gpu_busy_per_token, 0.001, 1e-9);
  EXPECT_GT(r.peak_rss_bytes, 0);
}

TEST(BenchRunner, OneTokenHasNoDecodeFigures) {
  FakeModel model;
  BenchRunConfig cfg;
  cfg.prompt_tokens = 3;
  cfg.gen_tokens = 1;
  const BenchRunResult r = run_bench_once(model, cfg);
  EXPECT_EQ(r.generated.size(), 1u);
  EXPECT_TRUE(r.itl_seconds.empty());
  EXPECT_EQ(r.decode_tok_s, 0);
  EXPECT_EQ(model.calls, 1);
}

TEST(BenchRunner, RejectsRunsThatDoNotFit) {
  FakeModel model;
  BenchRunConfig cfg;
  cfg.prompt_tokens = 60;
  cfg.gen_tokens = 5;  // 65 > context 64
  EXPECT_THROW(run_bench_once(model, cfg), Error);
  cfg.prompt_tokens = 0;
  EXPECT_THROW(run_bench_once(model, cfg), Error);
  cfg.prompt_tokens = 4;
  cfg.gen_tokens = 0;
  EXPECT_THROW(run_bench_once(model, cfg), Error);
  EXPECT_EQ(model.calls, 0);
}

}  // namespace
}  // namespace moerun
