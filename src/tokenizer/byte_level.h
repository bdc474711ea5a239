// GPT-2's byte-to-unicode map: every byte has a printable character that stands for it in the
// vocabulary of a byte-level BPE tokenizer.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace moerun {

// The code point that stands for byte `b` in byte-level token text.
uint32_t byte_to_codepoint(uint8_t b);

// The byte that code point `cp` stands for, or nullopt when `cp` is not in the map.
std::optional<uint8_t> codepoint_to_byte(uint32_t cp);

// Byte-level text for raw bytes (each byte becomes its UTF-8-encoded stand-in character).
std::string bytes_to_byte_level(std::string_view bytes);

// Raw bytes for byte-level token text; nullopt when a character is not in the map (or the text
// is not valid UTF-8).
std::optional<std::string> byte_level_to_bytes(std::string_view text);

}  // namespace moerun
