// Qwen3-Next forward pass: against an independent double-precision reference, both DeltaNet
// layouts, prefill versus decode, several sequences in one batch, the context limit, bad files.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/paths.h"
#include "core/thread_pool.h"
#include "io/gguf_file.h"
#include "model/language_model.h"
#include "model/synthetic_model.h"
#include "tiny_models.h"

namespace moerun {
namespace {

using test::TinyModel;
using test::TinyWriteOptions;

// A model file written for one test and removed after it.
struct ModelFile {
  std::string path;
  std::unique_ptr<GgufFile> file;
  std::unique_ptr<LanguageModel> model;
  ~ModelFile() { std::filesystem::remove(path); }
};

ThreadPool& pool() {
  static ThreadPool p(2, false);
  return p;
}

std::unique_ptr<ModelFile> load_tiny(const TinyModel& m, const Qwen3NextConfig& c,
                                     const std::string& name, const TinyWriteOptions& o = {}) {
  auto f = std::make_unique<ModelFile>();
  f->path = test::temp_model_path(name);
  test::write_tiny_gguf(m, c, f->path, o);
  f->file = GgufFile::open(f->path);
  f->model = load_language_model(*f->file, ModelOptions{&pool(), nullptr});
  return f;
}

std::vector<int32_t> prompt(int n, int vocab, int salt = 0) {
  std::vector<int32_t> ids;
  for (int i = 0; i < n; ++i) ids.push_back((i * 37 + 11 + salt * 53) % vocab);
  return ids;
}

// Logits of every token of `ids`, fed to `state` as one batch.
std::vector<float> run_all(LanguageModel& model, SequenceState& state,
                           const std::vector<int32_t>& ids) {
  Batch b;
  for (int32_t id : ids) b.add(std::span<const int32_t>(&id, 1), 0, true);
  std::vector<float> logits(ids.size() * static_cast<size_t>(model.info().vocab));
  SequenceState* states[] = {&state};
  model.forward(b, states, logits.data());
  return logits;
}

// Logits of `ids` fed one token per forward call.
std::vector<float> run_stepwise(LanguageModel& model, SequenceState& state,
                                const std::vector<int32_t>& ids) {
  std::vector<float> all;
  for (int32_t id : ids) {
    const std::vector<float> one = run_all(model, state, {id});
    all.insert(all.end(), one.begin(), one.end());
  }
  return all;
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

TEST(Qwen3Next, MatchesDoubleReferenceInBothLayouts) {
  const Qwen3NextConfig c = test::tiny_next_config();
  const TinyModel grouped = test::make_next_weights(c, 1);
  const TinyModel split = test::to_qkv_gate_layout(grouped, c);
  const std::vector<int32_t> ids = prompt(12, 97);
  const std::vector<double> ref = test::reference_logits(grouped, c, ids);
  // The reference itself reads either layout the same way.
  EXPECT_LT(max_diff(ref, test::reference_logits(split, c, ids)), 1e-9 * max_abs(ref));
  ASSERT_GT(max_abs(ref), 0.5);

  auto a = load_tiny(grouped, c, "next_ssm_in");
  auto b = load_tiny(split, c, "next_qkv_gate");
  auto sa = a->model->new_sequence(32);
  auto sb = b->model->new_sequence(32);
  const std::vector<float> la = run_all(*a->model, *sa, ids);
  const std::vector<float> lb = run_all(*b->model, *sb, ids);
  // f32 model against the double reference: 2e-5 of the largest logit.
  EXPECT_LT(max_diff(la, ref), 2e-5 * max_abs(ref));
  // The two layouts of the same weights give the same logits to f32 rounding.
  EXPECT_LT(max_diff(la, lb), 1e-6 * max_abs(ref));
  EXPECT_EQ(sa->position(), 12);
}

TEST(Qwen3Next, Q8AndBf16WeightsStayCloseToTheReference) {
  const Qwen3NextConfig c = test::tiny_next_config();
  const TinyModel m = test::to_qkv_gate_layout(test::make_next_weights(c, 2), c);
  const std::vector<int32_t> ids = prompt(6, 97, 1);
  const std::vector<double> ref = test::reference_logits(m, c, ids);
  // bf16 matrices: 8-bit mantissas, so 3% of the largest logit; q8_0 with 8-bit activations: 5%.
  for (auto [type, tol] : {std::pair{DType::BF16, 0.03}, std::pair{DType::Q8_0, 0.05}}) {
    TinyWriteOptions o;
    o.matrix_type = type;
    auto f = load_tiny(m, c, std::string("next_") + std::string(dtype_name(type)), o);
    auto s = f->model->new_sequence(16);
    const std::vector<float> l = run_all(*f->model, *s, ids);
    EXPECT_LT(max_diff(l, ref), tol * max_abs(ref)) << dtype_name(type);
    EXPECT_GT(max_diff(l, ref), 0.0) << "quantisation should change something";
  }
}

TEST(Qwen3Next, PrefillEqualsTokenByTokenDecode) {
  const Qwen3NextConfig c = test::tiny_next_config();
  auto f = load_tiny(test::make_next_weights(c, 3), c, "next_prefill");
  const std::vector<int32_t> ids = prompt(20, 97, 2);
  auto s1 = f->model->new_sequence(32);
  auto s2 = f->model->new_sequence(32);
  // Prefill 15 tokens, then decode 5; against 20 single steps. f32: 1e-5 of the largest logit.
  std::vector<float> a = run_all(*f->model, *s1, {ids.begin(), ids.begin() + 15});
  const std::vector<float> tail = run_stepwise(*f->model, *s1, {ids.begin() + 15, ids.end()});
  a.insert(a.end(), tail.begin(), tail.end());
  const std::vector<float> b = run_stepwise(*f->model, *s2, ids);
  EXPECT_LT(max_diff(a, b), 1e-5 * max_abs(b));
  EXPECT_EQ(s1->position(), 20);
}

TEST(Qwen3Next, BatchedSequencesEqualEachRunAlone) {
  const Qwen3NextConfig c = test::tiny_next_config();
  auto f = load_tiny(test::make_next_weights(c, 4), c, "next_batch");
  LanguageModel& model = *f->model;
  const int64_t V = model.info().vocab;
  const std::vector<int32_t> pa = prompt(9, 97, 3), pb = prompt(5, 97, 4);
  const std::vector<int32_t> next_a = {7, 8, 9}, next_b = {40, 41, 42};

  // Alone: prompt then three steps each.
  auto alone_a = model.new_sequence(32);
  auto alone_b = model.new_sequence(32);
  std::vector<float> ra = run_all(model, *alone_a, pa);
  std::vector<float> rb = run_all(model, *alone_b, pb);
  const std::vector<float> ra2 = run_stepwise(model, *alone_a, next_a);
  const std::vector<float> rb2 = run_stepwise(model, *alone_b, next_b);

  // Together: both prompts in one batch (b first), logits of the last prompt tokens only, then
  // three steps with one token of each sequence per batch.
  auto sa = model.new_sequence(32);
  auto sb = model.new_sequence(32);
  SequenceState* states[] = {sa.get(), sb.get()};
  Batch prefill;
  prefill.add(pb, 1, true);
  prefill.add(pa, 0, true);
  std::vector<float> logits(2 * V);
  model.forward(prefill, states, logits.data());
  const double scale = max_abs(ra);
  auto row = [V](const std::vector<float>& v, int64_t r) {
    return std::vector<float>(v.begin() + r * V, v.begin() + (r + 1) * V);
  };
  // Tolerance 1e-5 of the largest logit (f32; batch composition must not matter).
  EXPECT_LT(max_diff(row(logits, 0), row(rb, 4)), 1e-5 * scale);
  EXPECT_LT(max_diff(row(logits, 1), row(ra, 8)), 1e-5 * scale);
  for (int step = 0; step < 3; ++step) {
    Batch b;
    b.add(std::span<const int32_t>(&next_a[step], 1), 0, true);
    b.add(std::span<const int32_t>(&next_b[step], 1), 1, true);
    model.forward(b, states, logits.data());
    EXPECT_LT(max_diff(row(logits, 0), row(ra2, step)), 1e-5 * scale) << step;
    EXPECT_LT(max_diff(row(logits, 1), row(rb2, step)), 1e-5 * scale) << step;
  }
  EXPECT_EQ(sa->position(), 12);
  EXPECT_EQ(sb->position(), 8);
}

TEST(Qwen3Next, ContextOverflowThrowsAndLeavesStateUsable) {
  const Qwen3NextConfig c = test::tiny_next_config();
  auto f = load_tiny(test::make_next_weights(c, 5), c, "next_ctx");
  LanguageModel& model = *f->model;
  const std::vector<int32_t> ids = prompt(8, 97, 5);
  auto s = model.new_sequence(8);
  EXPECT_EQ(s->capacity(), 8);
  run_all(model, *s, {ids.begin(), ids.begin() + 6});
  try {
    run_all(model, *s, {1, 2, 3});
    FAIL() << "no error past the capacity";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("sequence 0"), std::string::npos) << msg;
    EXPECT_NE(msg.find("capacity is 8"), std::string::npos) << msg;
    EXPECT_NE(msg.find("need 9"), std::string::npos) << msg;
  }
  EXPECT_EQ(s->position(), 6);
  // The state goes on as if the failed call never happened.
  const std::vector<float> tail = run_all(model, *s, {ids.begin() + 6, ids.end()});
  auto fresh = model.new_sequence(8);
  const std::vector<float> whole = run_all(model, *fresh, ids);
  EXPECT_EQ(std::vector<float>(whole.end() - tail.size(), whole.end()), tail);
  // An out-of-range token id is refused the same way; reset starts over.
  EXPECT_THROW(run_all(model, *s, {97}), Error);
  EXPECT_THROW(model.new_sequence(65), Error);
  s->reset();
  EXPECT_EQ(s->position(), 0);
  EXPECT_EQ(run_all(model, *s, ids), whole);
  EXPECT_GT(s->bytes(), 0);
}

TEST(Qwen3Next, BadBatchesAreRefused) {
  const Qwen3NextConfig c = test::tiny_next_config();
  auto f = load_tiny(test::make_next_weights(c, 6), c, "next_badbatch");
  auto g = load_tiny(test::make_next_weights(c, 6), c, "next_badbatch2");
  auto s0 = f->model->new_sequence(16);
  auto s1 = f->model->new_sequence(16);
  auto other = g->model->new_sequence(16);
  std::vector<float> logits(4 * 97);
  const std::vector<int32_t> one = {1};
  {  // a sequence split in two runs
    Batch b;
    b.add(one, 0, true);
    b.add(one, 1, true);
    b.add(one, 0, true);
    SequenceState* states[] = {s0.get(), s1.get()};
    EXPECT_THROW(f->model->forward(b, states, logits.data()), Error);
  }
  {  // a state of another model
    Batch b;
    b.add(one, 0, true);
    SequenceState* states[] = {other.get()};
    EXPECT_THROW(f->model->forward(b, states, logits.data()), Error);
  }
  {  // a sequence index without a state, and one state twice
    Batch b;
    b.add(one, 2, true);
    SequenceState* states[] = {s0.get(), s1.get()};
    EXPECT_THROW(f->model->forward(b, states, logits.data()), Error);
    Batch d;
    d.add(one, 0, true);
    d.add(one, 1, true);
    SequenceState* same[] = {s0.get(), s0.get()};
    EXPECT_THROW(f->model->forward(d, same, logits.data()), Error);
  }
  EXPECT_EQ(s0->position(), 0);
  EXPECT_EQ(s1->position(), 0);
}

// The message of the Error that loading `m` written with `o` throws.
std::string load_error(const TinyModel& m, const Qwen3NextConfig& c, const TinyWriteOptions& o) {
  try {
    load_tiny(m, c, "next_bad", o);
  } catch (const Error& e) {
    std::filesystem::remove(test::temp_model_path("next_bad"));
    return e.what();
  }
  std::filesystem::remove(test::temp_model_path("next_bad"));
  return "";
}

TEST(Qwen3Next, BadFilesGiveClearErrors) {
  const Qwen3NextConfig c = test::tiny_next_config();
  const TinyModel m = test::make_next_weights(c, 7);
  TinyWriteOptions arch;
  arch.architecture = "llama";
  std::string msg = load_error(m, c, arch);
  EXPECT_NE(msg.find("'llama'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("qwen3next, qwen3moe"), std::string::npos) << msg;

  TinyWriteOptions missing;
  missing.skip = "blk.2.ssm_ba.weight";
  msg = load_error(m, c, missing);
  EXPECT_NE(msg.find("'blk.2.ssm_ba.weight' is missing"), std::string::npos) << msg;

  missing.skip = "blk.0.ssm_in.weight";
  msg = load_error(m, c, missing);
  EXPECT_NE(msg.find("blk.0.ssm_in.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("blk.0.attn_qkv.weight"), std::string::npos) << msg;

  TinyWriteOptions shape;
  shape.misshape = "blk.1.attn_k.weight";
  msg = load_error(m, c, shape);
  EXPECT_NE(msg.find("'blk.1.attn_k.weight' has shape {128, 32}, expected {64, 32}"),
            std::string::npos)
      << msg;
  shape.misshape = "blk.3.ffn_down_exps.weight";
  msg = load_error(m, c, shape);
  EXPECT_NE(msg.find("blk.3.ffn_down_exps.weight"), std::string::npos) << msg;
}

// Synthetic files with the real vocabulary, in the storage mixes people use.
TEST(Qwen3Next, SyntheticModelsRunInEveryMixAndLayout) {
  for (auto [types, layout] : {std::pair{TypeMix::q8_0, DeltaNetLayout::qkv_gate},
                               std::pair{TypeMix::bf16, DeltaNetLayout::ssm_in}}) {
    SynthOptions o;
    o.config = *synth_preset("tiny");
    o.config.hidden = 64;
    o.types = types;
    o.layout = layout;
    o.tokenizer_dir = default_tokenizer_dir();
    ModelFile f;
    f.path = test::temp_model_path("synth");
    write_synthetic_model(o, f.path, pool());
    f.file = GgufFile::open(f.path);
    f.model = load_language_model(*f.file, ModelOptions{&pool(), nullptr});
    EXPECT_EQ(f.model->info().architecture, "qwen3next");
    EXPECT_EQ(f.model->info().vocab, 151936);
    EXPECT_EQ(f.model->info().n_experts_used, 4);
    const std::vector<int32_t> ids = {151644, 872, 198, 9707, 11, 1879};
    auto s1 = f.model->new_sequence(16);
    auto s2 = f.model->new_sequence(16);
    const std::vector<float> a = run_all(*f.model, *s1, ids);
    for (float v : a) ASSERT_TRUE(std::isfinite(v));
    EXPECT_GT(max_abs(a), 0.0);
    // Prefill equals decode here too (per-token activation quantisation does not depend on the
    // batch): 1e-4 of the largest logit.
    EXPECT_LT(max_diff(a, run_stepwise(*f.model, *s2, ids)), 1e-4 * max_abs(a));
  }
}

}  // namespace
}  // namespace moerun
