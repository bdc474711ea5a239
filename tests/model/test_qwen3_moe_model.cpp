// Qwen3-MoE forward pass: against the double-precision reference (tied and untied output),
// prefill versus decode, batched sequences, bad files.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "io/gguf_file.h"
#include "model/language_model.h"
#include "tiny_models.h"

namespace moerun {
namespace {

ThreadPool& pool() {
  static ThreadPool p(2, false);
  return p;
}

struct Loaded {
  std::string path;
  std::unique_ptr<GgufFile> file;
  std::unique_ptr<LanguageModel> model;
  ~Loaded() { std::filesystem::remove(path); }
};

std::unique_ptr<Loaded> load(const test::TinyModel& m, const std::string& name,
                             const test::TinyWriteOptions& o = {}) {
  auto l = std::make_unique<Loaded>();
  l->path = test::temp_model_path(name);
  test::write_tiny_gguf(m, test::tiny_moe_config(), l->path, o);
  l->file = GgufFile::open(l->path);
  l->model = load_language_model(*l->file, ModelOptions{&pool(), nullptr});
  return l;
}

std::vector<float> run(LanguageModel& model, SequenceState& state,
                       const std::vector<int32_t>& ids) {
  Batch b;
  for (int32_t id : ids) b.add(std::span<const int32_t>(&id, 1), 0, true);
  std::vector<float> logits(ids.size() * static_cast<size_t>(model.info().vocab));
  SequenceState* states[] = {&state};
  model.forward(b, states, logits.data());
  return logits;
}

template <typename A, typename B>
double max_diff(const A& a, const B& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    m = std::max(m, std::abs(double(a[i]) - double(b[i])));
  }
  return m;
}

template <typename A>
double max_abs(const A& a) {
  double m = 0;
  for (auto v : a) m = std::max(m, std::abs(double(v)));
  return m;
}

const std::vector<int32_t> kPrompt = {3, 50, 7, 96, 0, 12, 12, 81, 33, 5};

TEST(Qwen3Moe, MatchesDoubleReferenceTiedAndUntied) {
  const Qwen3MoeConfig c = test::tiny_moe_config();
  for (bool tied : {false, true}) {
    const test::TinyModel m = test::make_moe_weights(c, 11, tied);
    const std::vector<double> ref = test::reference_logits(m, c, kPrompt);
    ASSERT_GT(max_abs(ref), 0.5);
    auto l = load(m, tied ? "moe_tied" : "moe_untied");
    EXPECT_EQ(l->model->info().architecture, "qwen3moe");
    EXPECT_EQ(l->model->info().n_layers, 3);
    auto s = l->model->new_sequence(16);
    // f32 model against the double reference: 2e-5 of the largest logit.
    EXPECT_LT(max_diff(run(*l->model, *s, kPrompt), ref), 2e-5 * max_abs(ref)) << tied;
  }
}

TEST(Qwen3Moe, PrefillDecodeAndBatchingAgree) {
  const Qwen3MoeConfig c = test::tiny_moe_config();
  auto l = load(test::make_moe_weights(c, 12, false), "moe_prefill");
  LanguageModel& model = *l->model;
  auto s1 = model.new_sequence(16);
  auto s2 = model.new_sequence(16);
  const std::vector<float> whole = run(model, *s1, kPrompt);
  std::vector<float> steps;
  for (int32_t id : kPrompt) {
    const std::vector<float> one = run(model, *s2, {id});
    steps.insert(steps.end(), one.begin(), one.end());
  }
  // f32: 1e-5 of the largest logit.
  EXPECT_LT(max_diff(whole, steps), 1e-5 * max_abs(whole));

  // Two sequences at different positions in one batch.
  auto a = model.new_sequence(16);
  auto b = model.new_sequence(16);
  run(model, *a, {kPrompt.begin(), kPrompt.begin() + 4});
  Batch batch;
  const std::vector<int32_t> rest(kPrompt.begin() + 4, kPrompt.end());
  batch.add(rest, 0, true);
  batch.add(std::vector<int32_t>{kPrompt[0], kPrompt[1]}, 1, true);
  std::vector<float> logits(2 * 97);
  SequenceState* states[] = {a.get(), b.get()};
  model.forward(batch, states, logits.data());
  const int64_t V = 97;
  const std::vector<float> last_a(logits.begin(), logits.begin() + V);
  const std::vector<float> last_b(logits.begin() + V, logits.end());
  EXPECT_LT(max_diff(last_a, std::vector<float>(whole.end() - V, whole.end())),
            1e-5 * max_abs(whole));
  EXPECT_LT(max_diff(last_b, std::vector<float>(whole.begin() + V, whole.begin() + 2 * V)),
            1e-5 * max_abs(whole));
}

TEST(Qwen3Moe, MissingTensorNamesIt) {
  const Qwen3MoeConfig c = test::tiny_moe_config();
  test::TinyWriteOptions o;
  o.skip = "blk.1.ffn_norm.weight";
  try {
    load(test::make_moe_weights(c, 13, false), "moe_missing", o);
    FAIL() << "loaded without blk.1.ffn_norm.weight";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'blk.1.ffn_norm.weight' is missing"), std::string::npos)
        << e.what();
  }
  std::filesystem::remove(test::temp_model_path("moe_missing"));
}

}  // namespace
}  // namespace moerun
