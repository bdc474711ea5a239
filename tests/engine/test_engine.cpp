// The engine's scheduler against a deterministic stand-in model: results equal the single-sequence
// generator alone and in batches, continuous batching really batches, queue limit, cancellation,
// timeouts, invalid requests, log-probabilities and shutdown.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/paths.h"
#include "core/thread_pool.h"
#include "engine/engine.h"
#include "engine/generator.h"
#include "io/gguf_file.h"
#include "model/language_model.h"
#include "model/synthetic_model.h"

namespace moerun {
namespace {

using namespace std::chrono_literals;

constexpr int64_t kVocab = 50;

float fake_logit(int64_t pos, int32_t last, int64_t j) {
  return 3.0f *
         std::sin(0.37f * static_cast<float>(j * (last + 3)) + 0.11f * static_cast<float>(pos));
}

class FakeState : public SequenceState {
 public:
  explicit FakeState(int64_t cap) : cap_(cap) {}
  int64_t position() const override { return pos_; }
  int64_t capacity() const override { return cap_; }
  void reset() override { pos_ = 0; }
  int64_t bytes() const override { return 100; }
  int64_t pos_ = 0;
  int64_t cap_;
};

// Logits depend on a token's position and id only; records batch sizes; can be slowed down.
class FakeModel : public LanguageModel {
 public:
  FakeModel() {
    info_.vocab = kVocab;
    info_.context_length = 1 << 20;
  }
  const ModelInfo& info() const override { return info_; }
  std::unique_ptr<SequenceState> new_sequence(int64_t max_tokens) const override {
    return std::make_unique<FakeState>(max_tokens);
  }
  void forward(const Batch& batch, std::span<SequenceState* const> states, float* logits) override {
    if (delay.count() > 0) std::this_thread::sleep_for(delay);
    int64_t row = 0;
    int64_t sequences = 0;
    for (int64_t i = 0; i < batch.size(); ++i) {
      if (i == 0 || batch.sequence[i] != batch.sequence[i - 1]) ++sequences;
      auto* s = static_cast<FakeState*>(states[static_cast<size_t>(batch.sequence[i])]);
      if (s->pos_ >= s->cap_) fail("context full");
      const int64_t pos = s->pos_++;
      if (batch.want_logits[i]) {
        for (int64_t j = 0; j < kVocab; ++j)
          logits[row * kVocab + j] = fake_logit(pos, batch.tokens[i], j);
        ++row;
      }
    }
    std::lock_guard lock(mutex);
    max_sequences_in_batch = std::max(max_sequences_in_batch, sequences);
  }
  ModelInfo info_;
  std::chrono::milliseconds delay{0};
  std::mutex mutex;
  int64_t max_sequences_in_batch = 0;
};

// Everything a request produced.
struct Outcome {
  std::vector<int32_t> tokens;
  std::vector<EngineEvent> events;
  FinishReason finish = FinishReason::error;
  RequestUsage usage;
};

Outcome collect(RequestHandle& h) {
  Outcome o;
  std::vector<EngineEvent> events;
  while (!h.finished()) {
    events.clear();
    h.wait_events(events, 5000ms);
    for (EngineEvent& e : events) {
      if (e.kind == EngineEvent::token) o.tokens.push_back(e.sampled.id);
      if (e.kind == EngineEvent::done) {
        o.finish = e.finish;
        o.usage = e.usage;
      }
      o.events.push_back(std::move(e));
    }
  }
  return o;
}

EngineRequest request(int salt, int64_t prompt_len, int64_t max_tokens) {
  EngineRequest r;
  for (int64_t i = 0; i < prompt_len; ++i)
    r.prompt.push_back(static_cast<int32_t>((i * 7 + salt) % kVocab));
  r.sampling.temperature = 0.9f;
  r.sampling.top_k = 0;
  r.sampling.top_p = 0.95f;
  r.sampling.seed = static_cast<uint64_t>(salt) * 1000 + 17;
  r.max_tokens = max_tokens;
  return r;
}

// The single-sequence generator's tokens for the same request.
std::vector<int32_t> solo(const EngineRequest& r) {
  FakeModel model;
  auto state = model.new_sequence(1 << 16);
  GenerationRequest g;
  g.prompt = r.prompt;
  g.sampling = r.sampling;
  g.max_tokens = r.max_tokens;
  g.stop_tokens = r.stop_tokens;
  return generate(model, *state, nullptr, g, {}).tokens;
}

TEST(Engine, OneRequestEqualsTheGenerator) {
  FakeModel model;
  Engine engine(model, nullptr, EngineOptions{});
  const EngineRequest r = request(1, 9, 20);
  Submission s = engine.submit(r);
  ASSERT_EQ(s.status, SubmitStatus::accepted);
  const Outcome o = collect(*s.handle);
  EXPECT_EQ(o.tokens, solo(r));
  EXPECT_EQ(o.finish, FinishReason::length);
  EXPECT_EQ(o.usage.prompt_tokens, 9);
  EXPECT_EQ(o.usage.completion_tokens, 20);
}

TEST(Engine, ConcurrentRequestsEqualTheirSoloRunsAndShareSteps) {
  FakeModel model;
  EngineOptions options;
  options.max_sequences = 6;
  options.prefill_chunk = 4;  // long prompts take several steps, interleaved with decoding
  options.step_prefill_tokens = 8;
  Engine engine(model, nullptr, options);
  std::vector<EngineRequest> reqs;
  std::vector<std::shared_ptr<RequestHandle>> handles;
  for (int i = 0; i < 16; ++i) {
    reqs.push_back(request(i + 2, 3 + i * 3, 10 + i % 5));
    if (i % 3 == 0) reqs.back().stop_tokens = {static_cast<int32_t>(i % kVocab)};
    Submission s = engine.submit(reqs.back());
    ASSERT_EQ(s.status, SubmitStatus::accepted);
    handles.push_back(s.handle);
  }
  for (int i = 0; i < 16; ++i) {
    const Outcome o = collect(*handles[static_cast<size_t>(i)]);
    EXPECT_EQ(o.tokens, solo(reqs[static_cast<size_t>(i)])) << i;
  }
  EXPECT_GT(model.max_sequences_in_batch, 1);
  EXPECT_LE(model.max_sequences_in_batch, 6);
  const EngineCounters c = engine.counters();
  EXPECT_EQ(c.requests_finished, 16u);
  EXPECT_EQ(c.active_sequences, 0);
}

TEST(Engine, FullQueueRejectsAndShutdownRefuses) {
  FakeModel model;
  model.delay = 20ms;
  EngineOptions options;
  options.max_sequences = 1;
  options.max_queue = 2;
  Engine engine(model, nullptr, options);
  std::vector<std::shared_ptr<RequestHandle>> handles;
  int rejected = 0;
  for (int i = 0; i < 6; ++i) {
    Submission s = engine.submit(request(i, 4, 50));
    if (s.status == SubmitStatus::queue_full) {
      ++rejected;
    } else {
      ASSERT_EQ(s.status, SubmitStatus::accepted);
      handles.push_back(s.handle);
    }
  }
  EXPECT_GE(rejected, 3);
  EXPECT_EQ(engine.counters().requests_rejected, static_cast<uint64_t>(rejected));
  engine.shutdown(0ms);
  for (auto& h : handles) EXPECT_EQ(collect(*h).finish, FinishReason::cancelled);
  EXPECT_EQ(engine.submit(request(1, 4, 5)).status, SubmitStatus::shutting_down);
}

TEST(Engine, CancelFreesTheSequenceForTheNextRequest) {
  FakeModel model;
  model.delay = 2ms;
  EngineOptions options;
  options.max_sequences = 1;
  Engine engine(model, nullptr, options);
  Submission a = engine.submit(request(1, 4, 100000));
  Submission b = engine.submit(request(2, 4, 5));
  std::vector<EngineEvent> events;
  ASSERT_TRUE(a.handle->wait_events(events, 5000ms));  // a is running
  a.handle->cancel();
  const Outcome oa = collect(*a.handle);
  EXPECT_EQ(oa.finish, FinishReason::cancelled);
  const Outcome ob = collect(*b.handle);
  EXPECT_EQ(ob.finish, FinishReason::length);
  EXPECT_EQ(ob.tokens.size(), 5u);
  EXPECT_EQ(engine.counters().requests_cancelled, 1u);
}

TEST(Engine, TimeoutsEndRunningAndQueuedRequests) {
  FakeModel model;
  model.delay = 5ms;
  EngineOptions options;
  options.max_sequences = 1;
  Engine engine(model, nullptr, options);
  EngineRequest r = request(1, 4, 100000);
  r.timeout_seconds = 0.1;
  Submission a = engine.submit(r);
  Submission b = engine.submit(r);  // waits in the queue behind a, past its own deadline
  const Outcome oa = collect(*a.handle);
  const Outcome ob = collect(*b.handle);
  EXPECT_EQ(oa.finish, FinishReason::timeout);
  EXPECT_GT(oa.tokens.size(), 0u);
  EXPECT_EQ(ob.finish, FinishReason::timeout);
  EXPECT_EQ(engine.counters().requests_timed_out, 2u);
}

TEST(Engine, InvalidRequestsAreRefusedWithAReason) {
  FakeModel model;
  EngineOptions options;
  options.context = 16;
  Engine engine(model, nullptr, options);
  EngineRequest r = request(1, 4, 5);
  r.prompt.clear();
  EXPECT_EQ(engine.submit(r).status, SubmitStatus::invalid);
  r = request(1, 17, 5);
  Submission s = engine.submit(r);
  EXPECT_EQ(s.status, SubmitStatus::invalid);
  EXPECT_NE(s.error.find("17 tokens"), std::string::npos) << s.error;
  r = request(1, 4, 5);
  r.prompt[1] = kVocab;
  EXPECT_EQ(engine.submit(r).status, SubmitStatus::invalid);
  r = request(1, 4, 0);
  EXPECT_EQ(engine.submit(r).status, SubmitStatus::invalid);
  r = request(1, 4, 5);
  r.sampling.top_p = 0;
  s = engine.submit(r);
  EXPECT_EQ(s.status, SubmitStatus::invalid);
  EXPECT_NE(s.error.find("top_p"), std::string::npos) << s.error;
  r = request(1, 4, 5);
  r.top_logprobs = kMaxTopLogprobs + 1;
  EXPECT_EQ(engine.submit(r).status, SubmitStatus::invalid);
}

TEST(Engine, ContextLimitEndsWithLength) {
  FakeModel model;
  EngineOptions options;
  options.context = 12;
  Engine engine(model, nullptr, options);
  Submission s = engine.submit(request(3, 8, 100));
  const Outcome o = collect(*s.handle);
  EXPECT_EQ(o.finish, FinishReason::length);
  EXPECT_EQ(o.tokens.size(), 5u);  // 8 prompt + 4 fed outputs fill 12; the 5th is sampled last
}

TEST(Engine, LogprobsAreTheLogSoftmaxOfTheLogits) {
  FakeModel model;
  Engine engine(model, nullptr, EngineOptions{});
  EngineRequest r = request(5, 6, 4);
  r.sampling.temperature = 0;
  r.logprobs = true;
  r.top_logprobs = 3;
  Submission s = engine.submit(r);
  const Outcome o = collect(*s.handle);
  int64_t pos = 5;
  int32_t last = r.prompt.back();
  for (const EngineEvent& e : o.events) {
    if (e.kind != EngineEvent::token) continue;
    double z = 0;
    for (int64_t j = 0; j < kVocab; ++j) z += std::exp(fake_logit(pos, last, j));
    const double expect = fake_logit(pos, last, e.sampled.id) - std::log(z);
    EXPECT_NEAR(e.sampled.logprob, expect, 1e-4);
    ASSERT_EQ(e.top.size(), 3u);
    EXPECT_EQ(e.top[0].id, e.sampled.id);  // greedy picks the most likely
    EXPECT_GE(e.top[0].logprob, e.top[1].logprob);
    EXPECT_GE(e.top[1].logprob, e.top[2].logprob);
    last = e.sampled.id;
    ++pos;
  }
}

// The real forward pass (the embedded default model's shape and types): 16 seeded sampled
// requests submitted together give each the tokens it gives alone.
TEST(Engine, SixteenSeededRequestsOnARealModelEqualTheirSoloRuns) {
  ThreadPool pool(2, false);
  SynthOptions o;
  o.config = *synth_preset("tiny");
  o.tokenizer_dir = default_tokenizer_dir();
  const std::string path =
      (std::filesystem::temp_directory_path() / "moerun_test_engine_tiny.gguf").string();
  write_synthetic_model(o, path, pool);
  auto file = GgufFile::open(path);
  auto model = load_language_model(*file, ModelOptions{&pool, nullptr});
  const int64_t V = model->info().vocab;
  std::vector<EngineRequest> reqs;
  for (int i = 0; i < 16; ++i) {
    EngineRequest r;
    for (int j = 0; j < 5 + 3 * i; ++j)
      r.prompt.push_back(static_cast<int32_t>((j * 7919 + i * 104729) % V));
    r.sampling.temperature = 1.0f;
    r.sampling.seed = 1234 + static_cast<uint64_t>(i);
    r.max_tokens = 12;
    reqs.push_back(r);
  }
  EngineOptions options;
  options.context = 256;
  options.prefill_chunk = 8;
  options.step_prefill_tokens = 16;
  std::vector<std::vector<int32_t>> alone;
  {
    options.max_sequences = 1;
    Engine engine(*model, nullptr, options);
    for (const EngineRequest& r : reqs) alone.push_back(collect(*engine.submit(r).handle).tokens);
  }
  options.max_sequences = 16;
  Engine engine(*model, nullptr, options);
  std::vector<std::shared_ptr<RequestHandle>> handles;
  for (const EngineRequest& r : reqs) handles.push_back(engine.submit(r).handle);
  for (size_t i = 0; i < reqs.size(); ++i) {
    const Outcome o2 = collect(*handles[i]);
    EXPECT_EQ(o2.tokens.size(), 12u) << i;
    EXPECT_EQ(o2.tokens, alone[i]) << i;
  }
  model.reset();
  file.reset();
  std::filesystem::remove(path);
}

// A vocabulary wider than kTopCandidates; counts both forward paths (the engine's thread).
class WideModel : public LanguageModel {
 public:
  static constexpr int64_t kWide = 700;
  WideModel() {
    info_.vocab = kWide;
    info_.context_length = 1 << 20;
  }
  const ModelInfo& info() const override { return info_; }
  std::unique_ptr<SequenceState> new_sequence(int64_t max_tokens) const override {
    return std::make_unique<FakeState>(max_tokens);
  }
  void forward(const Batch& batch, std::span<SequenceState* const> states, float* logits) override {
    int64_t row = 0;
    for (int64_t i = 0; i < batch.size(); ++i) {
      auto* s = static_cast<FakeState*>(states[static_cast<size_t>(batch.sequence[i])]);
      const int64_t pos = s->pos_++;
      if (!batch.want_logits[i]) continue;
      for (int64_t j = 0; j < kWide; ++j) {
        logits[row * kWide + j] = std::round(8.0f * fake_logit(pos, batch.tokens[i], j)) / 8;
      }
      ++row;
    }
    ++full_steps;
  }
  void forward_top(const Batch& batch, std::span<SequenceState* const> states, int64_t k,
                   float* top_logits, int32_t* top_ids) override {
    ++top_steps;
    LanguageModel::forward_top(batch, states, k, top_logits, top_ids);
  }
  ModelInfo info_;
  std::atomic<int> full_steps{0}, top_steps{0};
};

// Steps whose sequences all sample within top_k (no logprobs, no penalties) take only candidates;
// any other sequence in the step makes it take whole rows. Tokens equal the generator's from
// whole rows either way.
TEST(Engine, CandidateStepsGiveTheSameTokensAsWholeRows) {
  std::vector<EngineRequest> reqs;
  for (int i = 0; i < 4; ++i) {
    EngineRequest r;
    for (int j = 0; j < 4 + i; ++j) r.prompt.push_back(static_cast<int32_t>((j * 31 + i) % 700));
    r.sampling.temperature = 0.8f;
    r.sampling.top_k = 20;
    r.sampling.seed = 50 + static_cast<uint64_t>(i);
    r.max_tokens = 10;
    reqs.push_back(r);
  }
  auto solo_wide = [](const EngineRequest& r) {
    WideModel model;
    auto state = model.new_sequence(1 << 10);
    GenerationRequest g;
    g.prompt = r.prompt;
    g.sampling = r.sampling;
    g.max_tokens = r.max_tokens;
    GenerationCallbacks cb;
    cb.on_logits = [](std::span<const float>) {};  // whole rows
    return generate(model, *state, nullptr, g, cb).tokens;
  };
  EngineOptions options;
  options.context = 256;
  options.max_sequences = 4;
  {
    WideModel model;
    Engine engine(model, nullptr, options);
    std::vector<std::shared_ptr<RequestHandle>> handles;
    for (const EngineRequest& r : reqs) handles.push_back(engine.submit(r).handle);
    for (size_t i = 0; i < reqs.size(); ++i) {
      EXPECT_EQ(collect(*handles[i]).tokens, solo_wide(reqs[i])) << i;
    }
    EXPECT_GT(model.top_steps.load(), 0);
    EXPECT_EQ(model.full_steps.load(), model.top_steps.load());  // every step through forward_top
  }
  // One request with logprobs and one without top_k: those steps take whole rows.
  reqs[1].logprobs = true;
  reqs[2].sampling.top_k = 0;
  {
    WideModel model;
    Engine engine(model, nullptr, options);
    std::vector<std::shared_ptr<RequestHandle>> handles;
    for (const EngineRequest& r : reqs) handles.push_back(engine.submit(r).handle);
    for (size_t i = 0; i < reqs.size(); ++i) {
      EXPECT_EQ(collect(*handles[i]).tokens, solo_wide(reqs[i])) << i;
    }
    EXPECT_GT(model.full_steps.load(), model.top_steps.load());
  }
}

}  // namespace
}  // namespace moerun
