#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/half.h"

namespace moerun {
namespace {

static_assert(std::endian::native == std::endian::little,
              "moerun reads safetensors on little-endian hosts");

using json = nlohmann::json;

constexpr uint64_t kMaxHeaderBytes = uint64_t{100} << 20;  // the format's own limit (100 MB)
constexpr int kMaxJsonDepth = 16;  // the header is two levels deep; refuse pathological nesting

struct DTypeName {
  StDType type;
  std::string_view name;
  int64_t size;
};

constexpr std::array<DTypeName, 15> kDTypes{{
    {StDType::F64, "F64", 8},
    {StDType::F32, "F32", 4},
    {StDType::F16, "F16", 2},
    {StDType::BF16, "BF16", 2},
    {StDType::I64, "I64", 8},
    {StDType::I32, "I32", 4},
    {StDType::I16, "I16", 2},
    {StDType::I8, "I8", 1},
    {StDType::U64, "U64", 8},
    {StDType::U32, "U32", 4},
    {StDType::U16, "U16", 2},
    {StDType::U8, "U8", 1},
    {StDType::BOOL, "BOOL", 1},
    {StDType::F8_E4M3, "F8_E4M3", 1},
    {StDType::F8_E5M2, "F8_E5M2", 1},
}};

// Refuses JSON nested deeper than kMaxJsonDepth (counts brackets outside strings).
void check_json_depth(const char* p, size_t n, const std::string& label) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < n; ++i) {
    const char c = p[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > kMaxJsonDepth) {
        fail("{}: the JSON header is nested more than {} levels deep", label, kMaxJsonDepth);
      }
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
}

}  // namespace

std::optional<StDType> parse_st_dtype(std::string_view name) {
  for (const DTypeName& d : kDTypes) {
    if (d.name == name) return d.type;
  }
  return std::nullopt;
}

std::string_view st_dtype_name(StDType type) {
  for (const DTypeName& d : kDTypes) {
    if (d.type == type) return d.name;
  }
  return "?";
}

int64_t st_dtype_size(StDType type) {
  for (const DTypeName& d : kDTypes) {
    if (d.type == type) return d.size;
  }
  return 1;
}

bool st_dtype_is_float(StDType type) {
  return type == StDType::F32 || type == StDType::F16 || type == StDType::BF16 ||
         type == StDType::F64;
}

std::string st_shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

void convert_to_f32(const SafetensorsTensor& t, int64_t first, int64_t count, float* out) {
  MOERUN_CHECK(first >= 0 && count >= 0 && first + count <= t.numel);
  const size_t esize = static_cast<size_t>(st_dtype_size(t.dtype));
  const uint8_t* p = t.data + static_cast<size_t>(first) * esize;
  switch (t.dtype) {
    case StDType::F32:
      std::memcpy(out, p, static_cast<size_t>(count) * 4);
      return;
    case StDType::F16:
    case StDType::BF16: {
      const bool bf = t.dtype == StDType::BF16;
      for (int64_t i = 0; i < count; ++i) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        out[i] = bf ? bf16_to_f32(h) : fp16_to_f32(h);
      }
      return;
    }
    case StDType::F64:
      for (int64_t i = 0; i < count; ++i) {
        double d;
        std::memcpy(&d, p + 8 * i, 8);
        out[i] = static_cast<float>(d);
      }
      return;
    default:
      MOERUN_CHECK(false && "convert_to_f32 on a non-float tensor");
  }
}

void release_pages(const SafetensorsTensor& t) {
  if (!t.mapped || t.nbytes == 0) return;
  const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto begin = reinterpret_cast<uintptr_t>(t.data);
  const uintptr_t first = (begin + page - 1) / page * page;
  const uintptr_t last = (begin + t.nbytes) / page * page;
  if (last > first) {
    ::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);  // advice only
  }
}

std::unique_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = path;
  f->mapping_ = MappedFile::open(path);
  f->base_ = f->mapping_.data();
  f->size_ = f->mapping_.size();
  f->parse_all();
  for (SafetensorsTensor& t : f->tensors_) t.mapped = f->mapping_.data() != nullptr;
  return f;
}

std::unique_ptr<SafetensorsFile> SafetensorsFile::parse(const uint8_t* bytes, size_t size,
                                                        std::string label) {
  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = std::move(label);
  f->base_ = bytes;
  f->size_ = size;
  f->parse_all();
  return f;
}

