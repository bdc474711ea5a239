// describe_gguf: the text of `moerun inspect`.
#include <cstdio>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "gguf_test_util.h"
#include "io/gguf_describe.h"
#include "io/gguf_writer.h"

namespace moerun {
namespace {

class GgufDescribe : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = test::temp_path("describe.gguf");
    GgufWriter w(path_);
    w.set("general.architecture", GgufValue::of_string("qwen3next"));
    std::vector<std::string> tokens;
    for (int i = 0; i < 100; ++i) tokens.push_back("t" + std::to_string(i));
    w.set("tokenizer.ggml.tokens", GgufValue::of_strings(tokens));
    w.add_tensor("token_embd.weight", DType::Q8_0, {64, 10});            // 640 params, 680 bytes
    w.add_tensor("blk.0.ffn_up_exps.weight", DType::Q4_K, {256, 4, 8});  // 8192 params
    w.add_tensor("blk.0.ffn_down_exps.weight", DType::Q6_K, {256, 4, 8});
    w.add_tensor("blk.0.attn_norm.weight", DType::F32, {64});
    w.add_tensor("blk.0.odd.weight", DType::IQ2_XXS, {256});
    w.write_header();
    for (int64_t n : {680, 32 * 144, 32 * 210, 256, 66}) {
      std::vector<uint8_t> data(static_cast<size_t>(n));
      w.write_tensor_data(data.data(), data.size());
    }
    w.finish();
    file_ = GgufFile::open(path_);
  }
  void TearDown() override { std::remove(path_.c_str()); }

  std::string path_;
  std::unique_ptr<GgufFile> file_;
};

// Whether `text` holds `part`, comparing runs of spaces as one space (columns may widen).
bool contains(const std::string& text, const std::string& part) {
  auto squeeze = [](const std::string& s) {
    std::string out;
    for (char c : s) {
      if (c != ' ' || out.empty() || out.back() != ' ') out += c;
    }
    return out;
  };
  return squeeze(text).find(squeeze(part)) != std::string::npos;
}

TEST_F(GgufDescribe, ShowsHeaderMetadataTensorsAndTotals) {
  const std::string text = describe_gguf(*file_);
  EXPECT_TRUE(contains(text, "gguf version 3, alignment 32, 2 metadata keys, 5 tensors")) << text;
  EXPECT_TRUE(contains(text, "general.architecture  string \"qwen3next\"")) << text;
  EXPECT_TRUE(contains(text, "[100 strings: \"t0\", \"t1\",")) << text;
  EXPECT_TRUE(contains(text, "\"t7\", ... ]")) << text;
  EXPECT_FALSE(contains(text, "\"t99\"")) << text;
  EXPECT_TRUE(contains(text, "blk.0.ffn_up_exps.weight    q4_K     {256, 4, 8}")) << text;
  EXPECT_TRUE(contains(text, "iq2_xxs")) << text;
  EXPECT_TRUE(contains(text, "(type not supported by moerun)")) << text;
  // 2 expert tensors of 8192 params: 4608 + 6720 bytes.
  EXPECT_TRUE(contains(text, "routed experts (_exps)           2 tensors          16384 params"))
      << text;
  EXPECT_TRUE(contains(text, "11328 bytes")) << text;
  EXPECT_TRUE(contains(text, "embeddings (token_embd)          1 tensors            640 params"))
      << text;
  EXPECT_TRUE(contains(text, "other weights                    2 tensors            320 params"))
      << text;
  EXPECT_TRUE(contains(text, "all tensors                      5 tensors          17344 params"))
      << text;
  EXPECT_TRUE(contains(text, "of unsupported types             1 tensors")) << text;
  EXPECT_TRUE(
      contains(text, fmt::format("file size                  {} bytes", file_->file_size())))
      << text;
}

TEST_F(GgufDescribe, AllShowsEveryElement) {
  const std::string text = describe_gguf(*file_, true);
  EXPECT_TRUE(contains(text, "\"t98\", \"t99\"]")) << text;
}

TEST(FormatBytes, UsesBinaryUnits) {
  EXPECT_EQ(format_bytes(0), "0 B");
  EXPECT_EQ(format_bytes(1023), "1023 B");
  EXPECT_EQ(format_bytes(1536), "1.50 KiB");
  EXPECT_EQ(format_bytes(45ull << 30), "45.00 GiB");
}

TEST_F(GgufDescribe, TensorBytesByCategoryAndPerExpert) {
  const TensorBytes b = tensor_bytes(*file_);
  EXPECT_EQ(b.routed_experts, 32u * 144 + 32u * 210);
  EXPECT_EQ(b.embeddings, 680u);
  EXPECT_EQ(b.dense, 256u + 66u);
  EXPECT_EQ(b.moe_layers, 1);
  EXPECT_EQ(b.experts_per_layer, 8);
  EXPECT_EQ(b.expert_all_layers, (32u * 144 + 32u * 210) / 8);  // 1416 bytes per expert
  EXPECT_EQ(b.largest_expert, 1416u);
  EXPECT_EQ(tensor_category("blk.3.ffn_gate_exps.weight"), TensorCategory::routed_experts);
  EXPECT_EQ(tensor_category("token_embd.weight"), TensorCategory::embeddings);
  EXPECT_EQ(tensor_category("output.weight"), TensorCategory::dense);
}

}  // namespace
}  // namespace moerun
