// GgufWriter: misuse and I/O failures are Errors naming the file; unfinished files are removed.
#include <sys/stat.h>

#include <cstdio>

#include <gtest/gtest.h>

#include "core/error.h"
#include "gguf_test_util.h"
#include "io/gguf_file.h"
#include "io/gguf_writer.h"

namespace moerun {
namespace {

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

// Runs `f` and returns the Error message it throws ("" when none).
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(GgufWriter, WrongDataSizeIsRefused) {
  const std::string path = test::temp_path("w_size.gguf");
  GgufWriter w(path);
  w.add_tensor("x", DType::F32, {4});
  w.write_header();
  std::vector<uint8_t> data(15);
  const std::string msg = error_of([&] { w.write_tensor_data(data.data(), data.size()); });
  EXPECT_NE(msg.find("'x' is 16 bytes but 15 were given"), std::string::npos) << msg;
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
}

TEST(GgufWriter, TooManyTensorsAndEarlyFinishAreRefused) {
  const std::string path = test::temp_path("w_count.gguf");
  {
    GgufWriter w(path);
    w.add_tensor("a", DType::F32, {1});
    w.add_tensor("b", DType::F32, {1});
    w.write_header();
    const float v = 1;
    w.write_tensor_data(&v, 4);
    EXPECT_NE(error_of([&] { w.finish(); }).find("1 of 2 tensors"), std::string::npos);
    w.write_tensor_data(&v, 4);
    EXPECT_NE(error_of([&] { w.write_tensor_data(&v, 4); }).find("more tensor data"),
              std::string::npos);
    w.finish();
    EXPECT_NE(error_of([&] { w.finish(); }), "");
  }
  EXPECT_TRUE(exists(path));
  std::remove(path.c_str());
}

TEST(GgufWriter, OrderOfCallsIsEnforced) {
  const std::string path = test::temp_path("w_order.gguf");
  GgufWriter w(path);
  const float v = 1;
  EXPECT_NE(error_of([&] { w.finish(); }), "");
  EXPECT_NE(error_of([&] { w.write_tensor_data(&v, 4); }), "");
  w.add_tensor("a", DType::F32, {1});
  w.write_header();
  EXPECT_NE(error_of([&] { w.write_header(); }), "");
  EXPECT_NE(error_of([&] { w.set("k", GgufValue::of_u32(1)); }).find("'k'"), std::string::npos);
  EXPECT_NE(error_of([&] { w.add_tensor("b", DType::F32, {1}); }).find("'b'"), std::string::npos);
}

TEST(GgufWriter, BadTensorsAreRefused) {
  const std::string path = test::temp_path("w_bad.gguf");
  GgufWriter w(path);
  w.add_tensor("a", DType::F32, {1});
  EXPECT_NE(error_of([&] { w.add_tensor("a", DType::F32, {1}); }).find("twice"), std::string::npos);
  EXPECT_NE(error_of([&] { w.add_tensor("q", DType::Q4_K, {100}); }).find("block size 256"),
            std::string::npos);
  EXPECT_NE(error_of([&] { w.add_tensor("d", DType::F32, {1, 1, 1, 1, 1}); }), "");
  EXPECT_NE(error_of([&] { w.add_tensor("d", DType::F32, {}); }), "");
  EXPECT_NE(error_of([&] {
              w.add_tensor("n", DType::F32, {4, -1});
            }).find("negative"),
            std::string::npos);
  EXPECT_NE(error_of([&] { w.add_tensor("o", DType::F32, {1ll << 40, 1ll << 40}); }), "");
  EXPECT_NE(error_of([&] { w.add_tensor("t", static_cast<DType>(200), {1}); }).find("200"),
            std::string::npos);
  EXPECT_NE(error_of([&] { w.add_tensor(std::string(64, 'x'), DType::F32, {1}); }), "");
  EXPECT_NE(error_of([&] { w.add_tensor("", DType::F32, {1}); }), "");
}

TEST(GgufWriter, BadValuesAreRefused) {
  const std::string path = test::temp_path("w_values.gguf");
  GgufWriter w(path);
  EXPECT_NE(error_of([&] { w.set("general.alignment", GgufValue::of_u32(48)); }), "");
  EXPECT_NE(error_of([&] { w.set("general.alignment", GgufValue::of_u64(64)); }), "");
  EXPECT_NE(error_of([&] { w.set("k", GgufValue{GgufType::u32, std::string("x")}); }), "");
  EXPECT_NE(error_of([&] {
              w.set("k", {GgufType::array, GgufArray{GgufType::u8, std::vector<int32_t>{1}}});
            }),
            "");
  EXPECT_NE(error_of([&] { w.set("", GgufValue::of_u32(1)); }), "");
  EXPECT_THROW(GgufWriter(test::temp_path("w_align.gguf"), 48), Error);
}

TEST(GgufWriter, UnfinishedFileIsRemoved) {
  const std::string path = test::temp_path("w_unfinished.gguf");
  {
    GgufWriter w(path);
    w.add_tensor("a", DType::F32, {1});
    w.write_header();
    EXPECT_TRUE(exists(path));
  }
  EXPECT_FALSE(exists(path));
}

TEST(GgufWriter, UnopenablePathIsAnError) {
  const std::string msg = error_of([] { GgufWriter w("/nonexistent-dir/x.gguf"); });
  EXPECT_NE(msg.find("/nonexistent-dir/x.gguf: cannot open for writing"), std::string::npos) << msg;
}

TEST(GgufWriter, DiskFullIsAnErrorNamingTheFile) {
  if (!exists("/dev/full")) GTEST_SKIP() << "no /dev/full";
  const std::string msg = error_of([] {
    GgufWriter w("/dev/full");
    w.add_tensor("big", DType::F32, {1 << 22});  // 16 MiB: written past the buffer
    w.write_header();
    std::vector<float> data(1 << 22);
    w.write_tensor_data(data.data(), data.size() * 4);
    w.finish();
  });
  EXPECT_NE(msg.find("/dev/full: writing failed"), std::string::npos) << msg;
  EXPECT_TRUE(exists("/dev/full"));  // a device is never removed
}

TEST(GgufWriter, DiskFullDuringSmallWritesIsCaughtAtFinish) {
  if (!exists("/dev/full")) GTEST_SKIP() << "no /dev/full";
  GgufWriter w("/dev/full");
  w.set("k", GgufValue::of_u32(1));
  w.write_header();
  const std::string msg = error_of([&] { w.finish(); });
  EXPECT_NE(msg.find("/dev/full"), std::string::npos) << msg;
}

TEST(GgufWriter, DataBytesCountsAlignedData) {
  GgufWriter w(test::temp_path("w_bytes.gguf"));
  w.add_tensor("a", DType::F32, {3});  // 12 bytes
  EXPECT_EQ(w.data_bytes(), 12u);
  w.add_tensor("b", DType::Q8_0, {32});  // at 32, 34 bytes
  EXPECT_EQ(w.data_bytes(), 66u);
}

}  // namespace
}  // namespace moerun
