// Helpers for GGUF tests: unique temporary paths, file reading, and hand-built byte images.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

namespace moerun::test {

// A path in the test temp directory unique to this process and `name`.
inline std::string temp_path(const std::string& name) {
  return ::testing::TempDir() + "moerun_io_" + std::to_string(::getpid()) + "_" + name;
}

// The whole content of a file.
inline std::vector<uint8_t> read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Appends little-endian fields to a byte vector, for images the writer would refuse to make.
struct ImageBuilder {
  std::vector<uint8_t> bytes;

  void raw(const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    bytes.insert(bytes.end(), b, b + n);
  }
  void u8(uint8_t v) { raw(&v, 1); }
  void u32(uint32_t v) { raw(&v, 4); }
  void u64(uint64_t v) { raw(&v, 8); }
  void str(std::string_view s) {
    u64(s.size());
    raw(s.data(), s.size());
  }
  // Header: magic, version, counts.
  void header(uint64_t tensor_count, uint64_t kv_count, uint32_t version = 3) {
    raw("GGUF", 4);
    u32(version);
    u64(tensor_count);
    u64(kv_count);
  }
  // A u32 metadata pair.
  void kv_u32(std::string_view key, uint32_t v) {
    str(key);
    u32(4);
    u32(v);
  }
  // One tensor info.
  void tensor(std::string_view name, const std::vector<uint64_t>& ne, uint32_t type,
              uint64_t offset) {
    str(name);
    u32(static_cast<uint32_t>(ne.size()));
    for (uint64_t n : ne) u64(n);
    u32(type);
    u64(offset);
  }
  // Zero bytes up to the next multiple of `alignment`.
  void pad(uint64_t alignment) {
    while (bytes.size() % alignment) bytes.push_back(0);
  }
  // `n` bytes of tensor data.
  void data(size_t n) { bytes.resize(bytes.size() + n, 0x5a); }
};

}  // namespace moerun::test
