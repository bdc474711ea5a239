// Batch invariance: a sequence's logits are bitwise the same whether it runs alone or in a batch
// with other sequences (decode tokens and prefill chunks, before or after it), so that a seeded
// request gives the same text however the server batches it.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/paths.h"
#include "core/thread_pool.h"
#include "io/gguf_file.h"
#include "model/language_model.h"
#include "model/synthetic_model.h"
#include "tiny_models.h"

namespace moerun {
namespace {

ThreadPool& pool() {
  static ThreadPool p(2, false);
  return p;
}

// A loaded model whose file is removed at the end of the test.
struct LoadedModel {
  std::string path;
  std::unique_ptr<GgufFile> file;
  std::unique_ptr<LanguageModel> model;
  ~LoadedModel() {
    model.reset();
    file.reset();
    std::filesystem::remove(path);
  }
};

std::unique_ptr<LoadedModel> load(const std::string& path) {
  auto m = std::make_unique<LoadedModel>();
  m->path = path;
  m->file = GgufFile::open(path);
  m->model = load_language_model(*m->file, ModelOptions{&pool(), nullptr});
  return m;
}

std::vector<int32_t> ids(int n, int64_t vocab, int salt) {
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i)
    out.push_back(static_cast<int32_t>((i * 7919 + salt * 104729) % vocab));
  return out;
}

bool bitwise_equal(const float* a, const float* b, int64_t n) {
  return std::memcmp(a, b, static_cast<size_t>(n) * sizeof(float)) == 0;
}

// Runs sequence A (a prompt in chunks of 4, then 5 decode tokens) alone, then again with other
// sequences in every batch: B decoding one token per step (before A) and C prefilling chunks of
// `c_chunk` tokens of a `c_len`-token prompt (after A), and checks that A's logits are bitwise
// equal each step. States hold `capacity` tokens.
void check_invariance(LanguageModel& model, int64_t capacity = 64, int c_len = 40,
                      size_t c_chunk = 9) {
  const int64_t V = model.info().vocab;
  const std::vector<int32_t> prompt_a = ids(11, V, 1), decode_a = ids(5, V, 2);
  const std::vector<int32_t> prompt_b = ids(6, V, 3), decode_b = ids(8, V, 4);
  const std::vector<int32_t> prompt_c = ids(c_len, V, 5);

  // Steps of A: prompt chunks [0,4), [4,8), [8,11), then the decode tokens one by one.
  std::vector<std::vector<int32_t>> steps;
  for (size_t b = 0; b < prompt_a.size(); b += 4) {
    steps.emplace_back(
        prompt_a.begin() + static_cast<std::ptrdiff_t>(b),
        prompt_a.begin() + static_cast<std::ptrdiff_t>(std::min(b + 4, prompt_a.size())));
  }
  for (int32_t t : decode_a) steps.push_back({t});

  std::vector<std::vector<float>> alone;
  {
    auto s = model.new_sequence(capacity);
    SequenceState* states[] = {s.get()};
    for (const auto& step : steps) {
      Batch b;
      b.add(step, 0, true);
      std::vector<float> logits(static_cast<size_t>(V));
      model.forward(b, states, logits.data());
      alone.push_back(logits);
    }
  }

  auto sa = model.new_sequence(capacity), sb = model.new_sequence(capacity),
       sc = model.new_sequence(capacity);
  SequenceState* states[] = {sa.get(), sb.get(), sc.get()};
  {  // B's prompt first, alone, so it decodes one token per step below.
    Batch b;
    b.add(prompt_b, 1, true);
    std::vector<float> logits(static_cast<size_t>(V));
    model.forward(b, states, logits.data());
  }
  size_t c_done = 0;
  for (size_t i = 0; i < steps.size(); ++i) {
    Batch b;
    b.add(std::span<const int32_t>(&decode_b[i % decode_b.size()], 1), 1, true);
    b.add(steps[i], 0, true);
    if (c_done < prompt_c.size()) {
      const size_t n = std::min<size_t>(c_chunk, prompt_c.size() - c_done);
      b.add(std::span(prompt_c).subspan(c_done, n), 2, c_done + n == prompt_c.size());
      c_done += n;
    }
    int64_t rows = 0;
    for (uint8_t w : b.want_logits) rows += w;
    std::vector<float> logits(static_cast<size_t>(rows * V));
    model.forward(b, states, logits.data());
    // A's row is the second (after B's decode token).
    EXPECT_TRUE(bitwise_equal(logits.data() + V, alone[i].data(), V)) << "step " << i;
  }
}

TEST(BatchInvariance, TinyF32Qwen3Next) {
  const Qwen3NextConfig c = test::tiny_next_config();
  const std::string path = test::temp_model_path("invariance_f32");
  test::write_tiny_gguf(test::make_next_weights(c, 11), c, path);
  auto m = load(path);
  check_invariance(*m->model);
}

TEST(BatchInvariance, TinyF32Qwen3Moe) {
  const Qwen3MoeConfig c = test::tiny_moe_config();
  const std::string path = test::temp_model_path("invariance_moe");
  test::write_tiny_gguf(test::make_moe_weights(c, 12, false), c, path);
  auto m = load(path);
  check_invariance(*m->model);
}

// The embedded default model's shape and storage types (Q4_K/Q5_K/Q6_K/Q8_0 mix).
TEST(BatchInvariance, DefaultTinySyntheticQuantized) {
  SynthOptions o;
  o.config = *synth_preset("tiny");
  o.tokenizer_dir = default_tokenizer_dir();
  const std::string path = test::temp_model_path("invariance_synth");
  write_synthetic_model(o, path, pool());
  auto m = load(path);
  check_invariance(*m->model);
  // Large prefill chunks beside A (more tokens per expert, parallel activation quantisation).
  check_invariance(*m->model, 1024, 900, 100);
}

}  // namespace
}  // namespace moerun
