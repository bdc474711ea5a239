// Safetensors reader: round trips, directory views, and every kind of corrupt file refused with an
// Error naming the file (never a crash: these run under ASan/UBSan).
#include <gtest/gtest.h>

#include <filesystem>
#include <initializer_list>
#include <memory>

#include "core/error.h"
#include "gguf_test_util.h"
#include "io/safetensors.h"
#include "safetensors_test_writer.h"

namespace moerun {
namespace {

namespace fs = std::filesystem;
using test::SafetensorsBuilder;

// Parses a heap copy of exactly `image` and returns the error message, or "" when it parsed.
std::string parse_error(const std::vector<uint8_t>& image) {
  std::unique_ptr<uint8_t[]> copy(new uint8_t[image.size() ? image.size() : 1]);
  if (!image.empty()) std::memcpy(copy.get(), image.data(), image.size());
  try {
    SafetensorsFile::parse(copy.get(), image.size(), "bad.safetensors");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

void expect_refused(const std::vector<uint8_t>& image, std::initializer_list<const char*> parts) {
  const std::string msg = parse_error(image);
  ASSERT_FALSE(msg.empty()) << "parsed without error";
  EXPECT_EQ(msg.rfind("bad.safetensors: ", 0), 0u) << msg;
  for (const char* p : parts) {
    EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
  }
}

SafetensorsBuilder sample() {
  SafetensorsBuilder b;
  b.add_f32("a.weight", {2, 3}, {1, 2, 3, 4, 5, 6});
  b.add_bf16("b.weight", {4}, {0.5f, -1.0f, 3.0f, 1e-3f});
  b.add_f16("c", {2}, {0.25f, -2.0f});
  b.add_u8("d", {3}, {7, 8, 9});
  b.add_raw("e", "I32", {1}, {1, 0, 0, 0});
  b.add_raw("empty", "F32", {0, 4}, {});
  b.metadata("format", "pt");
  return b;
}

TEST(Safetensors, ParsesEveryFieldAndConvertsFloats) {
  const std::vector<uint8_t> image = sample().image();
  auto f = SafetensorsFile::parse(image.data(), image.size(), "x.safetensors");
  ASSERT_EQ(f->tensors().size(), 6u);
  EXPECT_EQ(f->metadata().at("format"), "pt");
  const SafetensorsTensor* a = f->find("a.weight");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->dtype, StDType::F32);
  EXPECT_EQ(a->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(a->numel, 6);
  std::vector<float> v(6);
  convert_to_f32(*a, 0, 6, v.data());
  EXPECT_EQ(v, (std::vector<float>{1, 2, 3, 4, 5, 6}));
  convert_to_f32(*a, 4, 2, v.data());
  EXPECT_EQ(v[0], 5.0f);
  EXPECT_EQ(v[1], 6.0f);
  const SafetensorsTensor* b = f->find("b.weight");
  convert_to_f32(*b, 0, 4, v.data());
  EXPECT_EQ(v[0], 0.5f);
  EXPECT_EQ(v[1], -1.0f);
  EXPECT_EQ(v[2], 3.0f);
  EXPECT_NEAR(v[3], 1e-3f, 1e-5f);
  const SafetensorsTensor* c = f->find("c");
  convert_to_f32(*c, 0, 2, v.data());
  EXPECT_EQ(v[0], 0.25f);
  EXPECT_EQ(v[1], -2.0f);
  EXPECT_EQ(f->find("d")->data[2], 9);
  EXPECT_EQ(f->find("e")->dtype, StDType::I32);
  EXPECT_EQ(f->find("empty")->numel, 0);
  EXPECT_EQ(f->find("missing"), nullptr);
  EXPECT_FALSE(st_dtype_is_float(StDType::U8));
  EXPECT_EQ(parse_st_dtype("BF16"), StDType::BF16);
  EXPECT_FALSE(parse_st_dtype("Q4"));
}

TEST(Safetensors, RefusesShortFilesAndBadHeaderLengths) {
  expect_refused({}, {"too short"});
  expect_refused({1, 2, 3}, {"too short"});
  std::vector<uint8_t> image = sample().image();
  uint64_t huge = image.size();  // one more than the header can be
  std::memcpy(image.data(), &huge, 8);
  expect_refused(image, {"header length", "runs past the end"});
  huge = ~uint64_t{0};
  std::memcpy(image.data(), &huge, 8);
  expect_refused(image, {"header length"});
}

TEST(Safetensors, EveryTruncationIsAnErrorNotACrash) {
  const std::vector<uint8_t> image = sample().image();
  for (size_t n = 0; n < image.size(); ++n) {
    const std::vector<uint8_t> cut(image.begin(), image.begin() + static_cast<ptrdiff_t>(n));
    EXPECT_FALSE(parse_error(cut).empty()) << "prefix of " << n << " bytes parsed";
  }
}

TEST(Safetensors, RefusesBadJson) {
  expect_refused(SafetensorsBuilder::assemble("{\"a\": ", {}), {"not valid JSON"});
  expect_refused(SafetensorsBuilder::assemble("[1, 2]", {}), {"not an object"});
  expect_refused(SafetensorsBuilder::assemble(std::string(100, '[') + std::string(100, ']'), {}),
                 {"nested"});
  expect_refused(SafetensorsBuilder::assemble("{\"__metadata__\": {\"k\": 3}}", {}),
                 {"__metadata__", "'k'"});
  expect_refused(SafetensorsBuilder::assemble("{\"t\": 5}", {}), {"'t'", "not an object"});
}

// Replaces one field of one tensor in the sample's header and expects the parse to fail.
void expect_field_refused(const char* tensor, const char* field, const nlohmann::json& value,
                          std::initializer_list<const char*> parts) {
  SafetensorsBuilder b = sample();
  nlohmann::json h = b.header();
  if (value.is_null()) {
    h[tensor].erase(field);
  } else {
    h[tensor][field] = value;
  }
  SCOPED_TRACE(std::string(tensor) + "." + field + " = " + value.dump());
  expect_refused(SafetensorsBuilder::assemble(h.dump(), b.data()), parts);
}

TEST(Safetensors, RefusesBadTensorEntries) {
  expect_field_refused("a.weight", "dtype", "Q4_K", {"'a.weight'", "unknown dtype 'Q4_K'"});
  expect_field_refused("a.weight", "dtype", 3, {"'a.weight'", "dtype"});
  expect_field_refused("a.weight", "dtype", nullptr, {"'a.weight'", "missing field 'dtype'"});
  expect_field_refused("a.weight", "shape", {2, -3}, {"'a.weight'", "shape"});
  expect_field_refused("a.weight", "shape", "2x3", {"'a.weight'", "shape"});
  expect_field_refused("a.weight", "shape", {uint64_t{1} << 40, uint64_t{1} << 40},
                       {"'a.weight'", "too large"});
  expect_field_refused("a.weight", "shape", {3, 3}, {"'a.weight'", "span 24 bytes", "needs 36"});
  expect_field_refused("a.weight", "data_offsets", {0, 100000}, {"'a.weight'", "outside"});
  expect_field_refused("a.weight", "data_offsets", {8, 4}, {"'a.weight'", "outside"});
  expect_field_refused("a.weight", "data_offsets", {0}, {"'a.weight'", "data_offsets"});
  expect_field_refused("a.weight", "data_offsets", {-1, 23}, {"'a.weight'", "data_offsets"});
  expect_field_refused("b.weight", "data_offsets", {16, 24},
                       {"overlap", "'a.weight'", "'b.weight'"});
}

TEST(Safetensors, OpensFilesAndNamesThemInErrors) {
  const std::string path = test::temp_path("one.safetensors");
  sample().write(path);
  auto f = SafetensorsFile::open(path);
  EXPECT_EQ(f->tensors().size(), 6u);
  EXPECT_EQ(f->find("a.weight")->file, path);
  // Released pages (whole pages inside a 64 KiB tensor) are read again from the file.
  SafetensorsBuilder big;
  std::vector<float> values(16384);
  for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(i);
  big.add_f32("small", {3}, {1, 2, 3});
  big.add_f32("big", {16384}, values);
  const std::string big_path = test::temp_path("big.safetensors");
  big.write(big_path);
  auto g = SafetensorsFile::open(big_path);
  EXPECT_TRUE(g->find("big")->mapped);
  std::vector<float> v(16384);
  convert_to_f32(*g->find("big"), 0, 16384, v.data());
  for (const SafetensorsTensor& t : g->tensors()) release_pages(t);
  std::vector<float> again(16384);
  convert_to_f32(*g->find("big"), 0, 16384, again.data());
  EXPECT_EQ(again, values);
  fs::remove(big_path);
  SafetensorsBuilder::write_file(path, {1, 2, 3, 4, 5, 6, 7, 8, 9});
  try {
    SafetensorsFile::open(path);
    FAIL() << "opened a corrupt file";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
  EXPECT_THROW(SafetensorsFile::open(path + ".absent"), Error);
  fs::remove(path);
}

// A fresh empty directory for one test.
std::string fresh_dir(const std::string& name) {
  const std::string dir = test::temp_path(name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

TEST(SafetensorsDir, FindsTensorsInShardsListedByTheIndex) {
  const std::string dir = fresh_dir("sharded");
  SafetensorsBuilder s1, s2;
  s1.add_f32("x", {2}, {1, 2});
  s2.add_f32("y", {1}, {3});
  s2.add_f32("z", {1}, {4});
  s1.write(dir + "/model-00001-of-00002.safetensors");
  s2.write(dir + "/model-00002-of-00002.safetensors");
  nlohmann::json index = {{"metadata", nlohmann::json::object()},
                          {"weight_map",
                           {{"x", "model-00001-of-00002.safetensors"},
                            {"y", "model-00002-of-00002.safetensors"},
                            {"z", "model-00002-of-00002.safetensors"}}}};
  std::ofstream(dir + "/model.safetensors.index.json") << index.dump();
  auto d = SafetensorsDir::open(dir);
  EXPECT_EQ(d->files().size(), 2u);
  EXPECT_EQ(d->names(), (std::vector<std::string>{"x", "y", "z"}));
  float v;
  convert_to_f32(d->get("z"), 0, 1, &v);
  EXPECT_EQ(v, 4.0f);
  EXPECT_EQ(d->find("w"), nullptr);
  EXPECT_THROW(d->get("w"), Error);

  // The index says y is in the first shard, which does not hold it.
  index["weight_map"]["y"] = "model-00001-of-00002.safetensors";
  std::ofstream(dir + "/model.safetensors.index.json") << index.dump();
  try {
    SafetensorsDir::open(dir);
    FAIL() << "opened a directory with a wrong index";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'y'"), std::string::npos) << e.what();
  }
  // A shard the index names does not exist.
  index["weight_map"]["y"] = "model-00003-of-00002.safetensors";
  std::ofstream(dir + "/model.safetensors.index.json") << index.dump();
  EXPECT_THROW(SafetensorsDir::open(dir), Error);
  index["weight_map"]["y"] = "../escape.safetensors";
  std::ofstream(dir + "/model.safetensors.index.json") << index.dump();
  EXPECT_THROW(SafetensorsDir::open(dir), Error);
  std::ofstream(dir + "/model.safetensors.index.json") << "{\"weight_map\": 3}";
  EXPECT_THROW(SafetensorsDir::open(dir), Error);
  fs::remove_all(dir);
}

TEST(SafetensorsDir, UsesModelSafetensorsOrEveryFile) {
  const std::string dir = fresh_dir("plain");
  EXPECT_THROW(SafetensorsDir::open(dir), Error);  // nothing there
  EXPECT_THROW(SafetensorsDir::open(dir + "/absent"), Error);
  SafetensorsBuilder a, b;
  a.add_f32("x", {1}, {1});
  b.add_f32("y", {1}, {2});
  a.write(dir + "/a.safetensors");
  b.write(dir + "/b.safetensors");
  EXPECT_EQ(SafetensorsDir::open(dir)->names(), (std::vector<std::string>{"x", "y"}));
  b.write(dir + "/model.safetensors");  // model.safetensors alone wins over the others
  EXPECT_EQ(SafetensorsDir::open(dir)->names(), (std::vector<std::string>{"y"}));
  fs::remove(dir + "/model.safetensors");
  a.write(dir + "/c.safetensors");  // x twice
  try {
    SafetensorsDir::open(dir);
    FAIL() << "accepted a tensor in two shards";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'x'"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace moerun
