#include "io/gguf_file.h"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <limits>

#include "core/error.h"

namespace moerun {
namespace {

static_assert(std::endian::native == std::endian::little,
              "moerun reads GGUF on little-endian hosts");

constexpr uint64_t kHeaderBytes = 24;            // magic, version, tensor_count, kv_count
constexpr uint64_t kMinPairBytes = 13;           // key length (8) + type (4) + smallest value (1)
constexpr uint64_t kMinTensorBytes = 32;         // name length, n_dims, one ne, type, offset
constexpr size_t kMaxReserve = size_t{1} << 16;  // never reserve more on the word of a count

// Bounds-checked little-endian reads from the image; errors name the file and what was read.
class Cursor {
 public:
  Cursor(const uint8_t* base, uint64_t size, const std::string& label)
      : base_(base), size_(size), label_(label) {}

  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return size_ - pos_; }
  // What is being read, for messages ("metadata 'general.name'", "tensor 'x'").
  void set_context(std::string context) { context_ = std::move(context); }
  const std::string& context() const { return context_; }

  // Throws unless `n` more bytes are available for `what`.
  void need(uint64_t n, const char* what) const {
    if (n > remaining()) {
      fail("{}: {}{}{} at offset {} needs {} bytes but the file ends at {} (truncated?)", label_,
           context_, context_.empty() ? "" : ": ", what, pos_, n, size_);
    }
  }

