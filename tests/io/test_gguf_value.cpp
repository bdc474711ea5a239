// GgufValue accessors and display text.
#include <gtest/gtest.h>

#include "core/error.h"
#include "io/gguf_value.h"

namespace moerun {
namespace {

TEST(GgufValue, AsUintAcceptsNonNegativeIntegersOnly) {
  EXPECT_EQ(GgufValue::of_u8(7).as_uint("k"), 7u);
  EXPECT_EQ(GgufValue::of_i32(5).as_uint("k"), 5u);
  EXPECT_EQ(GgufValue::of_u64(1ull << 63).as_uint("k"), 1ull << 63);
  EXPECT_THROW(GgufValue::of_i64(-1).as_uint("k"), Error);
  EXPECT_THROW(GgufValue::of_f32(1).as_uint("k"), Error);
  EXPECT_THROW(GgufValue::of_bool(true).as_uint("k"), Error);
  try {
    GgufValue::of_string("x").as_uint("llm.block_count");
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(),
                 "metadata key 'llm.block_count': expected an unsigned integer, found a string");
  }
}

TEST(GgufValue, AsNumberStringArray) {
  EXPECT_EQ(GgufValue::of_f32(0.5f).as_number("k"), 0.5);
  EXPECT_EQ(GgufValue::of_i16(-3).as_number("k"), -3.0);
  EXPECT_THROW(GgufValue::of_string("1").as_number("k"), Error);
  EXPECT_EQ(GgufValue::of_string("abc").as_string("k"), "abc");
  EXPECT_THROW(GgufValue::of_u32(1).as_string("k"), Error);
  EXPECT_EQ(GgufValue::of_i32s({1, 2}).as_array("k").size(), 2u);
  EXPECT_THROW(GgufValue::of_u32(1).as_array("k"), Error);
}

TEST(GgufValue, DisplaysScalars) {
  EXPECT_EQ(GgufValue::of_u8(200).to_display(), "200");
  EXPECT_EQ(GgufValue::of_i8(-5).to_display(), "-5");
  EXPECT_EQ(GgufValue::of_f32(1e-6f).to_display(), "1e-06");
  EXPECT_EQ(GgufValue::of_bool(false).to_display(), "false");
  EXPECT_EQ(GgufValue::of_string("a\"b\\\n\x01").to_display(), "\"a\\\"b\\\\\\n\\x01\"");
  EXPECT_EQ(GgufValue::of_string("\xc4\xa0the").to_display(), "\"\xc4\xa0the\"");
}

TEST(GgufValue, AbbreviatesLongStringsAtCharacterBoundaries) {
  const std::string s = "ab\xc4\xa0" + std::string(10, 'x');
  EXPECT_EQ(GgufValue::of_string(s).to_display(8, 3), "\"ab\"... (14 bytes)");
  EXPECT_EQ(GgufValue::of_string(s).to_display(8, 4), "\"ab\xc4\xa0\"... (14 bytes)");
}

TEST(GgufValue, DisplaysArrays) {
  std::vector<std::string> tokens(151936, "t");
  tokens[0] = "!";
  tokens[1] = "\"";
  tokens[2] = "#";
  EXPECT_EQ(GgufValue::of_strings(tokens).to_display(3),
            "[151936 strings: \"!\", \"\\\"\", \"#\", ... ]");
  EXPECT_EQ(GgufValue::of_i32s({1, 2, 3}).to_display(), "[3 i32: 1, 2, 3]");
  EXPECT_EQ(GgufValue::of_i32s({}).to_display(), "[0 i32]");
  EXPECT_EQ(GgufValue::of_i32s({1, 2}).to_display(0), "[2 i32: ... ]");
  GgufValue bools{GgufType::array, GgufArray{GgufType::boolean, std::vector<bool>{true, false}}};
  EXPECT_EQ(bools.to_display(), "[2 bool: true, false]");
  GgufValue bytes{GgufType::array, GgufArray{GgufType::u8, std::vector<uint8_t>{65, 255}}};
  EXPECT_EQ(bytes.to_display(), "[2 u8: 65, 255]");
}

TEST(GgufValue, TypeNames) {
  EXPECT_STREQ(gguf_type_name(GgufType::boolean), "bool");
  EXPECT_STREQ(gguf_type_name(GgufType::f64), "f64");
  EXPECT_STREQ(gguf_type_name(static_cast<GgufType>(77)), "unknown");
}

}  // namespace
}  // namespace moerun
