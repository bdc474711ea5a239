// Bad input: every malformed GGUF must be refused with an Error naming the culprit, never a crash.
#include <cstdio>
#include <initializer_list>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "core/error.h"
#include "gguf_test_util.h"
#include "io/gguf_file.h"
#include "io/gguf_writer.h"

namespace moerun {
namespace {

using test::ImageBuilder;

// Parses a heap copy of exactly `image` (so sanitizers see any overread) and returns the error
// message, or "" when it parsed.
std::string parse_error(const std::vector<uint8_t>& image) {
  std::unique_ptr<uint8_t[]> copy(new uint8_t[image.size()]);
  if (!image.empty()) std::memcpy(copy.get(), image.data(), image.size());
  try {
    GgufFile::parse(copy.get(), image.size(), "bad.gguf");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// Expects parsing to fail with a one-line message naming the file and containing every part.
void expect_refused(const std::vector<uint8_t>& image, std::initializer_list<const char*> parts) {
  const std::string msg = parse_error(image);
  ASSERT_FALSE(msg.empty()) << "parsed without error";
  EXPECT_EQ(msg.rfind("bad.gguf: ", 0), 0u) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  for (const char* p : parts)
    EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
}

// A valid image with one tensor (f32 {8}) whose fields a test may replace.
std::vector<uint8_t> one_tensor(std::vector<uint64_t> ne = {8}, uint32_t type = 0,
                                uint64_t offset = 0, size_t data_bytes = 32) {
  ImageBuilder b;
  b.header(1, 0);
  b.tensor("blk.0.attn_q.weight", ne, type, offset);
  b.pad(32);
  b.data(data_bytes);
  return b.bytes;
}

TEST(GgufCorrupt, TheBaseImagesAreValid) {
  EXPECT_EQ(parse_error(one_tensor()), "");
}

TEST(GgufCorrupt, EveryTruncationIsRefused) {
  const std::string path = test::temp_path("truncate.gguf");
  {
    GgufWriter w(path);
    w.set("general.name", GgufValue::of_string("tiny"));
    w.set("tokens", GgufValue::of_strings({"a", "bc", ""}));
    w.set("n", GgufValue::of_u32(3));
    w.set("flag", GgufValue::of_bool(false));
    w.set("floats", GgufValue::of_f32s({1, 2}));
    w.add_tensor("q", DType::Q8_0, {32, 2});
    w.add_tensor("last", DType::F32, {8});  // 32 bytes: the file ends without padding
    w.write_header();
    std::vector<uint8_t> zeros(68);
    w.write_tensor_data(zeros.data(), 68);
    w.write_tensor_data(zeros.data(), 32);
    w.finish();
  }
  const std::vector<uint8_t> image = test::read_all(path);
  std::remove(path.c_str());
  ASSERT_EQ(parse_error(image), "");
  for (size_t n = 0; n < image.size(); ++n) {
    const std::vector<uint8_t> prefix(image.begin(), image.begin() + static_cast<ptrdiff_t>(n));
    EXPECT_NE(parse_error(prefix), "") << "prefix of " << n << " bytes parsed";
  }
}

TEST(GgufCorrupt, TooSmall) {
  expect_refused({'G', 'G'}, {"too small"});
}

TEST(GgufCorrupt, WrongMagic) {
  std::vector<uint8_t> image = one_tensor();
  image[0] = 'X';
  expect_refused(image, {"not a GGUF file"});
}

TEST(GgufCorrupt, Version1) {
  ImageBuilder b;
  b.header(0, 0, 1);
  expect_refused(b.bytes, {"version 1"});
}

TEST(GgufCorrupt, UnknownVersion) {
  ImageBuilder b;
  b.header(0, 0, 7);
  expect_refused(b.bytes, {"version 7"});
}

TEST(GgufCorrupt, BigEndian) {
  ImageBuilder b;
  b.header(0, 0, 0x03000000);
  expect_refused(b.bytes, {"big-endian"});
}

TEST(GgufCorrupt, AbsurdTensorCount) {
  ImageBuilder b;
  b.header(uint64_t{1} << 60, 0);
  b.data(100);
  expect_refused(b.bytes, {"tensor count 1152921504606846976"});
}

TEST(GgufCorrupt, AbsurdMetadataCount) {
  ImageBuilder b;
  b.header(0, ~uint64_t{0});
  b.data(100);
  expect_refused(b.bytes, {"metadata count 18446744073709551615"});
}

TEST(GgufCorrupt, AbsurdKeyLength) {
  ImageBuilder b;
  b.header(0, 1);
  b.u64(uint64_t{1} << 62);
  b.data(20);
  expect_refused(b.bytes, {"metadata pair #0", "key", "length 4611686018427387904"});
}

TEST(GgufCorrupt, AbsurdStringValueLength) {
  ImageBuilder b;
  b.header(0, 1);
  b.str("general.name");
  b.u32(8);
  b.u64(~uint64_t{0} - 3);
  b.data(20);
  expect_refused(b.bytes, {"'general.name'", "string value"});
}

TEST(GgufCorrupt, AbsurdTensorNameLength) {
  ImageBuilder b;
  b.header(1, 0);
  b.u64(uint64_t{1} << 40);
  b.data(40);
  expect_refused(b.bytes, {"tensor #0", "name"});
}

TEST(GgufCorrupt, HugeArrayCount) {
  for (uint32_t elem : {0u, 6u, 8u, 12u}) {
    ImageBuilder b;
    b.header(0, 1);
    b.str("tokenizer.ggml.tokens");
    b.u32(9);
    b.u32(elem);
    b.u64(uint64_t{1} << 61);
    b.data(64);
    expect_refused(b.bytes, {"'tokenizer.ggml.tokens'", "array of 2305843009213693952"});
  }
}

TEST(GgufCorrupt, ArrayElementPastTheEnd) {
  ImageBuilder b;
  b.header(0, 1);
  b.str("list");
  b.u32(9);
  b.u32(8);
  b.u64(2);
  b.str("first");
  b.u64(1000);  // second string claims 1000 bytes
  b.data(5);
  expect_refused(b.bytes, {"'list'", "string element"});
}

TEST(GgufCorrupt, NestedArray) {
  ImageBuilder b;
  b.header(0, 1);
  b.str("nested");
  b.u32(9);
  b.u32(9);
  b.u64(1);
  b.data(32);
  expect_refused(b.bytes, {"'nested'", "arrays of arrays"});
}

TEST(GgufCorrupt, UnknownValueType) {
  ImageBuilder b;
  b.header(0, 1);
  b.str("weird");
  b.u32(13);
  b.u32(0);
  expect_refused(b.bytes, {"'weird'", "unknown value type id 13"});
}

TEST(GgufCorrupt, UnknownArrayElementType) {
  ImageBuilder b;
  b.header(0, 1);
  b.str("weird");
  b.u32(9);
  b.u32(99);
  b.u64(0);
  expect_refused(b.bytes, {"'weird'", "element type id 99"});
}

TEST(GgufCorrupt, DuplicateKey) {
  ImageBuilder b;
  b.header(0, 2);
  b.kv_u32("general.x", 1);
  b.kv_u32("general.x", 2);
  expect_refused(b.bytes, {"'general.x'", "twice"});
}

TEST(GgufCorrupt, BadAlignmentValues) {
  for (uint32_t a : {0u, 48u, 3u}) {
    ImageBuilder b;
    b.header(0, 1);
    b.kv_u32("general.alignment", a);
    expect_refused(b.bytes, {"'general.alignment'", "power of two"});
  }
  ImageBuilder b;
  b.header(0, 1);
  b.str("general.alignment");
  b.u32(10);
  b.u64(64);
  expect_refused(b.bytes, {"'general.alignment'", "must be a u32"});
}

TEST(GgufCorrupt, OffsetPastTheEnd) {
  expect_refused(one_tensor({8}, 0, 64),
                 {"'blk.0.attn_q.weight'", "offset 64 + 32 bytes", "past the end of the file"});
  expect_refused(one_tensor({8}, 0, 0, 31), {"'blk.0.attn_q.weight'", "past the end"});
  expect_refused(one_tensor({8}, 0, ~uint64_t{0} - 31), {"'blk.0.attn_q.weight'", "past the end"});
}

TEST(GgufCorrupt, DataSectionPastTheEnd) {
  ImageBuilder b;
  b.header(1, 0);
  b.tensor("w", {0}, 0, 0);  // header ends unaligned and the padding is missing
  ASSERT_NE(b.bytes.size() % 32, 0u);
  expect_refused(b.bytes, {"data section"});
}

TEST(GgufCorrupt, OffsetNotAligned) {
  expect_refused(one_tensor({8}, 0, 4, 64),
                 {"'blk.0.attn_q.weight'", "offset 4", "not a multiple of the alignment 32"});
}

TEST(GgufCorrupt, UnknownTypeId) {
  expect_refused(one_tensor({8}, 200), {"'blk.0.attn_q.weight'", "unknown type id 200"});
  expect_refused(one_tensor({8}, 4), {"'blk.0.attn_q.weight'", "unknown type id 4"});
}

TEST(GgufCorrupt, RowNotAMultipleOfTheBlock) {
  expect_refused(one_tensor({100}, 12, 0, 1024),
                 {"'blk.0.attn_q.weight'", "ne[0] = 100", "block size 256", "q4_K"});
}

TEST(GgufCorrupt, TooManyDims) {
  expect_refused(one_tensor({8, 1, 1, 1, 1}), {"'blk.0.attn_q.weight'", "n_dims 5"});
  expect_refused(one_tensor({}), {"'blk.0.attn_q.weight'", "n_dims 0"});
}

TEST(GgufCorrupt, OverflowingShape) {
  expect_refused(one_tensor({uint64_t{1} << 40, uint64_t{1} << 40}),
                 {"'blk.0.attn_q.weight'", "overflows"});
  expect_refused(one_tensor({uint64_t{1} << 62, 1}), {"'blk.0.attn_q.weight'", "overflows"});
  expect_refused(one_tensor({8, 1u << 31, 1u << 31, 1u << 31}),
                 {"'blk.0.attn_q.weight'", "overflows"});
}

TEST(GgufCorrupt, NegativeDimension) {
  expect_refused(one_tensor({8, ~uint64_t{0}}), {"'blk.0.attn_q.weight'", "dimension 1 is -1"});
}

TEST(GgufCorrupt, DuplicateTensorNames) {
  ImageBuilder b;
  b.header(2, 0);
  b.tensor("output.weight", {8}, 0, 0);
  b.tensor("output.weight", {8}, 0, 32);
  b.pad(32);
  b.data(64);
  expect_refused(b.bytes, {"'output.weight'", "twice"});
}

TEST(GgufCorrupt, EmptyTensorName) {
  ImageBuilder b;
  b.header(1, 0);
  b.tensor("", {8}, 0, 0);
  b.pad(32);
  b.data(32);
  expect_refused(b.bytes, {"tensor #0", "empty name"});
}

TEST(GgufCorrupt, OverlappingTensors) {
  ImageBuilder b;
  b.header(2, 0);
  b.tensor("a", {16}, 0, 0);  // 64 bytes
  b.tensor("b", {8}, 0, 32);
  b.pad(32);
  b.data(64);
  expect_refused(b.bytes, {"'a'", "'b'", "overlap"});
}

TEST(GgufCorrupt, OpenReportsMissingFilesAndDirectories) {
  try {
    GgufFile::open("/nonexistent/model.gguf");
    FAIL() << "opened a missing file";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/model.gguf: cannot open"),
              std::string::npos);
  }
  EXPECT_THROW(GgufFile::open(::testing::TempDir()), Error);
  const std::string empty = test::temp_path("empty_file.gguf");
  std::fclose(std::fopen(empty.c_str(), "wb"));
  EXPECT_THROW(GgufFile::open(empty), Error);
  std::remove(empty.c_str());
}

// Found by the fuzzer: ne = {184549632, 824633720848, 0, 0} has zero bytes, but the product of
// its first two dimensions overflows int64 (Tensor::nelements multiplies left to right).
TEST(GgufCorrupt, ZeroDimensionDoesNotHideAnOverflowingShape) {
  const std::string path =
      std::string(MOERUN_SOURCE_DIR) + "/tests/fuzz/seeds/gguf_zero_dim_overflow.bin";
  try {
    GgufFile::open(path);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("overflows"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace moerun
