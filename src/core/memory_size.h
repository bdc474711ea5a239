// Memory sizes written by people: "16GiB", "12000MiB", "15.5G" or a byte count.
#pragma once

#include <cstdint>
#include <string>

namespace moerun {

// Parses a size such as "16GiB", "12000MiB", "15.5G" or "17179869184" (bytes; units are powers of
// 1024); throws Error on anything else.
uint64_t parse_memory_size(const std::string& text);

}  // namespace moerun
