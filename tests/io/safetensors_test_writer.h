// Test helper: builds safetensors images (8-byte little-endian header length, JSON header, data)
// and bitsandbytes NF4 packings, following the formats' descriptions.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/half.h"

namespace moerun::test {

// Collects tensors and writes them as one safetensors image.
class SafetensorsBuilder {
 public:
  // Adds raw bytes under a dtype name (any name, so that bad dtypes can be written too).
  void add_raw(const std::string& name, const std::string& dtype, const std::vector<int64_t>& shape,
               const std::vector<uint8_t>& bytes) {
    entries_.push_back({name, dtype, shape, bytes});
  }
  // Adds f32 values.
  void add_f32(const std::string& name, const std::vector<int64_t>& shape,
               const std::vector<float>& v) {
    std::vector<uint8_t> b(v.size() * 4);
    if (!v.empty()) std::memcpy(b.data(), v.data(), b.size());
    add_raw(name, "F32", shape, b);
  }
  // Adds values rounded to bf16.
  void add_bf16(const std::string& name, const std::vector<int64_t>& shape,
                const std::vector<float>& v) {
    add_raw(name, "BF16", shape, halves(v, true));
  }
  // Adds values rounded to IEEE half.
  void add_f16(const std::string& name, const std::vector<int64_t>& shape,
               const std::vector<float>& v) {
    add_raw(name, "F16", shape, halves(v, false));
  }
  // Adds bytes as a U8 tensor.
  void add_u8(const std::string& name, const std::vector<int64_t>& shape,
              const std::vector<uint8_t>& v) {
    add_raw(name, "U8", shape, v);
  }
  // Sets a `__metadata__` entry.
  void metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }

  // The header JSON as it will be written (callers may edit it to corrupt a file).
  nlohmann::json header() const {
    nlohmann::json h = nlohmann::json::object();
    if (!metadata_.empty()) h["__metadata__"] = metadata_;
    uint64_t offset = 0;
    for (const Entry& e : entries_) {
      h[e.name] = {{"dtype", e.dtype},
                   {"shape", e.shape},
                   {"data_offsets", {offset, offset + e.bytes.size()}}};
      offset += e.bytes.size();
    }
    return h;
  }
  // The data section.
  std::vector<uint8_t> data() const {
    std::vector<uint8_t> d;
    for (const Entry& e : entries_) d.insert(d.end(), e.bytes.begin(), e.bytes.end());
    return d;
  }
  // The whole file image, optionally with another header text.
  std::vector<uint8_t> image() const { return assemble(header().dump(), data()); }
  // Writes the image to `path`.
  void write(const std::string& path) const { write_file(path, image()); }

  // An image from header text and data: u64 length, header, data.
  static std::vector<uint8_t> assemble(const std::string& header_text,
                                       const std::vector<uint8_t>& data) {
    const uint64_t n = header_text.size();
    std::vector<uint8_t> out(8 + header_text.size() + data.size());
    std::memcpy(out.data(), &n, 8);
    if (n) std::memcpy(out.data() + 8, header_text.data(), header_text.size());
    if (!data.empty()) std::memcpy(out.data() + 8 + n, data.data(), data.size());
    return out;
  }
  // Writes bytes to a file.
  static void write_file(const std::string& path, const std::vector<uint8_t>& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
  }

 private:
  struct Entry {
    std::string name;
    std::string dtype;
    std::vector<int64_t> shape;
    std::vector<uint8_t> bytes;
  };
  static std::vector<uint8_t> halves(const std::vector<float>& v, bool bf) {
    std::vector<uint8_t> b(v.size() * 2);
    for (size_t i = 0; i < v.size(); ++i) {
      const uint16_t h = bf ? f32_to_bf16(v[i]) : f32_to_fp16(v[i]);
      std::memcpy(b.data() + 2 * i, &h, 2);
    }
    return b;
  }
  std::vector<Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

// bitsandbytes' NF4 code book.
inline const std::array<float, 16>& nf4_code_book() {
  static const std::array<float, 16> code{-1.0f,
                                          -0.6961928009986877f,
                                          -0.5250730514526367f,
                                          -0.39491748809814453f,
                                          -0.28444138169288635f,
                                          -0.18477343022823334f,
                                          -0.09105003625154495f,
                                          0.0f,
                                          0.07958029955625534f,
                                          0.16093020141124725f,
                                          0.24611230194568634f,
                                          0.33791524171829224f,
                                          0.44070982933044434f,
                                          0.5626170039176941f,
                                          0.7229568362236023f,
                                          1.0f};
  return code;
}

// An NF4 packing of a row-major matrix with double-quantised absmax, and its exact dequantisation
// computed from the spec: absmax_i = nested_map[code_i] * nested_absmax[i / nested_block] +
// offset, w_j = code_book[nibble_j] * absmax[j / block].
struct Nf4Packed {
  std::vector<int64_t> shape;
  std::vector<uint8_t> packed;        // [numel / 2], high nibble first
  std::vector<uint8_t> absmax_codes;  // [n_blocks]
  std::vector<float> nested_absmax;   // [ceil(n_blocks / nested_block)]
  std::vector<float> nested_map;      // [256]
  float offset = 0;
  int64_t block = 64;
  int64_t nested_block = 256;
  std::vector<float> dequantized;  // [numel]

