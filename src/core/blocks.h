// ggml's quantized block layouts (byte-exact, little endian) and helpers to read their packed
// fields.
#pragma once

#include <cstddef>
#include <cstdint>

#if defined(__CUDACC__)
#define MOERUN_HOST_DEVICE __host__ __device__
#else
#define MOERUN_HOST_DEVICE
#endif

namespace moerun {

// Weights per block of the 32-wide formats (Q8_0, Q4_0).
inline constexpr int kBlock32 = 32;
// Weights per super-block of the K formats (Q4_K, Q5_K, Q6_K).
inline constexpr int kBlockK = 256;
// Bytes of packed 6-bit scales and mins in a Q4_K/Q5_K super-block.
inline constexpr int kScaleBytesK = 12;

// Q8_0: w[i] = d * qs[i]; 32 weights in 34 bytes.
struct BlockQ8_0 {
  uint16_t d;           // fp16 scale
  int8_t qs[kBlock32];  // [32] signed quants
};

// Q4_0: w[i] = d * (nibble[i] - 8); weight i < 16 is the low nibble of qs[i], i >= 16 the high
// nibble of qs[i - 16]; 32 weights in 18 bytes.
struct BlockQ4_0 {
  uint16_t d;                // fp16 scale
  uint8_t qs[kBlock32 / 2];  // [16] two 4-bit quants per byte
};

// Q4_K: eight sub-blocks of 32 with 6-bit scale sc and min m: w = d * sc * nibble - dmin * m.
// qs holds four chunks of 32 bytes; chunk c's low nibbles are sub-block 2c, high nibbles 2c+1.
struct BlockQ4_K {
  uint16_t d;                    // fp16 super-scale of the sub-block scales
  uint16_t dmin;                 // fp16 super-scale of the sub-block mins
  uint8_t scales[kScaleBytesK];  // [12] eight 6-bit scales and eight 6-bit mins, packed
  uint8_t qs[kBlockK / 2];       // [128] 4-bit quants
};

// Q5_K: as Q4_K plus a fifth bit per weight: w = d * sc * (nibble + 16 * bit) - dmin * m; in
// chunk c, sub-block 2c takes bit 2c of qh[l] and sub-block 2c+1 bit 2c+1 (l = 0..31).
struct BlockQ5_K {
  uint16_t d;                    // fp16 super-scale of the sub-block scales
  uint16_t dmin;                 // fp16 super-scale of the sub-block mins
  uint8_t scales[kScaleBytesK];  // [12] eight 6-bit scales and eight 6-bit mins, packed
  uint8_t qh[kBlockK / 8];       // [32] fifth bits
  uint8_t qs[kBlockK / 2];       // [128] low 4 bits
};

// Q6_K: sixteen sub-blocks of 16 with int8 scales: w = d * scales[i / 16] * (q6 - 32); the 6-bit
// q6 is split into 4 low bits (ql) and 2 high bits (qh), see spec/gguf-formats.md.
struct BlockQ6_K {
  uint8_t ql[kBlockK / 2];      // [128] low 4 bits
  uint8_t qh[kBlockK / 4];      // [64] high 2 bits
  int8_t scales[kBlockK / 16];  // [16] sub-block scales
  uint16_t d;                   // fp16 super-scale
};

static_assert(sizeof(BlockQ8_0) == 34 && offsetof(BlockQ8_0, qs) == 2);
static_assert(sizeof(BlockQ4_0) == 18 && offsetof(BlockQ4_0, qs) == 2);
static_assert(sizeof(BlockQ4_K) == 144 && offsetof(BlockQ4_K, scales) == 4 &&
              offsetof(BlockQ4_K, qs) == 16);
static_assert(sizeof(BlockQ5_K) == 176 && offsetof(BlockQ5_K, qh) == 16 &&
              offsetof(BlockQ5_K, qs) == 48);
static_assert(sizeof(BlockQ6_K) == 210 && offsetof(BlockQ6_K, qh) == 128 &&
              offsetof(BlockQ6_K, scales) == 192 && offsetof(BlockQ6_K, d) == 208);

// Reads the 6-bit scale *sc and min *m of sub-block j (0..7) from a Q4_K/Q5_K scales[12] array.
MOERUN_HOST_DEVICE inline void unpack_scale_min_k4(int j, const uint8_t* scales, uint8_t* sc,
                                                   uint8_t* m) {
  if (j < 4) {
    *sc = scales[j] & 63;
    *m = scales[j + 4] & 63;
  } else {
    *sc = static_cast<uint8_t>((scales[j + 4] & 15) | ((scales[j - 4] >> 6) << 4));
    *m = static_cast<uint8_t>((scales[j + 4] >> 4) | ((scales[j] >> 6) << 4));
  }
}

// Packs eight 6-bit scales sc[8] and mins m[8] (each 0..63) into a Q4_K/Q5_K scales[12] array.
MOERUN_HOST_DEVICE inline void pack_scale_min_k4(const uint8_t* sc, const uint8_t* m,
                                                 uint8_t* scales) {
  for (int j = 0; j < 4; ++j) {
    scales[j] = static_cast<uint8_t>((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
    scales[j + 4] = static_cast<uint8_t>((m[j] & 63) | ((m[j + 4] >> 4) << 6));
    scales[j + 8] = static_cast<uint8_t>((sc[j + 4] & 15) | ((m[j + 4] & 15) << 4));
  }
}

}  // namespace moerun
