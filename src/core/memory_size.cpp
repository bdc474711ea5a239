#include "core/memory_size.h"

#include <cctype>
#include <cmath>
#include <stdexcept>

#include "core/error.h"

namespace moerun {

uint64_t parse_memory_size(const std::string& text) {
  size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) {
    ++i;
  }
  std::string unit = text.substr(i);
  for (char& c : unit) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  double value = 0;
  try {
    size_t used = 0;
    value = std::stod(text.substr(0, i), &used);
    if (used != i) throw std::invalid_argument("trailing");
  } catch (const std::exception&) {
    fail("'{}' is not a memory size (expected e.g. 16GiB, 12000MiB or a byte count)", text);
  }
  double scale = 0;
  if (unit.empty() || unit == "b") {
    scale = 1;
  } else if (unit == "k" || unit == "kib" || unit == "kb") {
    scale = 1024.0;
  } else if (unit == "m" || unit == "mib" || unit == "mb") {
    scale = 1024.0 * 1024;
  } else if (unit == "g" || unit == "gib" || unit == "gb") {
    scale = 1024.0 * 1024 * 1024;
  } else if (unit == "t" || unit == "tib" || unit == "tb") {
    scale = 1024.0 * 1024 * 1024 * 1024;
  } else {
    fail("'{}': unknown unit '{}' (use B, KiB, MiB, GiB or TiB)", text, unit);
  }
  const double bytes = value * scale;
  if (!(bytes >= 1) || bytes > 1e18) fail("'{}' is not a usable memory size", text);
  return static_cast<uint64_t>(std::llround(bytes));
}

}  // namespace moerun
