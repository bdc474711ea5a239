// GPT-2 byte-to-unicode map: printable Latin-1 bytes stand for themselves, the other 68 bytes
// map in order to U+0100 and up.
#include "tokenizer/byte_level.h"

#include <array>

#include "tokenizer/utf8.h"

namespace moerun {
namespace {

bool stands_for_itself(unsigned b) {
  return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

struct ByteMap {
  std::array<uint32_t, 256> to_cp{};
  std::array<int16_t, 512> from_cp{};  // code points below 512 -> byte, -1 when none
  ByteMap() {
    from_cp.fill(-1);
    uint32_t next = 256;
    for (unsigned b = 0; b < 256; ++b) {
      to_cp[b] = stands_for_itself(b) ? b : next++;
      from_cp[to_cp[b]] = static_cast<int16_t>(b);
    }
  }
};

const ByteMap& byte_map() {
  static const ByteMap m;
  return m;
}

}  // namespace

uint32_t byte_to_codepoint(uint8_t b) {
  return byte_map().to_cp[b];
}

std::optional<uint8_t> codepoint_to_byte(uint32_t cp) {
  if (cp >= 512 || byte_map().from_cp[cp] < 0) return std::nullopt;
  return static_cast<uint8_t>(byte_map().from_cp[cp]);
}

std::string bytes_to_byte_level(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) append_utf8(byte_to_codepoint(static_cast<uint8_t>(c)), out);
  return out;
}

std::optional<std::string> byte_level_to_bytes(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  size_t i = 0;
  while (i < text.size()) {
    Utf8Step st = utf8_decode_one(p + i, text.size() - i);
    if (st.status != Utf8Step::ok) return std::nullopt;
    auto b = codepoint_to_byte(st.codepoint);
    if (!b) return std::nullopt;
    out += static_cast<char>(*b);
    i += st.len;
  }
  return out;
}

}  // namespace moerun
