// The generation loop against a deterministic stand-in model: greedy output, stop tokens and
// strings, limits, chunked prefill, cancellation and the context check.
#include <gtest/gtest.h>

#include <cmath>
#include <span>
#include <vector>

#include "core/error.h"
#include "engine/generator.h"
#include "model/language_model.h"

namespace moerun {
namespace {

constexpr int64_t kVocab = 40;

// Logits depend on the position and the last token only, so expected outputs can be computed.
float fake_logit(int64_t pos, int32_t last, int64_t j) {
  return std::sin(0.37f * static_cast<float>(j * (last + 3)) + 0.11f * static_cast<float>(pos));
}

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

class FakeModel : public LanguageModel {
 public:
  FakeModel() { info_.vocab = kVocab; }
  const ModelInfo& info() const override { return info_; }
  std::unique_ptr<SequenceState> new_sequence(int64_t max_tokens) const override {
    return std::make_unique<FakeState>(max_tokens);
  }
  void forward(const Batch& batch, std::span<SequenceState* const> states, float* logits) override {
    ++calls;
    int64_t row = 0;
    for (int64_t i = 0; i < batch.size(); ++i) {
      auto* s = static_cast<FakeState*>(states[static_cast<size_t>(batch.sequence[i])]);
      if (s->pos_ >= s->cap_) fail("context full");
      const int64_t pos = s->pos_++;
      if (batch.want_logits[i]) {
        for (int64_t j = 0; j < kVocab; ++j)
          logits[row * kVocab + j] = fake_logit(pos, batch.tokens[i], j);
        ++row;
      }
    }
  }
  ModelInfo info_;
  int calls = 0;
};

// The greedy continuation computed directly from fake_logit.
std::vector<int32_t> expected_greedy(const std::vector<int32_t>& prompt, int n) {
  std::vector<int32_t> out;
  int32_t last = prompt.back();
  int64_t pos = static_cast<int64_t>(prompt.size()) - 1;
  for (int i = 0; i < n; ++i) {
    int32_t best = 0;
    for (int32_t j = 1; j < kVocab; ++j) {
      if (fake_logit(pos, last, j) > fake_logit(pos, last, best)) best = j;
    }
    out.push_back(best);
    last = best;
    ++pos;
  }
  return out;
}

GenerationRequest greedy_request(int64_t max_tokens) {
  GenerationRequest r;
  r.prompt = {3, 1, 4, 1, 5, 9, 2, 6};
  r.sampling.temperature = 0;
  r.max_tokens = max_tokens;
  return r;
}

TEST(Generator, GreedyMatchesTheModelAndChunkingDoesNotMatter) {
  FakeModel model;
  for (int64_t chunk : {1, 3, 512}) {
    auto state = model.new_sequence(100);
    GenerationRequest r = greedy_request(12);
    r.prefill_chunk = chunk;
    std::vector<int32_t> seen;
    GenerationCallbacks cb;
    cb.on_token = [&](int32_t id) { seen.push_back(id); };
    const GenerationResult res = generate(model, *state, nullptr, r, cb);
    EXPECT_EQ(res.tokens, expected_greedy(r.prompt, 12)) << "chunk " << chunk;
    EXPECT_EQ(seen, res.tokens);
    EXPECT_EQ(res.finish, FinishReason::length);
    EXPECT_EQ(res.fed_tokens, 11);  // the last sampled token is never run
    EXPECT_EQ(state->position(), 8 + 11);
  }
}

TEST(Generator, StopsAtAStopTokenWithoutOutputtingIt) {
  FakeModel model;
  const std::vector<int32_t> full = expected_greedy(greedy_request(1).prompt, 10);
  auto state = model.new_sequence(100);
  GenerationRequest r = greedy_request(10);
  r.stop_tokens = {full[4]};
  const GenerationResult res = generate(model, *state, nullptr, r, {});
  const size_t first =
      static_cast<size_t>(std::find(full.begin(), full.end(), full[4]) - full.begin());
  EXPECT_EQ(res.tokens, std::vector<int32_t>(full.begin(), full.begin() + first));
  EXPECT_EQ(res.finish, FinishReason::stop);
}

TEST(Generator, ZeroMaxTokensOnlyPrefills) {
  FakeModel model;
  auto state = model.new_sequence(100);
  const GenerationResult res = generate(model, *state, nullptr, greedy_request(0), {});
  EXPECT_TRUE(res.tokens.empty());
  EXPECT_EQ(state->position(), 8);
}

TEST(Generator, PromptLongerThanTheContextIsAClearError) {
  FakeModel model;
  auto state = model.new_sequence(5);
  try {
    generate(model, *state, nullptr, greedy_request(3), {});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("8 tokens"), std::string::npos) << e.what();
  }
  EXPECT_EQ(state->position(), 0);
  GenerationRequest empty = greedy_request(3);
  empty.prompt.clear();
  EXPECT_THROW(generate(model, *state, nullptr, empty, {}), Error);
}

TEST(Generator, FullContextEndsWithLength) {
  FakeModel model;
  auto state = model.new_sequence(10);
  const GenerationResult res = generate(model, *state, nullptr, greedy_request(50), {});
  EXPECT_EQ(res.finish, FinishReason::length);
  EXPECT_EQ(state->position(), 10);
  EXPECT_EQ(res.tokens.size(), 3u);  // 8 prompt + 2 fed + 1 sampled at the end
}

TEST(Generator, CancelStopsBeforeTheNextToken) {
  FakeModel model;
  auto state = model.new_sequence(100);
  std::atomic<bool> cancel{false};
  GenerationCallbacks cb;
  int count = 0;
  cb.on_token = [&](int32_t) {
    if (++count == 3) cancel = true;
  };
  const GenerationResult res = generate(model, *state, nullptr, greedy_request(20), cb, &cancel);
  EXPECT_EQ(res.finish, FinishReason::cancelled);
  EXPECT_EQ(res.tokens.size(), 3u);
}

TEST(Generator, LogitsCallbackSeesEveryStep) {
  FakeModel model;
  auto state = model.new_sequence(100);
  int rows = 0;
  GenerationCallbacks cb;
  cb.on_logits = [&](std::span<const float> l) {
    EXPECT_EQ(static_cast<int64_t>(l.size()), kVocab);
    ++rows;
  };
  generate(model, *state, nullptr, greedy_request(6), cb);
  EXPECT_EQ(rows, 6);
}

// A vocabulary wider than kTopCandidates, with many exact ties; counts both forward paths.
class WideModel : public LanguageModel {
 public:
  static constexpr int64_t kWide = 1000;
  WideModel() { info_.vocab = kWide; }
  const ModelInfo& info() const override { return info_; }
  std::unique_ptr<SequenceState> new_sequence(int64_t max_tokens) const override {
    return std::make_unique<FakeState>(max_tokens);
  }
  void forward(const Batch& batch, std::span<SequenceState* const> states, float* logits) override {
    ++full_calls;
    int64_t row = 0;
    for (int64_t i = 0; i < batch.size(); ++i) {
      auto* s = static_cast<FakeState*>(states[static_cast<size_t>(batch.sequence[i])]);
      const int64_t pos = s->pos_++;
      if (!batch.want_logits[i]) continue;
      for (int64_t j = 0; j < kWide; ++j) {
        // Rounded to 1/8: ties among the candidates and at the cut.
        logits[row * kWide + j] = std::round(8.0f * 2.0f * fake_logit(pos, batch.tokens[i], j)) / 8;
      }
      ++row;
    }
  }
  void forward_top(const Batch& batch, std::span<SequenceState* const> states, int64_t k,
                   float* top_logits, int32_t* top_ids) override {
    ++top_calls;
    LanguageModel::forward_top(batch, states, k, top_logits, top_ids);
  }
  ModelInfo info_;
  int full_calls = 0;
  int top_calls = 0;
};

// Sampling from the candidates of forward_top gives the same tokens as from whole rows (the
// logits callback forces whole rows), greedy and sampled with top_k, and only when they suffice.
TEST(Generator, CandidatesGiveTheSameTokensAsWholeRows) {
  for (const float temperature : {0.0f, 0.8f, 1.5f}) {
    for (const int32_t top_k : {1, 7, 64, 0}) {
      GenerationRequest r = greedy_request(40);
      r.sampling.temperature = temperature;
      r.sampling.top_k = top_k;
      r.sampling.top_p = 0.9f;
      r.sampling.seed = 1234;
      r.prefill_chunk = 3;
      WideModel a, b;
      auto sa = a.new_sequence(100), sb = b.new_sequence(100);
      const GenerationResult ra = generate(a, *sa, nullptr, r, {});
      GenerationCallbacks cb;
      cb.on_logits = [](std::span<const float>) {};
      const GenerationResult rb = generate(b, *sb, nullptr, r, cb);
      EXPECT_EQ(ra.tokens, rb.tokens) << temperature << " " << top_k;
      EXPECT_EQ(ra.tokens.size(), 40u);
      const bool top = temperature == 0.0f || top_k > 0;
      EXPECT_EQ(a.top_calls > 0, top) << temperature << " " << top_k;
      EXPECT_EQ(a.full_calls, top ? a.top_calls : a.full_calls);  // forward_top runs forward
      EXPECT_EQ(b.top_calls, 0);
    }
  }
}

}  // namespace
}  // namespace moerun
