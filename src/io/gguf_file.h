// A GGUF file opened read-only and memory-mapped, every field validated against the file size.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/gguf_value.h"
#include "io/mapped_file.h"

namespace moerun {

// Description of one tensor in the file, with a pointer into the mapping.
struct GgufTensorInfo {
  std::string name;
  Tensor view;          // type, shape, data (points into the mapped file)
  uint64_t offset = 0;  // relative to the data section
  uint64_t nbytes = 0;
};

// An open GGUF file; tensors are views into the read-only mapping owned by this object.
// Accepted: versions 2 and 3 (little endian). Checked before use: every count, length and offset
// against the bytes left; value and element type ids (arrays of arrays refused); duplicate keys
// and tensor names; general.alignment (a u32 power of two); n_dims 1..4; each ne in 0..INT64_MAX
// (0 is allowed, as llama.cpp does: an empty tensor); the tensor type id; ne[0] a multiple of the
// block size; sizes without overflow; offsets aligned, inside the file and not overlapping.
// Types moerun cannot compute with still load; consumers check dtype_info(type).supported.
class GgufFile {
 public:
  // Opens, maps and validates `path`; throws Error naming the file and the problem.
  static std::unique_ptr<GgufFile> open(const std::string& path);
  // Parses a GGUF image already in memory (for tests and fuzzing); `bytes` must outlive the object.
  static std::unique_ptr<GgufFile> parse(const uint8_t* bytes, size_t size, std::string label);
  ~GgufFile();
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint64_t file_size() const { return size_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }

  // All key/value pairs, in file order.
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return kv_; }
  // The value of `key`, or null when absent.
  const GgufValue* find(const std::string& key) const;
  // The value of `key`; throws Error naming file and key when absent.
  const GgufValue& get(const std::string& key) const;
  // The value of `key` as a non-negative integer; throws Error naming file and key otherwise.
  uint64_t get_uint(const std::string& key) const;
  // The value of `key` as a number; throws Error naming file and key otherwise.
  double get_number(const std::string& key) const;
  // The value of `key` as a string; throws Error naming file and key otherwise.
  const std::string& get_string(const std::string& key) const;

  // All tensors, in file order.
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  // The tensor called `name`, or null.
  const GgufTensorInfo* find_tensor(const std::string& name) const;
  // The tensor called `name`; throws Error naming file and tensor when absent.
  const GgufTensorInfo& tensor(const std::string& name) const;

 private:
  GgufFile() = default;
  void parse_all();

  std::string path_;
  const uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
  MappedFile mapping_;  // owns the mmap when opened from a path (empty for parse())
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::map<std::string, size_t> kv_index_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t> tensor_index_;
};

}  // namespace moerun
