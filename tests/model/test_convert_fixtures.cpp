// Converting the transformers-made fixtures (tools/make_model_fixtures.py): each converts to a
// complete GGUF; the bf16 and NF4 variants agree with the f32 original within their rounding.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "convert_test_util.h"
#include "core/half.h"
#include "model/qwen3_moe_config.h"
#include "model/qwen3_next_config.h"
#include "model/qwen3_next_tensors.h"

namespace moerun {
namespace {

namespace fs = std::filesystem;

std::string fixture_dir(const std::string& name) {
  return std::string(MOERUN_SOURCE_DIR) + "/tests/fixtures/models/" + name;
}

// Copies the fixture to a temp directory (the source tree stays clean), converts it to f32 GGUF.
std::unique_ptr<GgufFile> convert_fixture(const std::string& name) {
  const std::string dir = test::convert_temp("fixture_" + name);
  fs::remove_all(dir);
  fs::copy(fixture_dir(name), dir, fs::copy_options::recursive);
  auto f = test::convert_and_open(dir, TypeMix::f32);
  fs::remove_all(dir);
  return f;
}

#define SKIP_WITHOUT_FIXTURE(name)                                                       \
  if (!fs::exists(fixture_dir(name) + "/config.json")) {                                 \
    GTEST_SKIP() << "fixture " << name << " not present (tools/make_model_fixtures.py)"; \
  }

void expect_complete_qwen3_next(const GgufFile& f) {
  const Qwen3NextConfig c = read_qwen3_next_config(f);
  const std::vector<TensorSpec> specs = qwen3_next_tensor_specs(c, DeltaNetLayout::qkv_gate);
  EXPECT_EQ(f.tensors().size(), specs.size());
  for (const TensorSpec& s : specs) {
    const GgufTensorInfo* t = f.find_tensor(s.name);
    ASSERT_NE(t, nullptr) << s.name;
    for (size_t d = 0; d < s.ne.size(); ++d) EXPECT_EQ(t->view.ne[d], s.ne[d]) << s.name;
  }
}

TEST(ConvertFixtures, EveryQwen3NextFixtureConverts) {
  for (const char* name : {"qwen3next_a", "qwen3next_a_bf16", "qwen3next_a_nf4", "qwen3next_b"}) {
    SCOPED_TRACE(name);
    SKIP_WITHOUT_FIXTURE(name);
    auto f = convert_fixture(name);
    expect_complete_qwen3_next(*f);
  }
}

TEST(ConvertFixtures, Qwen3MoeFixtureConverts) {
  SKIP_WITHOUT_FIXTURE("qwen3moe");
  auto f = convert_fixture("qwen3moe");
  const Qwen3MoeConfig c = read_qwen3_moe_config(*f);
  EXPECT_EQ(c.n_layers, 3);
  EXPECT_EQ(c.n_experts, 8);
  EXPECT_EQ(c.n_experts_used, 3);
  EXPECT_NE(f->find_tensor("blk.2.ffn_down_exps.weight"), nullptr);
  EXPECT_NE(f->find_tensor("output.weight"), nullptr);
}

TEST(ConvertFixtures, Bf16AndNf4VariantsMatchTheF32Original) {
  SKIP_WITHOUT_FIXTURE("qwen3next_a");
  SKIP_WITHOUT_FIXTURE("qwen3next_a_bf16");
  SKIP_WITHOUT_FIXTURE("qwen3next_a_nf4");
  auto a = convert_fixture("qwen3next_a");
  auto bf = convert_fixture("qwen3next_a_bf16");
  auto nf = convert_fixture("qwen3next_a_nf4");
  for (const GgufTensorInfo& t : a->tensors()) {
    SCOPED_TRACE(t.name);
    const std::vector<float> va = test::gguf_values(*a, t.name);
    const std::vector<float> vb = test::gguf_values(*bf, t.name);
    const std::vector<float> vn = test::gguf_values(*nf, t.name);
    ASSERT_EQ(va.size(), vb.size());
    ASSERT_EQ(va.size(), vn.size());
    float max_abs = 0;
    for (float x : va) max_abs = std::max(max_abs, std::fabs(x));
    for (size_t i = 0; i < va.size(); ++i) {
      // bf16 fixture: weights rounded to bf16 before any +1 or -exp transformation.
      const bool transformed =
          t.name.find("norm") != std::string::npos || t.name.find("ssm_a") != std::string::npos;
      if (!transformed) {
        ASSERT_EQ(vb[i], bf16_to_f32(f32_to_bf16(va[i]))) << i;
      } else {
        ASSERT_NEAR(vb[i], va[i], std::fabs(va[i]) / 64.0f + 1e-2f) << i;
      }
      // NF4: 16 levels per block of 64 (bound: half the widest code gap times the block max).
      ASSERT_NEAR(vn[i], va[i], 0.2f * max_abs) << i;
    }
  }
}

}  // namespace
}  // namespace moerun
