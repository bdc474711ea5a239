// A whole file mapped read-only into memory (the way moerun reads model files without copying).
#pragma once

#include <cstdint>
#include <string>

namespace moerun {

// Owns a read-only mapping of a file; unmapped when destroyed. Empty files map to no memory.
class MappedFile {
 public:
  // Maps `path`; throws Error naming the path when it cannot be opened, is not a regular file or
  // cannot be mapped.
  static MappedFile open(const std::string& path);

  MappedFile() = default;
  ~MappedFile();
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  // First byte of the file (null for an empty file or no mapping).
  const uint8_t* data() const { return static_cast<const uint8_t*>(mapping_); }
  // Bytes in the file.
  uint64_t size() const { return size_; }

 private:
  void* mapping_ = nullptr;
  uint64_t size_ = 0;
};

}  // namespace moerun
