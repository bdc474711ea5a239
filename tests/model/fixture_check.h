// Running a transformers fixture (tools/make_model_fixtures.py): convert the checkpoint, run its
// prompt (logits at every position) and its greedy steps (one token per call), compare with the
// logits transformers computed. Shared by the CPU and the CUDA fixture tests.
#pragma once

#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/thread_pool.h"
#include "io/gguf_file.h"
#include "model/convert_hf.h"
#include "model/language_model.h"

namespace moerun::test {

namespace fs = std::filesystem;

inline std::string fixture_dir(const std::string& name) {
  return std::string(MOERUN_SOURCE_DIR) + "/tests/fixtures/models/" + name;
}

// reference.json and logits.bin of one fixture.
struct Reference {
  std::vector<int32_t> prompt;
  std::vector<int32_t> generated;
  int64_t vocab = 0;
  std::vector<float> logits;  // [prompt + generated, vocab]
};

inline Reference read_reference(const std::string& dir) {
  std::ifstream in(dir + "/reference.json");
  const nlohmann::json j = nlohmann::json::parse(in);
  Reference r;
  r.prompt = j.at("prompt_ids").get<std::vector<int32_t>>();
  r.generated = j.at("generated_ids").get<std::vector<int32_t>>();
  r.vocab = j.at("vocab_size").get<int64_t>();
  std::ifstream bin(dir + "/logits.bin", std::ios::binary);
  const std::string bytes{std::istreambuf_iterator<char>(bin), std::istreambuf_iterator<char>()};
  r.logits.resize(bytes.size() / sizeof(float));
  std::memcpy(r.logits.data(), bytes.data(), r.logits.size() * sizeof(float));
  return r;
}

inline int32_t argmax(const float* row, int64_t n) {
  return static_cast<int32_t>(std::max_element(row, row + n) - row);
}

// Converts fixture `name` with `layout` to `types`, runs the prompt and the reference's greedy
// steps, compares with transformers. When `same_tokens` (lossless conversions) the greedy tokens
// must be identical and every logit within `rel` of the largest reference logit; otherwise the
// relative RMS error of all logits must stay under `rel`.
inline void check_fixture(const std::string& name, DeltaNetLayout layout, double rel,
                          TypeMix types = TypeMix::f32, bool same_tokens = true, bool gpu = false) {
  const std::string dir = fixture_dir(name);
  if (!fs::exists(dir + "/config.json")) {
    GTEST_SKIP() << "fixture " << name << " not present (tools/make_model_fixtures.py)";
  }
  const Reference ref = read_reference(dir);
  const auto n_prompt = static_cast<int64_t>(ref.prompt.size());
  const auto n_gen = static_cast<int64_t>(ref.generated.size());
  const int64_t V = ref.vocab;
  ASSERT_EQ(static_cast<int64_t>(ref.logits.size()), (n_prompt + n_gen) * V);

  ThreadPool pool(2, false);
  const std::string out = (fs::temp_directory_path() /
                           ("moerun_fixture_" + std::to_string(::getpid()) + "_" + name + ".gguf"))
                              .string();
  ConvertOptions options;
  options.layout = layout;
  convert_hf_checkpoint(dir, out, types, pool, {}, options);
  auto file = GgufFile::open(out);
  ModelOptions model_options{&pool, nullptr};
  model_options.gpu.enabled = gpu;
  auto model = load_language_model(*file, model_options);
  ASSERT_EQ(model->info().vocab, V);

  std::vector<float> logits(static_cast<size_t>((n_prompt + n_gen) * V));
  auto state = model->new_sequence(n_prompt + n_gen);
  SequenceState* states[] = {state.get()};
  Batch prompt;
  for (int32_t id : ref.prompt) prompt.add(std::span<const int32_t>(&id, 1), 0, true);
  model->forward(prompt, states, logits.data());
  for (int64_t j = 0; j < n_gen; ++j) {
    const float* last = logits.data() + (n_prompt - 1 + j) * V;
    if (same_tokens) {
      EXPECT_EQ(argmax(last, V), ref.generated[j]) << name << ": greedy step " << j;
    }
    Batch step;
    step.add(std::span<const int32_t>(&ref.generated[j], 1), 0, true);
    model->forward(step, states, logits.data() + (n_prompt + j) * V);
  }
  double scale = 0, worst = 0, err2 = 0, ref2 = 0;
  int64_t worst_row = 0;
  for (size_t i = 0; i < logits.size(); ++i) {
    scale = std::max(scale, std::abs(double(ref.logits[i])));
    const double d = std::abs(double(logits[i]) - double(ref.logits[i]));
    err2 += d * d;
    ref2 += double(ref.logits[i]) * double(ref.logits[i]);
    if (d > worst) {
      worst = d;
      worst_row = static_cast<int64_t>(i) / V;
    }
  }
  const double rms_rel = std::sqrt(err2 / ref2);
  std::printf(
      "%s%s: largest |logit - transformers| %.3g = %.2g of the largest logit %.3g; "
      "relative RMS %.2g\n",
      name.c_str(), gpu ? " (GPU)" : "", worst, worst / scale, scale, rms_rel);
  if (same_tokens) {
    EXPECT_LT(worst, rel * scale) << name << ": worst at row " << worst_row << " (largest logit "
                                  << scale << ")";
  } else {
    EXPECT_LT(rms_rel, rel) << name << ": relative RMS error of the logits";
  }
  file.reset();
  fs::remove(out);
}

}  // namespace moerun::test
