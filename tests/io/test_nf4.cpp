// bitsandbytes NF4: a matrix packed in the test following the spec dequantises exactly; every size
// mismatch or bad quant state is an Error naming the weight.
#include <gtest/gtest.h>

#include <filesystem>

#include "core/error.h"
#include "gguf_test_util.h"
#include "io/nf4.h"
#include "safetensors_test_writer.h"

namespace moerun {
namespace {

namespace fs = std::filesystem;
using test::SafetensorsBuilder;

std::vector<float> ramp(int64_t n, float scale) {
  std::vector<float> w(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    w[i] = scale * std::sin(0.37f * static_cast<float>(i)) *
           (1.0f + 0.01f * static_cast<float>(i % 97));
  }
  return w;
}

// Writes `b` as the only file of a fresh directory and opens it.
std::unique_ptr<SafetensorsDir> open_dir(const SafetensorsBuilder& b, const std::string& name) {
  const std::string dir = test::temp_path(name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  b.write(dir + "/model.safetensors");
  return SafetensorsDir::open(dir);
}

TEST(Nf4, DoubleQuantisedMatrixDequantisesExactly) {
  // 8 x 96 = 768 weights: 12 blocks of 64, nested blocks of 5 (so the last one is partial).
  const std::vector<float> w = ramp(8 * 96, 0.3f);
  const test::Nf4Packed p = test::nf4_pack(w, {8, 96}, 64, 5);
  SafetensorsBuilder b;
  p.add_to(b, "m.weight");
  b.add_f32("other.weight", {2}, {1, 2});
  auto dir = open_dir(b, "nf4_exact");
  EXPECT_TRUE(is_nf4_weight(*dir, "m.weight"));
  EXPECT_FALSE(is_nf4_weight(*dir, "other.weight"));
  EXPECT_TRUE(is_bnb_companion("m.weight.absmax"));
  EXPECT_TRUE(is_bnb_companion("m.weight.quant_state.bitsandbytes__nf4"));
  EXPECT_FALSE(is_bnb_companion("m.weight"));
  const Nf4Weight nf4(*dir, "m.weight");
  EXPECT_EQ(nf4.shape(), (std::vector<int64_t>{8, 96}));
  EXPECT_EQ(nf4.numel(), 768);
  std::vector<float> out(768);
  nf4.dequantize(0, 768, out.data());
  for (size_t j = 0; j < out.size(); ++j) ASSERT_EQ(out[j], p.dequantized[j]) << "weight " << j;
  // A range starting on an odd weight, crossing blocks.
  std::vector<float> part(101);
  nf4.dequantize(63, 101, part.data());
  for (size_t j = 0; j < part.size(); ++j) ASSERT_EQ(part[j], p.dequantized[63 + j]);
  // The dequantised values are close to the originals: within half the widest gap of the code
  // book (0.304 / 2, between -1 and -0.696) times the largest weight, plus the nested absmax error.
  float max_abs = 0;
  for (float x : w) max_abs = std::max(max_abs, std::fabs(x));
  for (size_t j = 0; j < w.size(); ++j) EXPECT_NEAR(out[j], w[j], 0.17f * max_abs) << j;
}

TEST(Nf4, HandPackedBlockWithF32Absmax) {
  // One block of 64 with absmax 2: weight j has code j % 16; bytes hold (high, low) nibbles.
  SafetensorsBuilder b;
  std::vector<uint8_t> packed;
  for (int j = 0; j < 64; j += 2)
    packed.push_back(static_cast<uint8_t>(((j % 16) << 4) | ((j + 1) % 16)));
  b.add_u8("h.weight", {32, 1}, packed);
  b.add_f32("h.weight.absmax", {1}, {2.0f});
  const auto& code = test::nf4_code_book();
  b.add_f32("h.weight.quant_map", {16}, std::vector<float>(code.begin(), code.end()));
  const std::string state =
      R"({"quant_type": "nf4", "blocksize": 64, "dtype": "bfloat16", "shape": [4, 16]})";
  b.add_u8("h.weight.quant_state.bitsandbytes__nf4", {static_cast<int64_t>(state.size())},
           std::vector<uint8_t>(state.begin(), state.end()));
  auto dir = open_dir(b, "nf4_hand");
  const Nf4Weight nf4(*dir, "h.weight");
  std::vector<float> out(64);
  nf4.dequantize(0, 64, out.data());
  for (int j = 0; j < 64; ++j) EXPECT_EQ(out[j], code[j % 16] * 2.0f) << j;
  EXPECT_EQ(out[0], -2.0f);
  EXPECT_EQ(out[7], 0.0f);
  EXPECT_EQ(out[15], 2.0f);
}

// Builds the packing of a 4 x 64 matrix, lets `corrupt` change it, and expects an Error that
// names the weight and contains `part`.
template <typename Corrupt>
void expect_refused(const std::string& label, Corrupt corrupt, const char* part) {
  SCOPED_TRACE(label);
  const test::Nf4Packed p = test::nf4_pack(ramp(256, 1.0f), {4, 64});
  SafetensorsBuilder b;
  test::Nf4Packed copy = p;
  nlohmann::json state = {{"quant_type", "nf4"},     {"blocksize", 64},
                          {"dtype", "float32"},      {"shape", {4, 64}},
                          {"nested_blocksize", 256}, {"nested_offset", p.offset}};
  corrupt(copy, state);
  b.add_u8("w.weight", {static_cast<int64_t>(copy.packed.size()), 1}, copy.packed);
  b.add_u8("w.weight.absmax", {static_cast<int64_t>(copy.absmax_codes.size())}, copy.absmax_codes);
  b.add_f32("w.weight.nested_absmax", {static_cast<int64_t>(copy.nested_absmax.size())},
            copy.nested_absmax);
  b.add_f32("w.weight.nested_quant_map", {static_cast<int64_t>(copy.nested_map.size())},
            copy.nested_map);
  const auto& code = test::nf4_code_book();
  b.add_f32("w.weight.quant_map", {16}, std::vector<float>(code.begin(), code.end()));
  const std::string text = state.is_string() ? state.get<std::string>() : state.dump();
  b.add_u8("w.weight.quant_state.bitsandbytes__nf4", {static_cast<int64_t>(text.size())},
           std::vector<uint8_t>(text.begin(), text.end()));
  auto dir = open_dir(b, "nf4_bad");
  try {
    Nf4Weight nf4(*dir, "w.weight");
    FAIL() << "accepted a corrupt NF4 weight";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("w.weight"), std::string::npos) << msg;
    EXPECT_NE(msg.find(part), std::string::npos) << "'" << part << "' not in: " << msg;
  }
}

TEST(Nf4, CorruptPackingsAreErrors) {
  using P = test::Nf4Packed;
  using J = nlohmann::json;
  expect_refused(
      "short packed", [](P& p, J&) { p.packed.pop_back(); }, "packed weight");
  expect_refused(
      "absmax count", [](P& p, J&) { p.absmax_codes.push_back(0); }, "absmax");
  expect_refused(
      "nested absmax count", [](P& p, J&) { p.nested_absmax.push_back(1); }, "nested_absmax");
  expect_refused(
      "nested map size", [](P& p, J&) { p.nested_map.pop_back(); }, "nested_quant_map");
  expect_refused(
      "shape",
      [](P&, J& s) {
        s["shape"] = {4, 65};
      },
      "packed weight");
  expect_refused(
      "zero dim",
      [](P&, J& s) {
        s["shape"] = {4, 0};
      },
      "shape");
  expect_refused(
      "fp4", [](P&, J& s) { s["quant_type"] = "fp4"; }, "quant_type");
  expect_refused(
      "blocksize", [](P&, J& s) { s["blocksize"] = 0; }, "blocksize");
  expect_refused(
      "no offset", [](P&, J& s) { s.erase("nested_offset"); }, "nested_offset");
  expect_refused(
      "no nested block", [](P&, J& s) { s.erase("nested_blocksize"); }, "nested_blocksize");
  expect_refused(
      "bad json", [](P&, J& s) { s = "{\"quant_type\": "; }, "JSON");
  expect_refused(
      "deep json", [](P&, J& s) { s = "[[[[[[[[[[]]]]]]]]]]"; }, "JSON");
}

}  // namespace
}  // namespace moerun