  template <typename T>
  T read(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, base_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  std::string read_string(const char* what) {
    const uint64_t len = read<uint64_t>(what);
    if (len > remaining()) {
      fail("{}: {}{}{} at offset {} has length {} but only {} bytes remain", label_, context_,
           context_.empty() ? "" : ": ", what, pos_ - 8, len, remaining());
    }
    std::string s(reinterpret_cast<const char*>(base_ + pos_), len);
    pos_ += len;
    return s;
  }

  // Copies `n` elements of T (already bounds-checked by the caller) into `out`.
  template <typename T>
  void read_pod_array(std::vector<T>& out, uint64_t n) {
    out.resize(n);
    if (n) std::memcpy(out.data(), base_ + pos_, n * sizeof(T));
    pos_ += n * sizeof(T);
  }

 private:
  const uint8_t* base_;
  uint64_t size_;
  uint64_t pos_ = 0;
  const std::string& label_;
  std::string context_;
};

// Size in the file of one element of scalar type `t` (strings: the smallest, an empty one).
uint64_t min_element_bytes(GgufType t) {
  switch (t) {
    case GgufType::u8:
    case GgufType::i8:
    case GgufType::boolean:
      return 1;
    case GgufType::u16:
    case GgufType::i16:
      return 2;
    case GgufType::u32:
    case GgufType::i32:
    case GgufType::f32:
      return 4;
    case GgufType::u64:
    case GgufType::i64:
    case GgufType::f64:
    case GgufType::string:
      return 8;
    case GgufType::array:
      return 12;
  }
  return 1;
}

bool is_known_type(uint32_t id) {
  return id <= static_cast<uint32_t>(GgufType::f64);
}

// Reads one scalar of type `t` (not an array).
GgufValue read_scalar(Cursor& c, GgufType t) {
  switch (t) {
    case GgufType::u8:
      return GgufValue::of_u8(c.read<uint8_t>("u8 value"));
    case GgufType::i8:
      return GgufValue::of_i8(c.read<int8_t>("i8 value"));
    case GgufType::u16:
      return GgufValue::of_u16(c.read<uint16_t>("u16 value"));
    case GgufType::i16:
      return GgufValue::of_i16(c.read<int16_t>("i16 value"));
    case GgufType::u32:
      return GgufValue::of_u32(c.read<uint32_t>("u32 value"));
    case GgufType::i32:
      return GgufValue::of_i32(c.read<int32_t>("i32 value"));
    case GgufType::f32:
      return GgufValue::of_f32(c.read<float>("f32 value"));
    case GgufType::boolean:
      return GgufValue::of_bool(c.read<uint8_t>("bool value") != 0);
    case GgufType::string:
      return GgufValue::of_string(c.read_string("string value"));
    case GgufType::u64:
      return GgufValue::of_u64(c.read<uint64_t>("u64 value"));
    case GgufType::i64:
      return GgufValue::of_i64(c.read<int64_t>("i64 value"));
    case GgufType::f64:
      return GgufValue::of_f64(c.read<double>("f64 value"));
    case GgufType::array:
      break;
  }
  MOERUN_CHECK(false);
  return {};
}

// Reads an array's element type, count and elements (arrays of arrays are refused).
GgufArray read_array(Cursor& c, const std::string& label) {
  const uint32_t elem = c.read<uint32_t>("array element type");
  if (!is_known_type(elem))
    fail("{}: {}: unknown array element type id {}", label, c.context(), elem);
  const auto t = static_cast<GgufType>(elem);
  if (t == GgufType::array) fail("{}: {}: arrays of arrays are not supported", label, c.context());
  const uint64_t count = c.read<uint64_t>("array count");
  const uint64_t min_bytes = min_element_bytes(t);
  if (count > c.remaining() / min_bytes) {
    fail("{}: {}: array of {} {} elements cannot fit in the {} bytes left in the file", label,
         c.context(), count, gguf_type_name(t), c.remaining());
  }
  GgufArray a;
  a.elem_type = t;
  switch (t) {
    case GgufType::u8:
      c.read_pod_array(a.values.emplace<std::vector<uint8_t>>(), count);
      break;
    case GgufType::i8:
      c.read_pod_array(a.values.emplace<std::vector<int8_t>>(), count);
      break;
    case GgufType::u16:
      c.read_pod_array(a.values.emplace<std::vector<uint16_t>>(), count);
      break;
    case GgufType::i16:
      c.read_pod_array(a.values.emplace<std::vector<int16_t>>(), count);
      break;
    case GgufType::u32:
      c.read_pod_array(a.values.emplace<std::vector<uint32_t>>(), count);
      break;
    case GgufType::i32:
      c.read_pod_array(a.values.emplace<std::vector<int32_t>>(), count);
      break;
    case GgufType::f32:
      c.read_pod_array(a.values.emplace<std::vector<float>>(), count);
      break;
    case GgufType::u64:
      c.read_pod_array(a.values.emplace<std::vector<uint64_t>>(), count);
      break;
    case GgufType::i64:
      c.read_pod_array(a.values.emplace<std::vector<int64_t>>(), count);
      break;
    case GgufType::f64:
      c.read_pod_array(a.values.emplace<std::vector<double>>(), count);
      break;
    case GgufType::boolean: {
      auto& v = a.values.emplace<std::vector<bool>>();
      v.reserve(count);
      for (uint64_t i = 0; i < count; ++i) v.push_back(c.read<uint8_t>("bool element") != 0);
      break;
    }
    case GgufType::string: {
      auto& v = a.values.emplace<std::vector<std::string>>();
      v.reserve(std::min<uint64_t>(count, kMaxReserve));
      for (uint64_t i = 0; i < count; ++i) v.push_back(c.read_string("string element"));
      break;
    }
    case GgufType::array:
      break;
  }
  return a;
}

// a * b, or nullopt when it overflows int64.
std::optional<int64_t> checked_mul(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) return std::nullopt;
  return r;
}

}  // namespace

std::unique_ptr<GgufFile> GgufFile::open(const std::string& path) {
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->path_ = path;
  f->mapping_ = MappedFile::open(path);
  f->base_ = f->mapping_.data();
  f->size_ = f->mapping_.size();
  f->parse_all();
  return f;
}

std::unique_ptr<GgufFile> GgufFile::parse(const uint8_t* bytes, size_t size, std::string label) {
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->path_ = std::move(label);
  f->base_ = bytes;
  f->size_ = size;
  f->parse_all();
  return f;
}

GgufFile::~GgufFile() = default;

