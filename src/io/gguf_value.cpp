#include "io/gguf_value.h"

#include <fmt/format.h>

#include "core/error.h"

namespace moerun {
namespace {

// Appends `s` quoted, with quotes, backslashes and control bytes escaped; cut after `max_chars`
// bytes (at a UTF-8 character boundary) with a note of the full length.
void append_quoted(std::string& out, const std::string& s, size_t max_chars) {
  size_t n = s.size();
  if (n > max_chars) {
    n = max_chars;
    while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  }
  out += '"';
  for (size_t i = 0; i < n; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          out += fmt::format("\\x{:02x}", c);
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
  if (n < s.size()) out += fmt::format("... ({} bytes)", s.size());
}

// Renders one scalar of any alternative held by a GgufValue or a GgufArray element.
template <typename T>
void append_scalar(std::string& out, const T& v, size_t max_string_chars) {
  if constexpr (std::is_same_v<T, std::string>) {
    append_quoted(out, v, max_string_chars);
  } else if constexpr (std::is_same_v<T, bool>) {
    out += v ? "true" : "false";
  } else if constexpr (std::is_same_v<T, uint8_t> || std::is_same_v<T, int8_t>) {
    out += fmt::format("{}", static_cast<int>(v));
  } else {
    out += fmt::format("{}", v);
  }
}

// Plural label of an array's element type: "strings" for strings, the type name otherwise.
std::string element_label(GgufType type) {
  if (type == GgufType::string) return "strings";
  return gguf_type_name(type);
}

}  // namespace

const char* gguf_type_name(GgufType type) {
  switch (type) {
    case GgufType::u8:
      return "u8";
    case GgufType::i8:
      return "i8";
    case GgufType::u16:
      return "u16";
    case GgufType::i16:
      return "i16";
    case GgufType::u32:
      return "u32";
    case GgufType::i32:
      return "i32";
    case GgufType::f32:
      return "f32";
    case GgufType::boolean:
      return "bool";
    case GgufType::string:
      return "string";
    case GgufType::array:
      return "array";
    case GgufType::u64:
      return "u64";
    case GgufType::i64:
      return "i64";
    case GgufType::f64:
      return "f64";
  }
  return "unknown";
}

size_t GgufArray::size() const {
  return std::visit([](const auto& v) { return v.size(); }, values);
}

uint64_t GgufValue::as_uint(const std::string& key) const {
  return std::visit(
      [&](const auto& v) -> uint64_t {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
          if constexpr (std::is_signed_v<T>) {
            if (v < 0) fail("metadata key '{}': expected a non-negative integer, found {}", key, v);
          }
          return static_cast<uint64_t>(v);
        } else {
          fail("metadata key '{}': expected an unsigned integer, found a {}", key,
               gguf_type_name(type));
        }
      },
      value);
}

double GgufValue::as_number(const std::string& key) const {
  return std::visit(
      [&](const auto& v) -> double {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_arithmetic_v<T> && !std::is_same_v<T, bool>) {
          return static_cast<double>(v);
        } else {
          fail("metadata key '{}': expected a number, found a {}", key, gguf_type_name(type));
        }
      },
      value);
}

const std::string& GgufValue::as_string(const std::string& key) const {
  if (const auto* s = std::get_if<std::string>(&value)) return *s;
  fail("metadata key '{}': expected a string, found a {}", key, gguf_type_name(type));
}

const GgufArray& GgufValue::as_array(const std::string& key) const {
  if (const auto* a = std::get_if<GgufArray>(&value)) return *a;
  fail("metadata key '{}': expected an array, found a {}", key, gguf_type_name(type));
}

std::string GgufValue::to_display(size_t max_items) const {
  return to_display(max_items, 120);
}

std::string GgufValue::to_display(size_t max_items, size_t max_string_chars) const {
  std::string out;
  if (const auto* arr = std::get_if<GgufArray>(&value)) {
    const size_t n = arr->size();
    out += fmt::format("[{} {}", n, element_label(arr->elem_type));
    if (n > 0) out += ':';
    std::visit(
        [&](const auto& elems) {
          const size_t shown = std::min(n, max_items);
          for (size_t i = 0; i < shown; ++i) {
            out += i ? ", " : " ";
            append_scalar(out,
                          static_cast<typename std::decay_t<decltype(elems)>::value_type>(elems[i]),
                          max_string_chars);
          }
          if (shown < n) out += shown ? ", ... " : " ... ";
        },
        arr->values);
    out += ']';
    return out;
  }
  std::visit(
      [&](const auto& v) {
        if constexpr (!std::is_same_v<std::decay_t<decltype(v)>, GgufArray>) {
          append_scalar(out, v, max_string_chars);
        }
      },
      value);
  return out;
}

}  // namespace moerun
