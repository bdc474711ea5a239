// Streaming GGUF writer: metadata and tensor descriptions first, then tensor data one at a time.
#pragma once

#include <array>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "io/gguf_value.h"

namespace moerun {

// Writes a GGUF v3 file without holding more than one tensor's data in memory.
// Usage: set() metadata and add_tensor() every tensor, then write_header(), then
// write_tensor_data() for each tensor in the order added, then finish().
class GgufWriter {
 public:
  // Opens `path` for writing (truncates); throws Error on failure.
  explicit GgufWriter(std::string path, uint32_t alignment = 32);
  ~GgufWriter();
  GgufWriter(const GgufWriter&) = delete;
  GgufWriter& operator=(const GgufWriter&) = delete;

  // Sets a metadata key (replacing an earlier value of the same key).
  void set(const std::string& key, GgufValue value);
  // Declares a tensor: name, type and shape (ne[0] contiguous, n_dims 1..4).
  void add_tensor(const std::string& name, DType type, const std::vector<int64_t>& ne);
  // Writes magic, counts, metadata, tensor infos and padding; no more set()/add_tensor() after it.
  void write_header();
  // Writes the data of the next declared tensor; `size` must equal its byte size.
  void write_tensor_data(const void* data, size_t size);
  // Checks that every tensor was written, flushes and closes; throws Error on I/O failure.
  // A writer destroyed before finish() deletes its partial file.
  void finish();

  // Total bytes of tensor data declared so far.
  uint64_t data_bytes() const { return data_size_; }

 private:
  struct PendingTensor {
    std::string name;
    DType type;
    std::vector<int64_t> ne;
    uint64_t offset;
    uint64_t nbytes;
  };
  void write_bytes(const void* data, size_t size);
  void write_string(const std::string& s);
  void write_value(const GgufValue& value);
  void write_padding(uint64_t to);
  void flush_buffer();
  [[noreturn]] void io_failure(const char* what);

  std::string path_;
  uint32_t alignment_;
  std::FILE* file_ = nullptr;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::vector<PendingTensor> tensors_;
  uint64_t data_size_ = 0;
  size_t next_tensor_ = 0;
  bool header_written_ = false;
  uint64_t written_ = 0;         // bytes handed to write_bytes so far
  uint64_t data_start_ = 0;      // file offset of the data section
  std::vector<uint8_t> buffer_;  // pending bytes, flushed when full
  bool finished_ = false;
  bool failed_ = false;             // an I/O error happened; nothing more is written
  bool remove_on_failure_ = false;  // the path is a regular file this writer created
};

}  // namespace moerun