void GgufFile::parse_all() {
  const std::string& file = path_;
  if (size_ < kHeaderBytes) {
    fail("{}: file is too small to be GGUF ({} bytes, the header alone is {})", file, size_,
         kHeaderBytes);
  }
  Cursor c(base_, size_, path_);
  const uint32_t magic = c.read<uint32_t>("magic");
  if (std::memcmp(&magic, "GGUF", 4) != 0) {
    fail("{}: not a GGUF file (magic is {:02x} {:02x} {:02x} {:02x}, expected 'GGUF')", file,
         base_[0], base_[1], base_[2], base_[3]);
  }
  version_ = c.read<uint32_t>("version");
  if (version_ == 1) {
    fail("{}: GGUF version 1 is not supported (only versions 2 and 3)", file);
  }
  if (version_ != 2 && version_ != 3) {
    if (__builtin_bswap32(version_) == 2 || __builtin_bswap32(version_) == 3) {
      fail("{}: big-endian GGUF files are not supported", file);
    }
    fail("{}: unsupported GGUF version {} (only versions 2 and 3)", file, version_);
  }
  const uint64_t tensor_count = c.read<uint64_t>("tensor count");
  const uint64_t kv_count = c.read<uint64_t>("metadata count");
  if (kv_count > c.remaining() / kMinPairBytes) {
    fail("{}: metadata count {} is impossible: {} bytes remain and a pair takes at least {}", file,
         kv_count, c.remaining(), kMinPairBytes);
  }
  if (tensor_count > c.remaining() / kMinTensorBytes ||
      kv_count * kMinPairBytes + tensor_count * kMinTensorBytes > c.remaining()) {
    fail("{}: tensor count {} is impossible: {} bytes remain and a tensor takes at least {}", file,
         tensor_count, c.remaining(), kMinTensorBytes);
  }

  // Metadata.
  for (uint64_t i = 0; i < kv_count; ++i) {
    c.set_context(fmt::format("metadata pair #{}", i));
    std::string key = c.read_string("key");
    c.set_context(fmt::format("metadata '{}'", key));
    if (kv_index_.count(key)) fail("{}: metadata key '{}' appears twice", file, key);
    const uint32_t type_id = c.read<uint32_t>("value type");
    if (!is_known_type(type_id)) {
      fail("{}: metadata '{}': unknown value type id {}", file, key, type_id);
    }
    const auto type = static_cast<GgufType>(type_id);
    GgufValue value;
    if (type == GgufType::array) {
      value.type = GgufType::array;
      value.value = read_array(c, file);
    } else {
      value = read_scalar(c, type);
    }
    kv_index_.emplace(key, kv_.size());
    kv_.emplace_back(std::move(key), std::move(value));
  }

  if (const GgufValue* a = find("general.alignment")) {
    if (a->type != GgufType::u32) {
      fail("{}: metadata 'general.alignment' must be a u32, found a {}", file,
           gguf_type_name(a->type));
    }
    const uint32_t v = std::get<uint32_t>(a->value);
    if (v == 0 || !std::has_single_bit(v)) {
      fail("{}: metadata 'general.alignment' is {}, not a power of two", file, v);
    }
    alignment_ = v;
  }

  // Tensor infos.
  for (uint64_t i = 0; i < tensor_count; ++i) {
    c.set_context(fmt::format("tensor #{}", i));
    GgufTensorInfo t;
    t.name = c.read_string("name");
    if (t.name.empty()) fail("{}: tensor #{} has an empty name", file, i);
    c.set_context(fmt::format("tensor '{}'", t.name));
    if (tensor_index_.count(t.name)) fail("{}: tensor '{}' appears twice", file, t.name);
    const uint32_t n_dims = c.read<uint32_t>("n_dims");
    if (n_dims < 1 || n_dims > 4) {
      fail("{}: tensor '{}': n_dims {} is not in 1..4", file, t.name, n_dims);
    }
    t.view.n_dims = static_cast<int>(n_dims);
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t ne = c.read<uint64_t>("dimension");
      if (ne > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        fail("{}: tensor '{}': dimension {} is {} (negative or too large)", file, t.name, d,
             static_cast<int64_t>(ne));
      }
      t.view.ne[d] = static_cast<int64_t>(ne);
    }
    const uint32_t type_id = c.read<uint32_t>("type");
    const std::optional<DTypeInfo> info = dtype_info(type_id);
    if (!info) fail("{}: tensor '{}': unknown type id {}", file, t.name, type_id);
    t.view.type = static_cast<DType>(type_id);
    if (t.view.ne[0] % info->block_elems != 0) {
      fail("{}: tensor '{}': ne[0] = {} is not a multiple of the block size {} of {}", file, t.name,
           t.view.ne[0], info->block_elems, info->name);
    }
    std::optional<int64_t> rows = t.view.ne[1];
    rows = rows ? checked_mul(*rows, t.view.ne[2]) : rows;
    rows = rows ? checked_mul(*rows, t.view.ne[3]) : rows;
    std::optional<int64_t> elems = rows ? checked_mul(*rows, t.view.ne[0]) : rows;
    std::optional<int64_t> row = checked_mul(t.view.ne[0] / info->block_elems, info->block_bytes);
    std::optional<int64_t> bytes = elems && row ? checked_mul(*rows, *row) : std::nullopt;
    // With a zero dimension the products above are 0, yet products of the other dimensions (as
    // consumers may form them in any order) must still fit too.
    std::optional<int64_t> nonzero = 1;
    for (int d = 0; d < 4 && nonzero; ++d) {
      if (t.view.ne[d] != 0) nonzero = checked_mul(*nonzero, t.view.ne[d]);
    }
    if (!bytes || !nonzero) {
      fail("{}: tensor '{}': shape {} is too large (its size overflows 64 bits)", file, t.name,
           t.view.shape_string());
    }
    t.nbytes = static_cast<uint64_t>(*bytes);
    t.offset = c.read<uint64_t>("data offset");
    tensor_index_.emplace(t.name, tensors_.size());
    tensors_.push_back(std::move(t));
  }
  c.set_context("");

  // Data section: starts at the next multiple of the alignment.
  const uint64_t pad = (alignment_ - c.pos() % alignment_) % alignment_;
  data_offset_ = c.pos() + pad;
  if (!tensors_.empty() && data_offset_ > size_) {
    fail("{}: the data section would start at {}, past the end of the file (size {})", file,
         data_offset_, size_);
  }
  const uint64_t data_size = tensors_.empty() ? 0 : size_ - data_offset_;
  for (GgufTensorInfo& t : tensors_) {
    if (t.offset % alignment_ != 0) {
      fail("{}: tensor '{}': offset {} is not a multiple of the alignment {}", file, t.name,
           t.offset, alignment_);
    }
    if (t.offset > data_size || t.nbytes > data_size - t.offset) {
      fail(
          "{}: tensor '{}': offset {} + {} bytes is past the end of the file (data section "
          "starts at {}, file size {})",
          file, t.name, t.offset, t.nbytes, data_offset_, size_);
    }
    t.view.data = const_cast<uint8_t*>(base_ + data_offset_ + t.offset);
  }

  // No two tensors may share bytes.
  std::vector<const GgufTensorInfo*> by_offset;
  by_offset.reserve(tensors_.size());
  for (const GgufTensorInfo& t : tensors_) {
    if (t.nbytes) by_offset.push_back(&t);
  }
  std::sort(by_offset.begin(), by_offset.end(),
            [](const GgufTensorInfo* a, const GgufTensorInfo* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const GgufTensorInfo& a = *by_offset[i - 1];
    const GgufTensorInfo& b = *by_offset[i];
    if (a.offset + a.nbytes > b.offset) {
      fail("{}: tensors '{}' (offset {}, {} bytes) and '{}' (offset {}) overlap", file, a.name,
           a.offset, a.nbytes, b.name, b.offset);
    }
  }
}

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

const GgufValue& GgufFile::get(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) fail("{}: metadata key '{}' is missing", path_, key);
  return *v;
}

uint64_t GgufFile::get_uint(const std::string& key) const {
  try {
    return get(key).as_uint(key);
  } catch (const Error& e) {
    if (!find(key)) throw;
    fail("{}: {}", path_, e.what());
  }
}

double GgufFile::get_number(const std::string& key) const {
  try {
    return get(key).as_number(key);
  } catch (const Error& e) {
    if (!find(key)) throw;
    fail("{}: {}", path_, e.what());
  }
}

const std::string& GgufFile::get_string(const std::string& key) const {
  try {
    return get(key).as_string(key);
  } catch (const Error& e) {
    if (!find(key)) throw;
    fail("{}: {}", path_, e.what());
  }
}

const GgufTensorInfo* GgufFile::find_tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const GgufTensorInfo& GgufFile::tensor(const std::string& name) const {
  const GgufTensorInfo* t = find_tensor(name);
  if (!t) fail("{}: tensor '{}' is missing", path_, name);
  return *t;
}

}  // namespace moerun
