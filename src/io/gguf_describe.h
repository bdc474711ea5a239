// Human-readable description of a GGUF file: header, metadata, tensor table and totals.
#pragma once

#include <string>

#include "io/gguf_file.h"

namespace moerun {

// The text `moerun inspect` prints; `all` shows every array element and whole strings.
std::string describe_gguf(const GgufFile& file, bool all = false);

// A byte count in binary units with two decimals, e.g. "1.50 GiB".
std::string format_bytes(uint64_t bytes);

}  // namespace moerun
