// The synthetic generator writes a complete, loadable qwen3next GGUF with sane random weights.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/paths.h"
#include "core/quant.h"
#include "core/thread_pool.h"
#include "io/gguf_file.h"
#include "io/gguf_vocab.h"
#include "model/qwen3_next_config.h"
#include "model/synthetic_model.h"

namespace moerun {
namespace {

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("moerun_test_" + name)).string();
}

// A small model with the real vocabulary (hidden 64, so the big embedding stays cheap).
SynthOptions small_options() {
  SynthOptions o;
  o.config = *synth_preset("tiny");
  o.config.hidden = 64;
  o.config.n_layers = 4;
  o.tokenizer_dir = default_tokenizer_dir();
  return o;
}

std::vector<float> dequantized(const GgufTensorInfo& t) {
  std::vector<float> out(static_cast<size_t>(t.view.nelements()));
  dequantize_row(t.view.type, t.view.data, out.data(), t.view.nelements());
  return out;
}

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

TEST(SyntheticModel, TinyPresetIsCompleteAndSane) {
  SynthOptions o;
  o.config = *synth_preset("tiny");
  o.tokenizer_dir = default_tokenizer_dir();
  const std::string path = temp_path("tiny.gguf");
  ThreadPool pool(2);
  uint64_t last_done = 0, last_total = 0;
  write_synthetic_model(o, path, pool, [&](uint64_t d, uint64_t t) {
    EXPECT_GE(d, last_done);
    last_done = d;
    last_total = t;
  });
  EXPECT_EQ(last_done, last_total);

  const auto file = GgufFile::open(path);
  const Qwen3NextConfig c = read_qwen3_next_config(*file);
  EXPECT_EQ(c.n_layers, 4);
  EXPECT_EQ(c.hidden, 256);
  EXPECT_EQ(c.n_experts, 32);
  EXPECT_EQ(c.n_experts_used, 4);
  EXPECT_EQ(c.vocab, 151936);
  EXPECT_EQ(c.linear_value_width(), 256);

  // Every tensor the layout lists is there with the type the mix gives it.
  for (const TensorSpec& s : qwen3_next_tensor_specs(c, DeltaNetLayout::qkv_gate)) {
    const GgufTensorInfo& t = file->tensor(s.name);
    EXPECT_EQ(t.view.type, tensor_type_in_mix(TypeMix::q4_k_m, s)) << s.name;
    for (size_t d = 0; d < s.ne.size(); ++d) EXPECT_EQ(t.view.ne[d], s.ne[d]) << s.name;
  }
  EXPECT_EQ(file->tensor("blk.0.ffn_gate_exps.weight").view.type, DType::Q4_K);
  EXPECT_EQ(file->tensor("output.weight").view.type, DType::Q6_K);
  EXPECT_EQ(file->tensor("blk.0.ffn_gate_inp.weight").view.type, DType::F32);
  EXPECT_EQ(file->find_tensor("blk.0.ssm_in.weight"), nullptr);
  EXPECT_NE(file->find_tensor("blk.3.attn_q.weight"), nullptr);  // layer 3 is attention

  // The real tokenizer is embedded.
  const VocabData vocab = read_vocab(*file);
  EXPECT_EQ(vocab.tokens.size(), 151936u);
  EXPECT_EQ(vocab.eos_id, 151645);
  EXPECT_EQ(vocab.tokens[151644], "<|im_start|>");
  EXPECT_FALSE(vocab.chat_template.empty());
  EXPECT_TRUE(std::get<bool>(file->get("moerun.synthetic").value));

  // Value statistics: norms near 1, A negative, dt bias finite, experts scaled by fan-in.
  for (float v : dequantized(file->tensor("blk.0.attn_norm.weight"))) {
    EXPECT_GE(v, 0.8f);
    EXPECT_LE(v, 1.2f);
  }
  for (float v : dequantized(file->tensor("blk.0.ssm_a"))) {
    EXPECT_LE(v, -1.0f);
    EXPECT_GE(v, -16.0f);
  }
  for (float v : dequantized(file->tensor("blk.0.ssm_dt.bias"))) EXPECT_TRUE(std::isfinite(v));
  const std::vector<float> gate = dequantized(file->tensor("blk.1.ffn_gate_exps.weight"));
  double sum2 = 0;
  for (float v : gate) {
    ASSERT_TRUE(std::isfinite(v));
    sum2 += static_cast<double>(v) * v;
  }
  const double rms = std::sqrt(sum2 / static_cast<double>(gate.size()));
  EXPECT_NEAR(rms, 1.0 / std::sqrt(256.0), 0.1 / std::sqrt(256.0));
  std::filesystem::remove(path);
}

TEST(SyntheticModel, SameSeedSameBytesWhateverTheThreadCount) {
  const SynthOptions o = small_options();
  const std::string a = temp_path("det_a.gguf"), b = temp_path("det_b.gguf");
  ThreadPool one(1), two(2);
  write_synthetic_model(o, a, one);
  write_synthetic_model(o, b, two);
  EXPECT_TRUE(read_all(a) == read_all(b));
  SynthOptions other = o;
  other.seed = 2;
  write_synthetic_model(other, b, two);
  EXPECT_FALSE(read_all(a) == read_all(b));
  std::filesystem::remove(a);
  std::filesystem::remove(b);
}

TEST(SyntheticModel, OlderDeltaNetLayoutAndOtherMixes) {
  SynthOptions o = small_options();
  o.layout = DeltaNetLayout::ssm_in;
  o.types = TypeMix::bf16;
  const std::string path = temp_path("ssm_in.gguf");
  ThreadPool pool(2);
  write_synthetic_model(o, path, pool);
  const auto file = GgufFile::open(path);
  const GgufTensorInfo& in = file->tensor("blk.0.ssm_in.weight");
  EXPECT_EQ(in.view.type, DType::BF16);
  EXPECT_EQ(in.view.ne[1], 2 * o.config.linear_key_width() + 2 * o.config.linear_value_width());
  EXPECT_EQ(file->find_tensor("blk.0.attn_qkv.weight"), nullptr);
  std::filesystem::remove(path);
}

TEST(SyntheticModel, TypeMixFallsBackWhenBlocksDoNotDivide) {
  const TensorSpec narrow{"x", {96, 8}, TensorRole::expert_in};
  EXPECT_EQ(tensor_type_in_mix(TypeMix::q4_k_m, narrow), DType::Q8_0);
  const TensorSpec odd{"y", {100, 8}, TensorRole::expert_in};
  EXPECT_EQ(tensor_type_in_mix(TypeMix::q4_k_m, odd), DType::F32);
  const TensorSpec norm{"n", {256}, TensorRole::norm};
  EXPECT_EQ(tensor_type_in_mix(TypeMix::q8_0, norm), DType::F32);
}

TEST(SyntheticModel, RejectsInconsistentShapes) {
  SynthOptions o = small_options();
  o.config.n_experts_used = o.config.n_experts + 1;
  ThreadPool pool(1);
  EXPECT_THROW(write_synthetic_model(o, temp_path("bad.gguf"), pool), Error);
}

}  // namespace
}  // namespace moerun
