// UTF-8 helpers for the tokenizer: validation, lossy repair and completeness of a byte stream.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace moerun {

// Result of decoding one UTF-8 sequence at the start of a byte range.
struct Utf8Step {
  enum Status : uint8_t { ok, invalid, incomplete };
  Status status;
  uint8_t
      len;  // ok: sequence length; invalid: maximal invalid subpart (>= 1); incomplete: bytes seen
  uint32_t codepoint;  // valid when status == ok
};

// Decodes the sequence starting at `p` (n >= 1 bytes available), with the strict rules of the
// Unicode standard (no overlongs, surrogates or values above U+10FFFF).
Utf8Step utf8_decode_one(const unsigned char* p, size_t n);

// True when `s` is entirely valid UTF-8.
bool is_valid_utf8(std::string_view s);

// `s` with every maximal invalid subpart replaced by U+FFFD (the behaviour of Rust's
// String::from_utf8_lossy and of Python's errors="replace"); an incomplete tail is also replaced.
std::string repair_utf8(std::string_view s);

// Length of the longest prefix of `s` that does not end inside a sequence that more bytes could
// still complete; the rest must wait for more bytes.
size_t utf8_complete_prefix(std::string_view s);

// Appends the UTF-8 encoding of `cp` (a Unicode scalar value) to `out`.
void append_utf8(uint32_t cp, std::string& out);

}  // namespace moerun
