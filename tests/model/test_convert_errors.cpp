// Converter refusals: missing or mis-shaped tensors (all named), unknown architectures, configs
// GGUF cannot express, corrupt safetensors, oversized tokenizers; no output file is left behind.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <initializer_list>

#include <nlohmann/json.hpp>

#include "convert_test_util.h"
#include "core/error.h"
#include "core/paths.h"
#include "hf_checkpoint_builder.h"
#include "io/gguf_vocab.h"
#include "model/convert_hf_config.h"

namespace moerun {
namespace {

namespace fs = std::filesystem;
using test::HfCheckpoint;

// Converts `dir` expecting an Error containing every part, and no output file afterwards.
void expect_refused(const std::string& dir, std::initializer_list<std::string> parts) {
  ThreadPool pool(1, false);
  const std::string out = dir + ".gguf";
  fs::remove(out);
  try {
    convert_hf_checkpoint(dir, out, TypeMix::f32, pool);
    ADD_FAILURE() << "converted without error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const std::string& p : parts) {
      EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
    }
  }
  EXPECT_FALSE(fs::exists(out));
  fs::remove_all(dir);
}

TEST(ConvertErrors, EveryMissingTensorIsNamed) {
  HfCheckpoint c = test::tiny_qwen3_next({});
  c.tensors.erase("model.layers.0.linear_attn.A_log");
  c.tensors.erase("model.layers.1.self_attn.k_norm.weight");
  c.tensors.erase("model.layers.3.mlp.experts.2.up_proj.weight");
  c.tensors.erase("lm_head.weight");
  const std::string dir = test::convert_temp("missing");
  c.write(dir);
  expect_refused(dir, {"4 missing tensors", "model.layers.0.linear_attn.A_log",
                       "model.layers.1.self_attn.k_norm.weight",
                       "model.layers.3.mlp.experts.2.up_proj.weight", "lm_head.weight"});
}

TEST(ConvertErrors, MisShapedAndUnexpectedTensorsAreNamed) {
  HfCheckpoint c = test::tiny_qwen3_next({});
  c.add("model.layers.0.linear_attn.dt_bias", {5});
  c.add("model.layers.0.self_attn.q_proj.weight", {8, 64});  // layer 0 is DeltaNet
  const std::string dir = test::convert_temp("misshaped");
  c.write(dir);
  expect_refused(dir, {"model.layers.0.linear_attn.dt_bias has shape [5] (expected [4])",
                       "unexpected tensor", "model.layers.0.self_attn.q_proj.weight"});
}

TEST(ConvertErrors, UnknownArchitectureIsNamed) {
  HfCheckpoint c = test::tiny_qwen3_moe({});
  c.config["model_type"] = "llama";
  c.config["architectures"] = {"LlamaForCausalLM"};
  const std::string dir = test::convert_temp("llama");
  c.write(dir);
  expect_refused(dir, {"config.json", "unsupported architecture", "'llama'", "LlamaForCausalLM"});
  // Without model_type the architectures list decides.
  HfCheckpoint d = test::tiny_qwen3_moe({});
  d.config.erase("model_type");
  EXPECT_EQ(parse_hf_config(d.config, "c").arch, HfArchitecture::qwen3_moe);
  d.config["architectures"] = {"MixtralForCausalLM"};
  EXPECT_THROW(parse_hf_config(d.config, "c"), Error);
}

TEST(ConvertErrors, ConfigsGgufCannotExpress) {
  auto refused = [](nlohmann::json config, const std::string& part) {
    try {
      parse_hf_config(config, "config.json");
      ADD_FAILURE() << "accepted: " << part;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    }
  };
  const nlohmann::json next = test::tiny_qwen3_next({}).config;
  nlohmann::json c = next;
  c["layer_types"] = {"linear_attention", "full_attention", "full_attention", "linear_attention"};
  refused(c, "cannot be expressed as a full_attention_interval");
  c = next;
  c["layer_types"] = {"linear_attention", "full_attention"};
  refused(c, "layer_types");
  c = next;
  c.erase("hidden_size");
  refused(c, "'hidden_size'");
  c = next;
  c["rope_parameters"]["rope_type"] = "yarn";
  refused(c, "yarn");
  c = next;
  c["quantization_config"] = {{"quant_method", "gptq"}};
  refused(c, "gptq");
  c = next;
  c["quantization_config"] = {{"quant_method", "bitsandbytes"}, {"load_in_8bit", true}};
  refused(c, "4-bit");
  c = next;
  c["mlp_only_layers"] = {1};
  refused(c, "mlp_only_layers");
  c = next;
  c["linear_num_value_heads"] = 3;
  refused(c, "ssm.time_step_rank");
  nlohmann::json moe = test::tiny_qwen3_moe({}).config;
  moe["norm_topk_prob"] = false;
  refused(moe, "norm_topk_prob");
}

TEST(ConvertErrors, ConfigLayoutsAgree) {
  // v5: rope_parameters and layer_types; v4: top-level rope_theta and full_attention_interval.
  test::TinyNextShape v4;
  v4.v4_config = true;
  const HfModelConfig a = parse_hf_config(test::tiny_qwen3_next({}).config, "v5");
  const HfModelConfig b = parse_hf_config(test::tiny_qwen3_next(v4).config, "v4");
  EXPECT_EQ(a.next.full_attention_interval, 2);
  EXPECT_EQ(b.next.full_attention_interval, 2);
  EXPECT_EQ(a.next.rope_dims, 8);
  EXPECT_EQ(b.next.rope_dims, 8);
  EXPECT_EQ(a.next.rope_theta, b.next.rope_theta);
  nlohmann::json q = test::tiny_qwen3_next({}).config;
  q["quantization_config"] = {{"quant_method", "bitsandbytes"},
                              {"load_in_4bit", true},
                              {"bnb_4bit_quant_type", "nf4"},
                              {"llm_int8_skip_modules", {"lm_head", "mlp.gate"}}};
  const HfModelConfig n = parse_hf_config(q, "nf4");
  EXPECT_TRUE(n.quantization.bnb_nf4);
  EXPECT_EQ(n.quantization.skip_modules.size(), 2u);
}

TEST(ConvertErrors, CorruptSafetensorsNamesTheFile) {
  HfCheckpoint c = test::tiny_qwen3_moe({});
  const std::string dir = test::convert_temp("corrupt");
  c.write(dir);
  const std::string file = dir + "/model.safetensors";
  fs::resize_file(file, fs::file_size(file) - 100);  // truncated
  expect_refused(dir, {"model.safetensors", "outside"});
  c.write(dir);
  std::fstream(file, std::ios::in | std::ios::out | std::ios::binary).write("\xff\xff\xff\xff", 4);
  expect_refused(dir, {"model.safetensors", "header length"});
}

TEST(ConvertErrors, MissingConfigAndNonFloatTensors) {
  const std::string dir = test::convert_temp("noconfig");
  fs::remove_all(dir);
  fs::create_directories(dir);
  expect_refused(dir, {"config.json"});
  HfCheckpoint c = test::tiny_qwen3_moe({});
  c.write(dir);
  test::SafetensorsBuilder b;  // replace the embedding by an I32 tensor in a second file
  b.add_raw("extra_table", "I32", {1}, {0, 0, 0, 0});
  b.write(dir + "/zz.safetensors");
  fs::rename(dir + "/model.safetensors", dir + "/aa.safetensors");
  expect_refused(dir, {"unexpected tensor", "extra_table"});
}

TEST(ConvertErrors, TokenizerLargerThanTheVocabularyIsRefused) {
  const std::string tok = default_tokenizer_dir();
  if (!fs::exists(fs::path(tok) / "tokenizer.json")) GTEST_SKIP() << "no tokenizer in " << tok;
  HfCheckpoint c = test::tiny_qwen3_moe({});
  const std::string dir = test::convert_temp("bigtok");
  c.write(dir);
  fs::copy_file(fs::path(tok) / "tokenizer.json", fs::path(dir) / "tokenizer.json");
  expect_refused(dir, {"tokenizer", "vocab_size 80"});
}

TEST(ConvertErrors, TokenizerIsEmbeddedWhenPresent) {
  const std::string tok = default_tokenizer_dir();
  if (!fs::exists(fs::path(tok) / "tokenizer.json")) GTEST_SKIP() << "no tokenizer in " << tok;
  test::TinyMoeShape s;
  s.vocab = 151936;
  s.hidden = 32;
  s.heads = 2;
  s.kv_heads = 1;
  s.layers = 1;
  s.tied = true;
  HfCheckpoint c = test::tiny_qwen3_moe(s);
  const std::string dir = test::convert_temp("tok");
  c.write(dir);
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"}) {
    if (fs::exists(fs::path(tok) / f)) fs::copy_file(fs::path(tok) / f, fs::path(dir) / f);
  }
  std::unique_ptr<GgufFile> g = test::convert_and_open(dir, TypeMix::q8_0);
  const VocabData vocab = read_vocab(*g);
  EXPECT_EQ(static_cast<int64_t>(vocab.tokens.size()), s.vocab);
  EXPECT_EQ(vocab.pre, "qwen2");
  fs::remove_all(dir);
  fs::remove(dir + ".gguf");
}

}  // namespace
}  // namespace moerun