  // Adds the weight and its companions to `b` under `name` (e.g. "x.weight").
  void add_to(SafetensorsBuilder& b, const std::string& name) const {
    b.add_u8(name, {static_cast<int64_t>(packed.size()), 1}, packed);
    b.add_u8(name + ".absmax", {static_cast<int64_t>(absmax_codes.size())}, absmax_codes);
    b.add_f32(name + ".nested_absmax", {static_cast<int64_t>(nested_absmax.size())}, nested_absmax);
    b.add_f32(name + ".nested_quant_map", {256}, nested_map);
    const std::array<float, 16>& code = nf4_code_book();
    b.add_f32(name + ".quant_map", {16}, std::vector<float>(code.begin(), code.end()));
    nlohmann::json state = {{"quant_type", "nf4"},
                            {"blocksize", block},
                            {"dtype", "float32"},
                            {"shape", shape},
                            {"nested_blocksize", nested_block},
                            {"nested_offset", offset}};
    const std::string text = state.dump();
    b.add_u8(name + ".quant_state.bitsandbytes__nf4", {static_cast<int64_t>(text.size())},
             std::vector<uint8_t>(text.begin(), text.end()));
  }
};

// Packs `w` (row-major, numel a multiple of 2) as NF4 with blocks of `block` and nested blocks of
// `nested_block` (the last blocks may be partial).
inline Nf4Packed nf4_pack(const std::vector<float>& w, const std::vector<int64_t>& shape,
                          int64_t block = 64, int64_t nested_block = 256) {
  Nf4Packed p;
  p.shape = shape;
  p.block = block;
  p.nested_block = nested_block;
  const int64_t n = static_cast<int64_t>(w.size());
  const int64_t n_blocks = (n + block - 1) / block;
  std::vector<float> absmax(static_cast<size_t>(n_blocks));
  for (int64_t b = 0; b < n_blocks; ++b) {
    float m = 1e-12f;
    for (int64_t j = b * block; j < std::min(n, (b + 1) * block); ++j)
      m = std::max(m, std::fabs(w[j]));
    absmax[static_cast<size_t>(b)] = m;
  }
  double mean = 0;
  for (float a : absmax) mean += a;
  p.offset = static_cast<float>(mean / static_cast<double>(n_blocks));
  for (int i = 0; i < 256; ++i)
    p.nested_map.push_back(-1.0f + 2.0f * static_cast<float>(i) / 255.0f);
  const int64_t n_nested = (n_blocks + nested_block - 1) / nested_block;
  std::vector<float> deq_absmax(static_cast<size_t>(n_blocks));
  for (int64_t nb = 0; nb < n_nested; ++nb) {
    const int64_t b0 = nb * nested_block, b1 = std::min(n_blocks, (nb + 1) * nested_block);
    float m = 1e-12f;
    for (int64_t b = b0; b < b1; ++b) m = std::max(m, std::fabs(absmax[b] - p.offset));
    p.nested_absmax.push_back(m);
    for (int64_t b = b0; b < b1; ++b) {
      const float target = (absmax[b] - p.offset) / m;
      int best = 0;
      for (int c = 1; c < 256; ++c) {
        if (std::fabs(p.nested_map[c] - target) < std::fabs(p.nested_map[best] - target)) best = c;
      }
      p.absmax_codes.push_back(static_cast<uint8_t>(best));
      const float scaled = p.nested_map[best] * m;
      deq_absmax[b] = scaled + p.offset;
    }
  }
  const std::array<float, 16>& code = nf4_code_book();
  std::vector<uint8_t> nibbles(static_cast<size_t>(n));
  p.dequantized.resize(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j) {
    const float x = w[j] / absmax[j / block];
    int best = 0;
    for (int c = 1; c < 16; ++c) {
      if (std::fabs(code[c] - x) < std::fabs(code[best] - x)) best = c;
    }
    nibbles[j] = static_cast<uint8_t>(best);
    p.dequantized[j] = code[best] * deq_absmax[j / block];
  }
  for (int64_t j = 0; j < n; j += 2) {
    p.packed.push_back(static_cast<uint8_t>((nibbles[j] << 4) | (j + 1 < n ? nibbles[j + 1] : 0)));
  }
  return p;
}

}  // namespace moerun::test
