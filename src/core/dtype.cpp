#include "core/dtype.h"

#include <array>
#include <cctype>
#include <string>

#include "core/error.h"

namespace moerun {
namespace {

struct Entry {
  uint32_t id;
  DTypeInfo info;
};

// Sizes from ggml's type traits (spec/gguf-formats.md); `supported` marks what moerun computes
// with.
constexpr std::array<Entry, 32> kTypes{{
    {0, {"f32", 1, 4, true}},          {1, {"f16", 1, 2, true}},
    {2, {"q4_0", 32, 18, true}},       {3, {"q4_1", 32, 20, false}},
    {6, {"q5_0", 32, 22, false}},      {7, {"q5_1", 32, 24, false}},
    {8, {"q8_0", 32, 34, true}},       {9, {"q8_1", 32, 36, false}},
    {10, {"q2_K", 256, 84, false}},    {11, {"q3_K", 256, 110, false}},
    {12, {"q4_K", 256, 144, true}},    {13, {"q5_K", 256, 176, true}},
    {14, {"q6_K", 256, 210, true}},    {15, {"q8_K", 256, 292, false}},
    {16, {"iq2_xxs", 256, 66, false}}, {17, {"iq2_xs", 256, 74, false}},
    {18, {"iq3_xxs", 256, 98, false}}, {19, {"iq1_s", 256, 50, false}},
    {20, {"iq4_nl", 32, 18, false}},   {21, {"iq3_s", 256, 110, false}},
    {22, {"iq2_s", 256, 82, false}},   {23, {"iq4_xs", 256, 136, false}},
    {24, {"i8", 1, 1, false}},         {25, {"i16", 1, 2, false}},
    {26, {"i32", 1, 4, false}},        {27, {"i64", 1, 8, false}},
    {28, {"f64", 1, 8, false}},        {29, {"iq1_m", 256, 56, false}},
    {30, {"bf16", 1, 2, true}},        {34, {"tq1_0", 256, 54, false}},
    {35, {"tq2_0", 256, 66, false}},   {39, {"mxfp4", 32, 17, false}},
}};

}  // namespace

std::optional<DTypeInfo> dtype_info(uint32_t id) {
  for (const Entry& e : kTypes) {
    if (e.id == id) return e.info;
  }
  return std::nullopt;
}

const DTypeInfo& dtype_info(DType type) {
  for (const Entry& e : kTypes) {
    if (e.id == static_cast<uint32_t>(type)) return e.info;
  }
  abort_with(__FILE__, __LINE__, "dtype_info of an unknown type id");
}

std::string_view dtype_name(DType type) {
  for (const Entry& e : kTypes) {
    if (e.id == static_cast<uint32_t>(type)) return e.info.name;
  }
  return "unknown";
}

std::optional<DType> parse_dtype(std::string_view name) {
  std::string lower(name);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const Entry& e : kTypes) {
    std::string n(e.info.name);
    for (char& c : n) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (n == lower) return static_cast<DType>(e.id);
  }
  return std::nullopt;
}

}  // namespace moerun
