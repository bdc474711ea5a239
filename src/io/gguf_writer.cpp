#include "io/gguf_writer.h"

#include <sys/stat.h>

#include <bit>
#include <cerrno>
#include <cstring>
#include <limits>

#include "core/error.h"

namespace moerun {
namespace {

constexpr size_t kBufferBytes = size_t{8} << 20;
constexpr size_t kMaxNameBytes =
    63;  // llama.cpp refuses tensor names of GGML_MAX_NAME (64) or more
constexpr uint32_t kVersion = 3;

// Index of the variant alternative that GgufArray uses for element type `t` (arrays have none).
size_t array_variant_index(GgufType t) {
  const auto id = static_cast<size_t>(t);
  return id < static_cast<size_t>(GgufType::array) ? id : id - 1;
}

uint64_t align_up(uint64_t x, uint64_t alignment) {
  return (x + alignment - 1) / alignment * alignment;
}

}  // namespace

GgufWriter::GgufWriter(std::string path, uint32_t alignment)
    : path_(std::move(path)), alignment_(alignment) {
  if (alignment == 0 || !std::has_single_bit(alignment)) {
    fail("{}: GGUF alignment {} is not a power of two", path_, alignment);
  }
  struct stat st {};
  const bool existed = ::stat(path_.c_str(), &st) == 0;
  file_ = std::fopen(path_.c_str(), "wb");
  if (!file_) fail("{}: cannot open for writing: {}", path_, std::strerror(errno));
  std::setvbuf(file_, nullptr, _IONBF, 0);  // buffer_ does the buffering
  remove_on_failure_ = !existed || S_ISREG(st.st_mode);
  buffer_.reserve(kBufferBytes);
  if (alignment != 32) kv_.emplace_back("general.alignment", GgufValue::of_u32(alignment));
}

GgufWriter::~GgufWriter() {
  if (file_) std::fclose(file_);
  if (!finished_ && remove_on_failure_) std::remove(path_.c_str());
}

void GgufWriter::set(const std::string& key, GgufValue value) {
  if (header_written_) fail("{}: metadata '{}' set after the header was written", path_, key);
  if (key.empty()) fail("{}: metadata key is empty", path_);
  if (value.value.index() != static_cast<size_t>(value.type)) {
    fail("{}: metadata '{}': value says type {} but holds another", path_, key,
         gguf_type_name(value.type));
  }
  if (const auto* a = std::get_if<GgufArray>(&value.value)) {
    if (a->elem_type == GgufType::array || static_cast<uint32_t>(a->elem_type) > 12 ||
        a->values.index() != array_variant_index(a->elem_type)) {
      fail("{}: metadata '{}': array element type {} does not match its values", path_, key,
           gguf_type_name(a->elem_type));
    }
  }
  if (key == "general.alignment") {
    const auto* v = std::get_if<uint32_t>(&value.value);
    if (!v || *v == 0 || !std::has_single_bit(*v)) {
      fail("{}: metadata 'general.alignment' must be a u32 power of two", path_);
    }
    alignment_ = *v;
    data_size_ = 0;
    for (PendingTensor& t : tensors_) {
      t.offset = align_up(data_size_, alignment_);
      data_size_ = t.offset + t.nbytes;
    }
  }
  for (auto& [k, v] : kv_) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  kv_.emplace_back(key, std::move(value));
}

void GgufWriter::add_tensor(const std::string& name, DType type, const std::vector<int64_t>& ne) {
  if (header_written_) fail("{}: tensor '{}' added after the header was written", path_, name);
  if (name.empty()) fail("{}: tensor name is empty", path_);
  if (name.size() > kMaxNameBytes) {
    fail("{}: tensor name '{}' is longer than {} bytes", path_, name, kMaxNameBytes);
  }
  for (const PendingTensor& t : tensors_) {
    if (t.name == name) fail("{}: tensor '{}' added twice", path_, name);
  }
  const std::optional<DTypeInfo> info = dtype_info(static_cast<uint32_t>(type));
  if (!info) fail("{}: tensor '{}': unknown type id {}", path_, name, static_cast<uint32_t>(type));
  if (ne.empty() || ne.size() > 4) {
    fail("{}: tensor '{}': {} dimensions (must be 1..4)", path_, name, ne.size());
  }
  if (ne[0] % info->block_elems != 0) {
    fail("{}: tensor '{}': ne[0] = {} is not a multiple of the block size {} of {}", path_, name,
         ne[0], info->block_elems, info->name);
  }
  int64_t nbytes = 0;
  bool overflow = __builtin_mul_overflow(ne[0] / info->block_elems, info->block_bytes, &nbytes);
  for (size_t d = 0; d < ne.size(); ++d) {
    if (ne[d] < 0) fail("{}: tensor '{}': ne[{}] = {} is negative", path_, name, d, ne[d]);
    if (d > 0) overflow = overflow || __builtin_mul_overflow(nbytes, ne[d], &nbytes);
  }
  const uint64_t offset = align_up(data_size_, alignment_);
  constexpr auto kLimit = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  if (overflow || offset > kLimit || static_cast<uint64_t>(nbytes) > kLimit - offset) {
    fail("{}: tensor '{}' is too large", path_, name);
  }
  tensors_.push_back({name, type, ne, offset, static_cast<uint64_t>(nbytes)});
  data_size_ = offset + static_cast<uint64_t>(nbytes);
}

void GgufWriter::write_header() {
  if (header_written_) fail("{}: write_header() called twice", path_);
  if (failed_) fail("{}: an earlier write failed", path_);
  header_written_ = true;
  write_bytes("GGUF", 4);
  write_bytes(&kVersion, 4);
  const uint64_t n_tensors = tensors_.size();
  const uint64_t n_kv = kv_.size();
  write_bytes(&n_tensors, 8);
  write_bytes(&n_kv, 8);
  for (const auto& [key, value] : kv_) {
    write_string(key);
    const auto type = static_cast<uint32_t>(value.type);
    write_bytes(&type, 4);
    write_value(value);
  }
  for (const PendingTensor& t : tensors_) {
    write_string(t.name);
    const auto n_dims = static_cast<uint32_t>(t.ne.size());
    write_bytes(&n_dims, 4);
    for (int64_t n : t.ne) {
      const auto u = static_cast<uint64_t>(n);
      write_bytes(&u, 8);
    }
    const auto type = static_cast<uint32_t>(t.type);
    write_bytes(&type, 4);
    write_bytes(&t.offset, 8);
  }
  data_start_ = align_up(written_, alignment_);
  write_padding(data_start_);
}

void GgufWriter::write_tensor_data(const void* data, size_t size) {
  if (!header_written_) fail("{}: tensor data written before the header", path_);
  if (finished_) fail("{}: tensor data written after finish()", path_);
  if (failed_) fail("{}: an earlier write failed", path_);
  if (next_tensor_ >= tensors_.size()) {
    fail("{}: more tensor data written than the {} tensors declared", path_, tensors_.size());
  }
  const PendingTensor& t = tensors_[next_tensor_];
  if (size != t.nbytes) {
    fail("{}: tensor '{}' is {} bytes but {} were given", path_, t.name, t.nbytes, size);
  }
  write_padding(data_start_ + t.offset);
  write_bytes(data, size);
  write_padding(align_up(written_, alignment_));
  ++next_tensor_;
}

void GgufWriter::finish() {
  if (finished_) fail("{}: finish() called twice", path_);
  if (!header_written_) fail("{}: finish() called before write_header()", path_);
  if (failed_) fail("{}: an earlier write failed", path_);
  if (next_tensor_ != tensors_.size()) {
    fail("{}: finish() after {} of {} tensors were written (next: '{}')", path_, next_tensor_,
         tensors_.size(), tensors_[next_tensor_].name);
  }
  flush_buffer();
  std::FILE* f = file_;
  file_ = nullptr;
  if (std::fclose(f) != 0) {
    failed_ = true;
    fail("{}: closing failed: {}", path_, std::strerror(errno));
  }
  finished_ = true;
}

void GgufWriter::write_bytes(const void* data, size_t size) {
  if (size == 0) return;
  if (size >= kBufferBytes) {
    flush_buffer();
    if (std::fwrite(data, 1, size, file_) != size) io_failure("writing");
  } else {
    if (buffer_.size() + size > kBufferBytes) flush_buffer();
    const auto* p = static_cast<const uint8_t*>(data);
    buffer_.insert(buffer_.end(), p, p + size);
  }
  written_ += size;
}

void GgufWriter::write_string(const std::string& s) {
  const uint64_t len = s.size();
  write_bytes(&len, 8);
  write_bytes(s.data(), s.size());
}

void GgufWriter::write_value(const GgufValue& value) {
  std::visit(
      [&](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::string>) {
          write_string(v);
        } else if constexpr (std::is_same_v<T, bool>) {
          const uint8_t b = v ? 1 : 0;
          write_bytes(&b, 1);
        } else if constexpr (std::is_same_v<T, GgufArray>) {
          const auto elem = static_cast<uint32_t>(v.elem_type);
          const uint64_t count = v.size();
          write_bytes(&elem, 4);
          write_bytes(&count, 8);
          std::visit(
              [&](const auto& elems) {
                using E = typename std::decay_t<decltype(elems)>::value_type;
                if constexpr (std::is_same_v<E, std::string>) {
                  for (const std::string& s : elems) write_string(s);
                } else if constexpr (std::is_same_v<E, bool>) {
                  for (bool b : elems) {
                    const uint8_t u = b ? 1 : 0;
                    write_bytes(&u, 1);
                  }
                } else {
                  write_bytes(elems.data(), elems.size() * sizeof(E));
                }
              },
              v.values);
        } else {
          write_bytes(&v, sizeof(T));
        }
      },
      value.value);
}

void GgufWriter::write_padding(uint64_t to) {
  static constexpr uint8_t kZeros[64] = {};
  while (written_ < to) {
    const uint64_t n = std::min<uint64_t>(to - written_, sizeof(kZeros));
    write_bytes(kZeros, n);
  }
}

void GgufWriter::flush_buffer() {
  if (buffer_.empty()) return;
  if (std::fwrite(buffer_.data(), 1, buffer_.size(), file_) != buffer_.size())
    io_failure("writing");
  buffer_.clear();
}

void GgufWriter::io_failure(const char* what) {
  failed_ = true;
  fail("{}: {} failed: {}", path_, what, std::strerror(errno));
}

}  // namespace moerun
