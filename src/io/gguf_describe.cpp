#include "io/gguf_describe.h"

#include <algorithm>
#include <charconv>
#include <limits>
#include <map>

#include <fmt/format.h>

namespace moerun {
namespace {

// Running count of tensors, parameters and bytes of one category.
struct Total {
  uint64_t tensors = 0;
  uint64_t params = 0;
  uint64_t bytes = 0;

  void add(const GgufTensorInfo& t) {
    ++tensors;
    params += static_cast<uint64_t>(t.view.nelements());
    bytes += t.nbytes;
  }
};

// A parameter count with a decimal unit, e.g. "79.67 B" (billions), "512.00 M".
std::string format_params(uint64_t n) {
  if (n >= 1'000'000'000) return fmt::format("{:.2f} B", static_cast<double>(n) / 1e9);
  if (n >= 1'000'000) return fmt::format("{:.2f} M", static_cast<double>(n) / 1e6);
  if (n >= 1'000) return fmt::format("{:.2f} K", static_cast<double>(n) / 1e3);
  return fmt::format("{}", n);
}

std::string total_line(std::string_view label, const Total& t) {
  return fmt::format("  {:<26} {:>6} tensors {:>14} params ({:>9}) {:>16} bytes ({})\n", label,
                     t.tensors, t.params, format_params(t.params), t.bytes, format_bytes(t.bytes));
}

// The layer number N of a name "blk.N.*", or -1.
int64_t layer_of(std::string_view name) {
  if (name.rfind("blk.", 0) != 0) return -1;
  int64_t n = -1;
  const char* begin = name.data() + 4;
  const auto [ptr, ec] = std::from_chars(begin, name.data() + name.size(), n);
  if (ec != std::errc() || ptr == begin || ptr == name.data() + name.size() || *ptr != '.') {
    return -1;
  }
  return n;
}

}  // namespace

TensorCategory tensor_category(std::string_view name) {
  if (name.find("_exps") != std::string_view::npos) return TensorCategory::routed_experts;
  if (name.find("token_embd") != std::string_view::npos) return TensorCategory::embeddings;
  return TensorCategory::dense;
}

TensorBytes tensor_bytes(const GgufFile& file) {
  TensorBytes b;
  std::map<int64_t, uint64_t> expert_bytes;  // layer -> bytes of one expert
  for (const GgufTensorInfo& t : file.tensors()) {
    switch (tensor_category(t.name)) {
      case TensorCategory::routed_experts: {
        b.routed_experts += t.nbytes;
        const int64_t n_experts = t.view.n_dims == 3 ? t.view.ne[2] : 0;
        const int64_t layer = layer_of(t.name);
        if (n_experts > 0 && layer >= 0) {
          b.experts_per_layer = std::max(b.experts_per_layer, n_experts);
          expert_bytes[layer] += t.nbytes / static_cast<uint64_t>(n_experts);
        }
        break;
      }
      case TensorCategory::embeddings:
        b.embeddings += t.nbytes;
        break;
      case TensorCategory::dense:
        b.dense += t.nbytes;
        break;
    }
  }
  b.moe_layers = static_cast<int64_t>(expert_bytes.size());
  for (const auto& [layer, bytes] : expert_bytes) {
    b.expert_all_layers += bytes;
    b.largest_expert = std::max(b.largest_expert, bytes);
  }
  return b;
}

std::string format_bytes(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double v = static_cast<double>(bytes);
  size_t unit = 0;
  while (v >= 1024.0 && unit + 1 < std::size(kUnits)) {
    v /= 1024.0;
    ++unit;
  }
  if (unit == 0) return fmt::format("{} B", bytes);
  return fmt::format("{:.2f} {}", v, kUnits[unit]);
}

std::string describe_gguf(const GgufFile& file, bool all) {
  const size_t max_items = all ? std::numeric_limits<size_t>::max() : 8;
  const size_t max_chars = all ? std::numeric_limits<size_t>::max() : 120;
  std::string out;
  out += fmt::format("file: {}\n", file.path());
  out += fmt::format("size: {} bytes ({})\n", file.file_size(), format_bytes(file.file_size()));
  out += fmt::format(
      "gguf version {}, alignment {}, {} metadata keys, {} tensors, data at offset {}\n",
      file.version(), file.alignment(), file.metadata().size(), file.tensors().size(),
      file.data_offset());

  out += "\nmetadata:\n";
  size_t key_width = 0;
  for (const auto& [key, value] : file.metadata()) key_width = std::max(key_width, key.size());
  for (const auto& [key, value] : file.metadata()) {
    out += fmt::format("  {:<{}}  {:<6} {}\n", key, key_width, gguf_type_name(value.type),
                       value.to_display(max_items, max_chars));
  }

  out += "\ntensors:\n";
  size_t name_width = 4;
  size_t shape_width = 5;
  for (const GgufTensorInfo& t : file.tensors()) {
    name_width = std::max(name_width, t.name.size());
    shape_width = std::max(shape_width, t.view.shape_string().size());
  }
  out += fmt::format("  {:<{}}  {:<8} {:<{}} {:>14}  {}\n", "name", name_width, "type", "shape",
                     shape_width, "bytes", "offset");
  Total experts, embeddings, other, unsupported, all_tensors;
  for (const GgufTensorInfo& t : file.tensors()) {
    const DTypeInfo& info = dtype_info(t.view.type);
    out += fmt::format("  {:<{}}  {:<8} {:<{}} {:>14}  {}{}\n", t.name, name_width, info.name,
                       t.view.shape_string(), shape_width, t.nbytes, t.offset,
                       info.supported ? "" : "  (type not supported by moerun)");
    switch (tensor_category(t.name)) {
      case TensorCategory::routed_experts:
        experts.add(t);
        break;
      case TensorCategory::embeddings:
        embeddings.add(t);
        break;
      case TensorCategory::dense:
        other.add(t);
        break;
    }
    if (!info.supported) unsupported.add(t);
    all_tensors.add(t);
  }

  out += "\ntotals:\n";
  out += total_line("routed experts (_exps)", experts);
  out += total_line("embeddings (token_embd)", embeddings);
  out += total_line("other weights", other);
  out += total_line("all tensors", all_tensors);
  if (unsupported.tensors) out += total_line("of unsupported types", unsupported);
  out += fmt::format("  {:<26} {} bytes ({}); headers and padding {} bytes\n", "file size",
                     file.file_size(), format_bytes(file.file_size()),
                     file.file_size() - all_tensors.bytes);
  return out;
}

}  // namespace moerun
