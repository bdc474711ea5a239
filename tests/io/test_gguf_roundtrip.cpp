// Writer -> reader round trips: every value type, arrays, several tensor types, alignments.
#include <cmath>
#include <cstdio>
#include <limits>

#include <gtest/gtest.h>

#include "core/error.h"
#include "gguf_test_util.h"
#include "io/gguf_file.h"
#include "io/gguf_writer.h"

namespace moerun {
namespace {

struct TensorSpec {
  std::string name;
  DType type;
  std::vector<int64_t> ne;
};

const std::vector<TensorSpec> kTensors = {
    {"a.f32", DType::F32, {7}},
    {"b.f16", DType::F16, {16, 3}},
    {"c.q8_0", DType::Q8_0, {64, 2}},
    {"d.q4_K", DType::Q4_K, {256, 2, 3}},
    {"e.q6_K", DType::Q6_K, {512, 1, 1, 2}},
    {"f.iq2_xxs", DType::IQ2_XXS, {256, 2}},  // loads though moerun cannot compute with it
    {"g.bf16", DType::BF16, {5, 0}},          // zero elements
    {"h.q4_0", DType::Q4_0, {32}},
};

// Deterministic content for tensor `i`, `n` bytes.
std::vector<uint8_t> pattern(size_t i, size_t n) {
  std::vector<uint8_t> v(n);
  for (size_t j = 0; j < n; ++j) v[j] = static_cast<uint8_t>(j * 31 + i * 7 + 1);
  return v;
}

void set_all_types(GgufWriter& w) {
  w.set("t.u8", GgufValue::of_u8(250));
  w.set("t.i8", GgufValue::of_i8(-100));
  w.set("t.u16", GgufValue::of_u16(65000));
  w.set("t.i16", GgufValue::of_i16(-30000));
  w.set("t.u32", GgufValue::of_u32(4000000000u));
  w.set("t.i32", GgufValue::of_i32(-2000000000));
  w.set("t.f32", GgufValue::of_f32(1.5f));
  w.set("t.bool", GgufValue::of_bool(true));
  w.set("t.string", GgufValue::of_string("hello \"gguf\"\n"));
  w.set("t.empty_string", GgufValue::of_string(""));
  w.set("t.u64", GgufValue::of_u64(std::numeric_limits<uint64_t>::max()));
  w.set("t.i64", GgufValue::of_i64(std::numeric_limits<int64_t>::min()));
  w.set("t.f64", GgufValue::of_f64(-2.25e300));
  w.set("a.u8", {GgufType::array, GgufArray{GgufType::u8, std::vector<uint8_t>{1, 2, 255}}});
  w.set("a.i8", {GgufType::array, GgufArray{GgufType::i8, std::vector<int8_t>{-1, 127}}});
  w.set("a.u16", {GgufType::array, GgufArray{GgufType::u16, std::vector<uint16_t>{7}}});
  w.set("a.i16", {GgufType::array, GgufArray{GgufType::i16, std::vector<int16_t>{-7, 8}}});
  w.set("a.u32", {GgufType::array, GgufArray{GgufType::u32, std::vector<uint32_t>{1, 2, 3}}});
  w.set("a.i32", GgufValue::of_i32s({-1, 0, 1}));
  w.set("a.f32", GgufValue::of_f32s({0.5f, -0.25f}));
  w.set("a.bool",
        {GgufType::array, GgufArray{GgufType::boolean, std::vector<bool>{true, false, true}}});
  w.set("a.string", GgufValue::of_strings({"x", "", "yz"}));
  w.set("a.u64", {GgufType::array, GgufArray{GgufType::u64, std::vector<uint64_t>{1ull << 63}}});
  w.set("a.i64", {GgufType::array, GgufArray{GgufType::i64, std::vector<int64_t>{-(1ll << 62)}}});
  w.set("a.f64", {GgufType::array, GgufArray{GgufType::f64, std::vector<double>{3.25, -1e-300}}});
  w.set("a.empty", GgufValue::of_i32s({}));
  w.set("t.replaced", GgufValue::of_u32(1));
  w.set("t.replaced", GgufValue::of_string("second"));
}

void check_all_types(const GgufFile& f) {
  EXPECT_EQ(std::get<uint8_t>(f.get("t.u8").value), 250);
  EXPECT_EQ(std::get<int8_t>(f.get("t.i8").value), -100);
  EXPECT_EQ(std::get<uint16_t>(f.get("t.u16").value), 65000);
  EXPECT_EQ(std::get<int16_t>(f.get("t.i16").value), -30000);
  EXPECT_EQ(std::get<uint32_t>(f.get("t.u32").value), 4000000000u);
  EXPECT_EQ(std::get<int32_t>(f.get("t.i32").value), -2000000000);
  EXPECT_EQ(std::get<float>(f.get("t.f32").value), 1.5f);
  EXPECT_EQ(std::get<bool>(f.get("t.bool").value), true);
  EXPECT_EQ(f.get_string("t.string"), "hello \"gguf\"\n");
  EXPECT_EQ(f.get_string("t.empty_string"), "");
  EXPECT_EQ(f.get_uint("t.u64"), std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(std::get<int64_t>(f.get("t.i64").value), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(f.get_number("t.f64"), -2.25e300);
  auto arr = [&](const char* key) { return f.get(key).as_array(key); };
  EXPECT_EQ(std::get<std::vector<uint8_t>>(arr("a.u8").values), (std::vector<uint8_t>{1, 2, 255}));
  EXPECT_EQ(std::get<std::vector<int8_t>>(arr("a.i8").values), (std::vector<int8_t>{-1, 127}));
  EXPECT_EQ(std::get<std::vector<uint16_t>>(arr("a.u16").values), (std::vector<uint16_t>{7}));
  EXPECT_EQ(std::get<std::vector<int16_t>>(arr("a.i16").values), (std::vector<int16_t>{-7, 8}));
  EXPECT_EQ(std::get<std::vector<uint32_t>>(arr("a.u32").values), (std::vector<uint32_t>{1, 2, 3}));
  EXPECT_EQ(std::get<std::vector<int32_t>>(arr("a.i32").values), (std::vector<int32_t>{-1, 0, 1}));
  EXPECT_EQ(std::get<std::vector<float>>(arr("a.f32").values), (std::vector<float>{0.5f, -0.25f}));
  EXPECT_EQ(std::get<std::vector<bool>>(arr("a.bool").values),
            (std::vector<bool>{true, false, true}));
  EXPECT_EQ(std::get<std::vector<std::string>>(arr("a.string").values),
            (std::vector<std::string>{"x", "", "yz"}));
  EXPECT_EQ(std::get<std::vector<uint64_t>>(arr("a.u64").values),
            (std::vector<uint64_t>{1ull << 63}));
  EXPECT_EQ(std::get<std::vector<int64_t>>(arr("a.i64").values),
            (std::vector<int64_t>{-(1ll << 62)}));
  EXPECT_EQ(std::get<std::vector<double>>(arr("a.f64").values),
            (std::vector<double>{3.25, -1e-300}));
  EXPECT_EQ(arr("a.empty").size(), 0u);
  EXPECT_EQ(arr("a.empty").elem_type, GgufType::i32);
  EXPECT_EQ(f.get_string("t.replaced"), "second");
}

class GgufRoundTrip : public ::testing::TestWithParam<uint32_t> {};

TEST_P(GgufRoundTrip, EveryValueTypeAndTensorSurvives) {
  const uint32_t alignment = GetParam();
  const std::string path = test::temp_path("roundtrip_" + std::to_string(alignment) + ".gguf");
  {
    GgufWriter w(path, alignment);
    set_all_types(w);
    for (const TensorSpec& t : kTensors) w.add_tensor(t.name, t.type, t.ne);
    w.write_header();
    for (size_t i = 0; i < kTensors.size(); ++i) {
      Tensor v{kTensors[i].type, static_cast<int>(kTensors[i].ne.size())};
      for (size_t d = 0; d < kTensors[i].ne.size(); ++d) v.ne[d] = kTensors[i].ne[d];
      const std::vector<uint8_t> bytes = pattern(i, static_cast<size_t>(v.nbytes()));
      w.write_tensor_data(bytes.data(), bytes.size());
    }
    w.finish();
  }
  const std::vector<uint8_t> image = test::read_all(path);
  for (int via_parse = 0; via_parse < 2; ++via_parse) {
    std::unique_ptr<GgufFile> f =
        via_parse ? GgufFile::parse(image.data(), image.size(), "mem") : GgufFile::open(path);
    EXPECT_EQ(f->version(), 3u);
    EXPECT_EQ(f->alignment(), alignment);
    EXPECT_EQ(f->file_size(), image.size());
    EXPECT_EQ(f->data_offset() % alignment, 0u);
    EXPECT_EQ(f->file_size() % alignment, 0u);  // the last tensor is padded too
    EXPECT_EQ(f->find("general.alignment") != nullptr, alignment != 32);
    check_all_types(*f);
    ASSERT_EQ(f->tensors().size(), kTensors.size());
    for (size_t i = 0; i < kTensors.size(); ++i) {
      const GgufTensorInfo& t = f->tensors()[i];
      EXPECT_EQ(t.name, kTensors[i].name);
      EXPECT_EQ(&f->tensor(t.name), &t);
      EXPECT_EQ(t.view.type, kTensors[i].type);
      EXPECT_EQ(t.view.n_dims, static_cast<int>(kTensors[i].ne.size()));
      for (size_t d = 0; d < 4; ++d) {
        EXPECT_EQ(t.view.ne[d], d < kTensors[i].ne.size() ? kTensors[i].ne[d] : 1);
      }
      EXPECT_EQ(t.offset % alignment, 0u);
      EXPECT_EQ(static_cast<int64_t>(t.nbytes), t.view.nbytes());
      const std::vector<uint8_t> want = pattern(i, t.nbytes);
      if (t.nbytes) {
        EXPECT_EQ(0, std::memcmp(t.view.data, want.data(), t.nbytes)) << t.name;
      }
    }
    EXPECT_EQ(f->find_tensor("missing"), nullptr);
    EXPECT_THROW(f->tensor("missing"), Error);
  }
  std::remove(path.c_str());
}

INSTANTIATE_TEST_SUITE_P(Alignments, GgufRoundTrip, ::testing::Values(32u, 64u, 1u, 4096u));

TEST(GgufRoundTrip, EmptyFileHasOnlyAHeader) {
  const std::string path = test::temp_path("empty.gguf");
  {
    GgufWriter w(path);
    w.write_header();
    w.finish();
  }
  std::unique_ptr<GgufFile> f = GgufFile::open(path);
  EXPECT_EQ(f->metadata().size(), 0u);
  EXPECT_EQ(f->tensors().size(), 0u);
  EXPECT_EQ(f->file_size(), 32u);  // 24-byte header padded to 32
  std::remove(path.c_str());
}

TEST(GgufRoundTrip, AlignmentSetAsMetadataMovesOffsets) {
  const std::string path = test::temp_path("align_kv.gguf");
  {
    GgufWriter w(path);
    w.add_tensor("a", DType::F32, {3});
    w.add_tensor("b", DType::F32, {3});
    w.set("general.alignment", GgufValue::of_u32(128));
    w.write_header();
    const float data[3] = {1, 2, 3};
    w.write_tensor_data(data, sizeof(data));
    w.write_tensor_data(data, sizeof(data));
    w.finish();
  }
  std::unique_ptr<GgufFile> f = GgufFile::open(path);
  EXPECT_EQ(f->alignment(), 128u);
  EXPECT_EQ(f->tensor("b").offset, 128u);
  EXPECT_EQ(static_cast<const float*>(f->tensor("b").view.data)[2], 3.0f);
  std::remove(path.c_str());
}

TEST(GgufRoundTrip, Version2IsAccepted) {
  const std::string path = test::temp_path("v2.gguf");
  {
    GgufWriter w(path);
    w.set("k", GgufValue::of_u32(5));
    w.write_header();
    w.finish();
  }
  std::vector<uint8_t> image = test::read_all(path);
  image[4] = 2;
  std::unique_ptr<GgufFile> f = GgufFile::parse(image.data(), image.size(), "v2");
  EXPECT_EQ(f->version(), 2u);
  EXPECT_EQ(f->get_uint("k"), 5u);
  std::remove(path.c_str());
}

}  // namespace
}  // namespace moerun