SafetensorsFile::~SafetensorsFile() = default;

const SafetensorsTensor* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

void SafetensorsFile::parse_all() {
  const std::string& label = path_;
  if (size_ < 8) {
    fail("{}: file is {} bytes, too short for the 8-byte header length (truncated?)", label, size_);
  }
  uint64_t header_len;
  std::memcpy(&header_len, base_, 8);
  if (header_len > size_ - 8) {
    fail(
        "{}: header length {} runs past the end of the {}-byte file (truncated or not "
        "safetensors?)",
        label, header_len, size_);
  }
  if (header_len > kMaxHeaderBytes) {
    fail("{}: header length {} exceeds the format's limit of {} bytes", label, header_len,
         kMaxHeaderBytes);
  }
  const char* text = reinterpret_cast<const char*>(base_ + 8);
  check_json_depth(text, header_len, label);
  json header;
  try {
    header = json::parse(text, text + header_len);
  } catch (const json::exception& e) {
    fail("{}: the header is not valid JSON: {}", label, e.what());
  }
  if (!header.is_object()) fail("{}: the header is JSON but not an object", label);

  const uint64_t data_start = 8 + header_len;
  const uint64_t data_size = size_ - data_start;
  struct Range {
    uint64_t begin, end;
    size_t index;
  };
  std::vector<Range> ranges;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const json& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) fail("{}: __metadata__ is not an object", label);
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string()) {
          fail("{}: __metadata__ entry '{}' is not a string", label, m.key());
        }
        metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    if (name.empty()) fail("{}: a tensor has an empty name", label);
    if (!v.is_object()) fail("{}: tensor '{}': entry is not an object", label, name);
    auto field = [&](const char* key) -> const json& {
      auto f = v.find(key);
      if (f == v.end()) fail("{}: tensor '{}': missing field '{}'", label, name, key);
      return *f;
    };
    SafetensorsTensor t;
    t.name = name;
    t.file = path_;
    const json& dtype = field("dtype");
    if (!dtype.is_string()) fail("{}: tensor '{}': dtype is not a string", label, name);
    const std::optional<StDType> type = parse_st_dtype(dtype.get<std::string>());
    if (!type) {
      fail("{}: tensor '{}': unknown dtype '{}'", label, name, dtype.get<std::string>());
    }
    t.dtype = *type;
    const json& shape = field("shape");
    if (!shape.is_array()) fail("{}: tensor '{}': shape is not an array", label, name);
    uint64_t numel = 1;
    for (const json& d : shape) {
      if (!d.is_number_unsigned()) {
        fail("{}: tensor '{}': shape {} has an entry that is not a non-negative integer", label,
             name, shape.dump());
      }
      const uint64_t dim = d.get<uint64_t>();
      if (dim > (uint64_t{1} << 48) || __builtin_mul_overflow(numel, dim, &numel) ||
          numel > (uint64_t{1} << 56)) {
        fail("{}: tensor '{}': shape {} is too large", label, name, shape.dump());
      }
      t.shape.push_back(static_cast<int64_t>(dim));
    }
    t.numel = static_cast<int64_t>(numel);
    const json& offsets = field("data_offsets");
    if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
        !offsets[1].is_number_unsigned()) {
      fail("{}: tensor '{}': data_offsets {} is not a pair of non-negative integers", label, name,
           offsets.dump());
    }
    const uint64_t begin = offsets[0].get<uint64_t>();
    const uint64_t end = offsets[1].get<uint64_t>();
    if (begin > end || end > data_size) {
      fail("{}: tensor '{}': data_offsets [{}, {}] are outside the {}-byte data section", label,
           name, begin, end, data_size);
    }
    const uint64_t expected = numel * static_cast<uint64_t>(st_dtype_size(t.dtype));
    if (end - begin != expected) {
      fail("{}: tensor '{}': data_offsets [{}, {}] span {} bytes but {} {} needs {}", label, name,
           begin, end, end - begin, st_dtype_name(t.dtype), st_shape_string(t.shape), expected);
    }
    t.data = base_ + data_start + begin;
    t.nbytes = end - begin;
    ranges.push_back({begin, end, tensors_.size()});
    tensors_.push_back(std::move(t));
  }
  std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  const Range* prev = nullptr;
  for (const Range& r : ranges) {
    if (r.begin == r.end) continue;  // empty tensors occupy no bytes
    if (prev && r.begin < prev->end) {
      fail("{}: tensors '{}' and '{}' overlap in the data section ([{}, {}] and [{}, {}])", label,
           tensors_[prev->index].name, tensors_[r.index].name, prev->begin, prev->end, r.begin,
           r.end);
    }
    prev = &r;
  }
  std::vector<SafetensorsTensor> sorted;
  sorted.reserve(tensors_.size());
  for (const Range& r : ranges) sorted.push_back(std::move(tensors_[r.index]));
  tensors_ = std::move(sorted);
  for (size_t i = 0; i < tensors_.size(); ++i) index_[tensors_[i].name] = i;
}

