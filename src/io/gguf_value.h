// GGUF metadata values: the twelve scalar types, strings and typed arrays.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

namespace moerun {

// GGUF value type ids as stored in the file.
enum class GgufType : uint32_t {
  u8 = 0,
  i8 = 1,
  u16 = 2,
  i16 = 3,
  u32 = 4,
  i32 = 5,
  f32 = 6,
  boolean = 7,
  string = 8,
  array = 9,
  u64 = 10,
  i64 = 11,
  f64 = 12,
};

// Name of a value type for messages, e.g. "u32".
const char* gguf_type_name(GgufType type);

// A homogeneous array of values (arrays of arrays are allowed by the format, not by moerun).
struct GgufArray {
  GgufType elem_type = GgufType::u8;
  std::variant<std::vector<uint8_t>, std::vector<int8_t>, std::vector<uint16_t>,
               std::vector<int16_t>, std::vector<uint32_t>, std::vector<int32_t>,
               std::vector<float>, std::vector<bool>, std::vector<std::string>,
               std::vector<uint64_t>, std::vector<int64_t>, std::vector<double>>
      values;

  // Number of elements.
  size_t size() const;
};

// One metadata value of any GGUF type.
struct GgufValue {
  GgufType type = GgufType::u32;
  std::variant<uint8_t, int8_t, uint16_t, int16_t, uint32_t, int32_t, float, bool, std::string,
               GgufArray, uint64_t, int64_t, double>
      value;

  // Builders for each type, so writers say exactly which type they store.
  static GgufValue of_u8(uint8_t v) { return {GgufType::u8, v}; }
  static GgufValue of_i8(int8_t v) { return {GgufType::i8, v}; }
  static GgufValue of_u16(uint16_t v) { return {GgufType::u16, v}; }
  static GgufValue of_i16(int16_t v) { return {GgufType::i16, v}; }
  static GgufValue of_u32(uint32_t v) { return {GgufType::u32, v}; }
  static GgufValue of_i32(int32_t v) { return {GgufType::i32, v}; }
  static GgufValue of_f32(float v) { return {GgufType::f32, v}; }
  static GgufValue of_bool(bool v) { return {GgufType::boolean, v}; }
  static GgufValue of_string(std::string v) { return {GgufType::string, std::move(v)}; }
  static GgufValue of_u64(uint64_t v) { return {GgufType::u64, v}; }
  static GgufValue of_i64(int64_t v) { return {GgufType::i64, v}; }
  static GgufValue of_f64(double v) { return {GgufType::f64, v}; }
  static GgufValue of_strings(std::vector<std::string> v) {
    return {GgufType::array, GgufArray{GgufType::string, std::move(v)}};
  }
  static GgufValue of_i32s(std::vector<int32_t> v) {
    return {GgufType::array, GgufArray{GgufType::i32, std::move(v)}};
  }
  static GgufValue of_f32s(std::vector<float> v) {
    return {GgufType::array, GgufArray{GgufType::f32, std::move(v)}};
  }

  // The value as an unsigned integer when it is any integer type >= 0 (throws Error otherwise).
  uint64_t as_uint(const std::string& key) const;
  // The value as a float when it is any numeric type (throws Error otherwise).
  double as_number(const std::string& key) const;
  // The value as a string (throws Error when it is not one).
  const std::string& as_string(const std::string& key) const;
  // The value as an array (throws Error when it is not one).
  const GgufArray& as_array(const std::string& key) const;
  // Short human-readable rendering; arrays longer than `max_items` are abbreviated.
  std::string to_display(size_t max_items = 8) const;
  // As to_display(max_items), with strings longer than `max_string_chars` bytes cut short.
  std::string to_display(size_t max_items, size_t max_string_chars) const;
};

}  // namespace moerun
