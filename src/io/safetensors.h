// Safetensors files (Hugging Face checkpoints): memory-mapped, every header field validated, and a
// directory view that finds tensors across the shards of one checkpoint.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "io/mapped_file.h"

namespace moerun {

// Element types a safetensors header may name.
enum class StDType {
  F64,
  F32,
  F16,
  BF16,
  I64,
  I32,
  I16,
  I8,
  U64,
  U32,
  U16,
  U8,
  BOOL,
  F8_E4M3,
  F8_E5M2
};

// Parses a safetensors dtype name ("F32", "BF16", ...); nullopt for names the format does not have.
std::optional<StDType> parse_st_dtype(std::string_view name);
// The dtype's name as safetensors writes it.
std::string_view st_dtype_name(StDType type);
// Bytes per element.
int64_t st_dtype_size(StDType type);
// True for F32, F16, BF16 and F64: the types convert_to_f32 reads.
bool st_dtype_is_float(StDType type);

// One tensor of a safetensors file; `data` points into the file's mapping (not aligned).
struct SafetensorsTensor {
  std::string name;
  StDType dtype = StDType::F32;
  std::vector<int64_t> shape;  // torch order: the last dimension is contiguous
  int64_t numel = 0;
  const uint8_t* data = nullptr;  // [numel] elements of dtype, little endian
  uint64_t nbytes = 0;
  std::string file;     // the file holding it, for messages
  bool mapped = false;  // data lies in a file mapping owned by a SafetensorsFile
};

// Drops the whole pages inside a mapped tensor's bytes from this process's resident set (they are
// read again from the file on the next access); does nothing for in-memory images.
void release_pages(const SafetensorsTensor& t);

// Shape as torch prints it, e.g. "[512, 2048]".
std::string st_shape_string(const std::vector<int64_t>& shape);

// Converts elements [first, first + count) of a float tensor (F32/F16/BF16/F64) to f32 in out
// [count]; the caller has checked the dtype and the range.
void convert_to_f32(const SafetensorsTensor& t, int64_t first, int64_t count, float* out);

// An open .safetensors file: 8-byte little-endian header length, JSON header, data section.
class SafetensorsFile {
 public:
  // Opens, maps and validates `path`; throws Error naming the file (and tensor) on bad input.
  static std::unique_ptr<SafetensorsFile> open(const std::string& path);
  // Parses an image already in memory (tests, fuzzing); `bytes` must outlive the object.
  static std::unique_ptr<SafetensorsFile> parse(const uint8_t* bytes, size_t size,
                                                std::string label);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  // All tensors, sorted by their offset in the data section.
  const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }
  // The tensor called `name`, or null.
  const SafetensorsTensor* find(const std::string& name) const;
  // The string pairs of `__metadata__` (empty when absent).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  SafetensorsFile() = default;
  void parse_all();

  std::string path_;
  const uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
  MappedFile mapping_;  // owns the mmap when opened from a path (empty for parse())
  std::vector<SafetensorsTensor> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// The weights of a Hugging Face checkpoint directory: `model.safetensors`, or the shards named by
// `model.safetensors.index.json`, or else every `*.safetensors` file in the directory.
class SafetensorsDir {
 public:
  // Opens every shard; throws Error naming the directory, file or tensor on bad or missing input.
  static std::unique_ptr<SafetensorsDir> open(const std::string& dir);

  const std::string& dir() const { return dir_; }
  // The tensor called `name` in whichever shard holds it, or null.
  const SafetensorsTensor* find(const std::string& name) const;
  // The tensor called `name`; throws Error naming the directory and tensor when absent.
  const SafetensorsTensor& get(const std::string& name) const;
  // Every tensor name, sorted.
  std::vector<std::string> names() const;
  // The shard files opened, in the order read.
  const std::vector<std::unique_ptr<SafetensorsFile>>& files() const { return files_; }

 private:
  SafetensorsDir() = default;
  void add_file(const std::string& path);

  std::string dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const SafetensorsTensor*> by_name_;
};

}  // namespace moerun