std::unique_ptr<SafetensorsDir> SafetensorsDir::open(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) fail("{}: not a directory", dir);
  std::unique_ptr<SafetensorsDir> d(new SafetensorsDir());
  d->dir_ = dir;
  const fs::path root(dir);
  const fs::path index_path = root / "model.safetensors.index.json";
  if (fs::exists(index_path, ec)) {
    std::ifstream in(index_path, std::ios::binary);
    if (!in) fail("{}: cannot read", index_path.string());
    const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    json index;
    try {
      index = json::parse(text);
    } catch (const json::exception& e) {
      fail("{}: not valid JSON: {}", index_path.string(), e.what());
    }
    const auto wm = index.is_object() ? index.find("weight_map") : index.end();
    if (!index.is_object() || wm == index.end() || !wm->is_object()) {
      fail("{}: has no 'weight_map' object", index_path.string());
    }
    std::vector<std::string> shard_names;
    for (auto it = wm->begin(); it != wm->end(); ++it) {
      if (!it.value().is_string()) {
        fail("{}: weight_map entry '{}' is not a file name", index_path.string(), it.key());
      }
      const std::string file = it.value().get<std::string>();
      if (file.empty() || file.find('/') != std::string::npos || file == "." || file == "..") {
        fail("{}: weight_map entry '{}' names '{}', not a file in the directory",
             index_path.string(), it.key(), file);
      }
      if (std::find(shard_names.begin(), shard_names.end(), file) == shard_names.end()) {
        shard_names.push_back(file);
      }
    }
    std::sort(shard_names.begin(), shard_names.end());
    for (const std::string& s : shard_names) d->add_file((root / s).string());
    for (auto it = wm->begin(); it != wm->end(); ++it) {
      const std::string file = it.value().get<std::string>();
      const SafetensorsTensor* t = d->find(it.key());
      if (!t || fs::path(t->file).filename() != file) {
        fail("{}: weight_map says '{}' is in {}, but that file does not hold it",
             index_path.string(), it.key(), file);
      }
    }
    return d;
  }
  if (fs::exists(root / "model.safetensors", ec)) {
    d->add_file((root / "model.safetensors").string());
    return d;
  }
  std::vector<std::string> paths;
  for (const fs::directory_entry& e : fs::directory_iterator(root, ec)) {
    if (e.path().extension() == ".safetensors") paths.push_back(e.path().string());
  }
  if (paths.empty()) {
    fail("{}: no model.safetensors, model.safetensors.index.json or *.safetensors file", dir);
  }
  std::sort(paths.begin(), paths.end());
  for (const std::string& p : paths) d->add_file(p);
  return d;
}

void SafetensorsDir::add_file(const std::string& path) {
  files_.push_back(SafetensorsFile::open(path));
  for (const SafetensorsTensor& t : files_.back()->tensors()) {
    auto [it, inserted] = by_name_.emplace(t.name, &t);
    if (!inserted) {
      fail("{}: tensor '{}' is in both {} and {}", dir_, t.name, it->second->file, t.file);
    }
  }
}

const SafetensorsTensor* SafetensorsDir::find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

const SafetensorsTensor& SafetensorsDir::get(const std::string& name) const {
  const SafetensorsTensor* t = find(name);
  if (!t) fail("{}: no tensor '{}' in the checkpoint", dir_, name);
  return *t;
}

std::vector<std::string> SafetensorsDir::names() const {
  std::vector<std::string> out;
  out.reserve(by_name_.size());
  for (const auto& [name, t] : by_name_) out.push_back(name);
  return out;
}

}  // namespace moerun
