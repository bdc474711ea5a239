// Block formats: byte layout, dequantisation of hand-built blocks, quantiser accuracy and
// stability.
#include <gtest/gtest.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "core/blocks.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/quant.h"

namespace moerun {
namespace {

constexpr uint16_t kHalfOne = 0x3c00;   // fp16 1.0
constexpr uint16_t kHalfHalf = 0x3800;  // fp16 0.5

std::vector<uint8_t> quantize(DType type, const std::vector<float>& x) {
  std::vector<uint8_t> q(static_cast<size_t>(row_bytes(type, static_cast<int64_t>(x.size()))));
  quantize_row(type, x.data(), q.data(), static_cast<int64_t>(x.size()));
  return q;
}

std::vector<float> dequantize(DType type, const std::vector<uint8_t>& q, size_t n) {
  std::vector<float> y(n);
  dequantize_row(type, q.data(), y.data(), static_cast<int64_t>(n));
  return y;
}

double relative_rms_error(const std::vector<float>& x, const std::vector<float>& y) {
  double err = 0.0, ref = 0.0;
  for (size_t i = 0; i < x.size(); ++i) {
    err += (static_cast<double>(y[i]) - x[i]) * (static_cast<double>(y[i]) - x[i]);
    ref += static_cast<double>(x[i]) * x[i];
  }
  return std::sqrt(err / ref);
}

std::vector<float> gaussian(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(n);
  for (float& v : x) v = dist(rng);
  return x;
}

// The 6-bit (scale, min) of sub-block j, written out from the spec's formula.
void spec_scale_min(const uint8_t* s, int j, int* sc, int* m) {
  if (j < 4) {
    *sc = s[j] & 63;
    *m = s[j + 4] & 63;
  } else {
    *sc = (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4);
    *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

// Scale bytes with the top two bits set in several of bytes 0..7, so j >= 4 uses them.
constexpr uint8_t kScaleBytes[12] = {0xc1, 0x42, 0x3f, 0x85, 0x40, 0xd3,
                                     0x07, 0xbe, 0x9a, 0x0f, 0xf0, 0x6c};

TEST(Blocks, LayoutMatchesGgml) {
  EXPECT_EQ(sizeof(BlockQ8_0), 34u);
  EXPECT_EQ(sizeof(BlockQ4_0), 18u);
  EXPECT_EQ(sizeof(BlockQ4_K), 144u);
  EXPECT_EQ(sizeof(BlockQ5_K), 176u);
  EXPECT_EQ(sizeof(BlockQ6_K), 210u);
  EXPECT_EQ(offsetof(BlockQ8_0, d), 0u);
  EXPECT_EQ(offsetof(BlockQ8_0, qs), 2u);
  EXPECT_EQ(offsetof(BlockQ4_0, qs), 2u);
  EXPECT_EQ(offsetof(BlockQ4_K, d), 0u);
  EXPECT_EQ(offsetof(BlockQ4_K, dmin), 2u);
  EXPECT_EQ(offsetof(BlockQ4_K, scales), 4u);
  EXPECT_EQ(offsetof(BlockQ4_K, qs), 16u);
  EXPECT_EQ(offsetof(BlockQ5_K, scales), 4u);
  EXPECT_EQ(offsetof(BlockQ5_K, qh), 16u);
  EXPECT_EQ(offsetof(BlockQ5_K, qs), 48u);
  EXPECT_EQ(offsetof(BlockQ6_K, ql), 0u);
  EXPECT_EQ(offsetof(BlockQ6_K, qh), 128u);
  EXPECT_EQ(offsetof(BlockQ6_K, scales), 192u);
  EXPECT_EQ(offsetof(BlockQ6_K, d), 208u);
  EXPECT_EQ(row_bytes(DType::Q8_0, 4096), 4096 / 32 * 34);
  EXPECT_EQ(row_bytes(DType::Q4_0, 4096), 4096 / 32 * 18);
  EXPECT_EQ(row_bytes(DType::Q4_K, 4096), 16 * 144);
  EXPECT_EQ(row_bytes(DType::Q5_K, 4096), 16 * 176);
  EXPECT_EQ(row_bytes(DType::Q6_K, 4096), 16 * 210);
}

TEST(Blocks, ScaleMinUnpackByHand) {
  // scales[0] = 0xc1: sc0 = 1, top bits 3 -> high bits of sc4; scales[8] = 0x9a: sc4 low = 10,
  // m4 low = 9; scales[4] = 0x40: m0 = 0, top bits 1 -> high bits of m4.
  const int expected_sc[8] = {
      1, 2, 63, 5, 10 | (3 << 4), 15 | (1 << 4), 0 | (0 << 4), 12 | (2 << 4)};
  const int expected_m[8] = {0, 19, 7, 62, 9 | (1 << 4), 0 | (3 << 4), 15 | (0 << 4), 6 | (2 << 4)};
  for (int j = 0; j < 8; ++j) {
    uint8_t sc, m;
    unpack_scale_min_k4(j, kScaleBytes, &sc, &m);
    EXPECT_EQ(sc, expected_sc[j]) << j;
    EXPECT_EQ(m, expected_m[j]) << j;
  }
}

TEST(Blocks, ScaleMinPackRoundTripsAllValues) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 2000; ++trial) {
    uint8_t sc[8], m[8], packed[12];
    for (int j = 0; j < 8; ++j) {
      sc[j] = static_cast<uint8_t>(trial < 64 ? trial : rng() % 64);
      m[j] = static_cast<uint8_t>(trial < 64 ? 63 - trial : rng() % 64);
    }
    pack_scale_min_k4(sc, m, packed);
    for (int j = 0; j < 8; ++j) {
      int want_sc, want_m;
      spec_scale_min(packed, j, &want_sc, &want_m);
      EXPECT_EQ(want_sc, sc[j]);
      EXPECT_EQ(want_m, m[j]);
    }
  }
}

TEST(Dequantize, PlainTypes) {
  const uint16_t f16[4] = {0x3c00, 0xc000, 0x7bff, 0x0001};
  std::vector<float> y(4);
  dequantize_row(DType::F16, f16, y.data(), 4);
  EXPECT_EQ(y, (std::vector<float>{1.0f, -2.0f, 65504.0f, std::ldexp(1.0f, -24)}));
  const uint16_t bf16[4] = {0x3f80, 0xc2f7, 0x0000, 0x4040};
  dequantize_row(DType::BF16, bf16, y.data(), 4);
  EXPECT_EQ(y, (std::vector<float>{1.0f, -123.5f, 0.0f, 3.0f}));
  const float f32[4] = {1.5f, -0.25f, 1e30f, 7.0f};
  dequantize_row(DType::F32, f32, y.data(), 4);
  EXPECT_EQ(y, (std::vector<float>{1.5f, -0.25f, 1e30f, 7.0f}));
  // Exactly representable values survive quantize_row unchanged.
  uint16_t out[4];
  quantize_row(DType::F16, y.data() + 0, out, 2);
  EXPECT_EQ(out[0], 0x3e00);  // 1.5
  EXPECT_EQ(out[1], 0xb400);  // -0.25
  quantize_row(DType::BF16, y.data(), out, 2);
  EXPECT_EQ(out[0], 0x3fc0);
  EXPECT_EQ(out[1], 0xbe80);
}

TEST(Dequantize, Q8_0HandBuilt) {
  uint8_t bytes[2 * 34] = {};
  for (int b = 0; b < 2; ++b) {
    uint8_t* block = bytes + 34 * b;
    block[0] = b == 0 ? 0x00 : 0x00;  // little-endian fp16: 0x3800 = 0.5, 0xc000 = -2
    block[1] = b == 0 ? 0x38 : 0xc0;
    for (int i = 0; i < 32; ++i)
      block[2 + i] = static_cast<uint8_t>(static_cast<int8_t>(4 * i - 128));
  }
  std::vector<float> y(64);
  dequantize_row(DType::Q8_0, bytes, y.data(), 64);
  for (int i = 0; i < 32; ++i) {
    EXPECT_EQ(y[i], 0.5f * (4 * i - 128)) << i;
    EXPECT_EQ(y[32 + i], -2.0f * (4 * i - 128)) << i;
  }
}

TEST(Dequantize, Q4_0HandBuilt) {
  uint8_t block[18];
  block[0] = kHalfHalf & 0xff;
  block[1] = kHalfHalf >> 8;
  for (int j = 0; j < 16; ++j) block[2 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  std::vector<float> y(32);
  dequantize_row(DType::Q4_0, block, y.data(), 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], 0.5f * (j - 8)) << j;              // low nibble of qs[j]
    EXPECT_EQ(y[16 + j], 0.5f * ((15 - j) - 8)) << j;  // high nibble of qs[j]
  }
}

// Fills a K-quant header: d = 0.5, dmin = 1.0, scales = kScaleBytes.
void fill_k_header(uint8_t* block) {
  block[0] = kHalfHalf & 0xff;
  block[1] = kHalfHalf >> 8;
  block[2] = kHalfOne & 0xff;
  block[3] = kHalfOne >> 8;
  std::memcpy(block + 4, kScaleBytes, 12);
}

TEST(Dequantize, Q4_KHandBuilt) {
  uint8_t block[144];
  fill_k_header(block);
  uint8_t* qs = block + 16;
  for (int k = 0; k < 128; ++k) qs[k] = static_cast<uint8_t>(k * 7 + 3);
  std::vector<float> y(256);
  dequantize_row(DType::Q4_K, block, y.data(), 256);
  for (int i = 0; i < 256; ++i) {
    const int chunk = i / 64, sub = i / 32, l = i % 32;
    const uint8_t byte = qs[32 * chunk + l];
    const int nibble = (sub % 2 == 0) ? (byte & 15) : (byte >> 4);
    int sc, m;
    spec_scale_min(kScaleBytes, sub, &sc, &m);
    EXPECT_EQ(y[i], 0.5f * sc * nibble - 1.0f * m) << i;
  }
}

TEST(Dequantize, Q5_KHandBuilt) {
  uint8_t block[176];
  fill_k_header(block);
  uint8_t* qh = block + 16;
  uint8_t* qs = block + 48;
  for (int l = 0; l < 32; ++l) qh[l] = static_cast<uint8_t>(l * 37 + 11);
  for (int k = 0; k < 128; ++k) qs[k] = static_cast<uint8_t>(k * 7 + 3);
  std::vector<float> y(256);
  dequantize_row(DType::Q5_K, block, y.data(), 256);
  int high_bits_seen = 0;
  for (int i = 0; i < 256; ++i) {
    const int chunk = i / 64, sub = i / 32, l = i % 32;
    const uint8_t byte = qs[32 * chunk + l];
    const int nibble = (sub % 2 == 0) ? (byte & 15) : (byte >> 4);
    const int bit = (qh[l] >> sub) & 1;  // sub-block 2c takes bit 2c, 2c+1 bit 2c+1
    high_bits_seen += bit;
    int sc, m;
    spec_scale_min(kScaleBytes, sub, &sc, &m);
    EXPECT_EQ(y[i], 0.5f * sc * (nibble + 16 * bit) - 1.0f * m) << i;
  }
  EXPECT_GT(high_bits_seen, 64);
}

TEST(Dequantize, Q6_KHandBuilt) {
  uint8_t block[210];
  uint8_t* ql = block;
  uint8_t* qh = block + 128;
  auto* scales = reinterpret_cast<int8_t*>(block + 192);
  for (int k = 0; k < 128; ++k) ql[k] = static_cast<uint8_t>(k * 13 + 5);
  for (int k = 0; k < 64; ++k) qh[k] = static_cast<uint8_t>(k * 29 + 7);
  const int8_t sc[16] = {-128, -3, 1, 127, 5, -17, 33, 0, 64, -64, 2, 9, -1, 100, -90, 7};
  std::memcpy(scales, sc, 16);
  block[208] = kHalfHalf & 0xff;
  block[209] = kHalfHalf >> 8;
  std::vector<float> y(256);
  dequantize_row(DType::Q6_K, block, y.data(), 256);
  for (int i = 0; i < 256; ++i) {
    const int half = i / 128, r = i % 128, group = r / 32, l = r % 32;
    const uint8_t low_byte = ql[64 * half + l + 32 * (group & 1)];
    const int low = group < 2 ? (low_byte & 15) : (low_byte >> 4);
    const int high = (qh[32 * half + l] >> (2 * group)) & 3;
    const int q = (low | (high << 4)) - 32;
    EXPECT_EQ(y[i], 0.5f * sc[i / 16] * q) << i;
  }
}

TEST(Quantize, RejectsUnsupportedTypesAndPartialBlocks) {
  std::vector<float> x(256, 1.0f);
  std::vector<uint8_t> q(4096);
  try {
    quantize_row(DType::Q2_K, x.data(), q.data(), 256);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("q2_K"), std::string::npos) << e.what();
  }
  try {
    dequantize_row(DType::IQ4_XS, q.data(), x.data(), 256);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("iq4_xs"), std::string::npos) << e.what();
  }
  EXPECT_THROW(quantize_row(DType::Q4_K, x.data(), q.data(), 128), Error);
  EXPECT_THROW(dequantize_row(DType::Q8_0, q.data(), x.data(), 48), Error);
}

TEST(Quantize, PlainTypesRoundTrip) {
  const std::vector<float> x = gaussian(4096, 3);
  EXPECT_EQ(dequantize(DType::F32, quantize(DType::F32, x), x.size()), x);
  EXPECT_LE(relative_rms_error(x, dequantize(DType::F16, quantize(DType::F16, x), x.size())), 3e-4);
  EXPECT_LE(relative_rms_error(x, dequantize(DType::BF16, quantize(DType::BF16, x), x.size())),
            2e-3);
}

struct AccuracyCase {
  DType type;
  double max_error;  // allowed relative RMS error on N(0, 1) rows
};

class QuantAccuracy : public ::testing::TestWithParam<AccuracyCase> {};

TEST_P(QuantAccuracy, GaussianRowsWithinBound) {
  const AccuracyCase c = GetParam();
  constexpr size_t kRows = 64, kCols = 4096;
  double err = 0.0, ref = 0.0;
  for (size_t r = 0; r < kRows; ++r) {
    const std::vector<float> x = gaussian(kCols, static_cast<uint32_t>(100 + r));
    const std::vector<float> y = dequantize(c.type, quantize(c.type, x), kCols);
    for (size_t i = 0; i < kCols; ++i) {
      err += (static_cast<double>(y[i]) - x[i]) * (static_cast<double>(y[i]) - x[i]);
      ref += static_cast<double>(x[i]) * x[i];
    }
  }
  const double rel = std::sqrt(err / ref);
  std::printf("%s relative RMS error %.5f (bound %.3f)\n", dtype_name(c.type).data(), rel,
              c.max_error);
  EXPECT_LE(rel, c.max_error);
}

TEST_P(QuantAccuracy, ZeroBlocksStayZero) {
  const DType type = GetParam().type;
  std::vector<float> x(512, 0.0f);
  const std::vector<float> y = dequantize(type, quantize(type, x), x.size());
  for (float v : y) EXPECT_EQ(v, 0.0f);
}

TEST_P(QuantAccuracy, ConstantAndTinyBlocksAreFinite) {
  const DType type = GetParam().type;
  for (float value : {-3.0f, 2.5f, 1e-20f, -1e-38f}) {
    std::vector<float> x(256, value);
    x[17] = 0.0f;
    const std::vector<float> y = dequantize(type, quantize(type, x), x.size());
    for (float v : y) {
      ASSERT_TRUE(std::isfinite(v)) << value;
      EXPECT_LE(std::fabs(v), std::fabs(value) * 1.1f) << value;
    }
    // Values far below fp16's range may flush to zero; representable ones are kept.
    if (std::fabs(value) > 1e-3f) {
      EXPECT_LE(relative_rms_error(x, y), 0.05) << value;
    }
  }
}

TEST_P(QuantAccuracy, HugeOutliersGiveFiniteValues) {
  const DType type = GetParam().type;
  for (float outlier : {1e4f, -3e5f, 1e9f, -3e38f}) {
    std::vector<float> x = gaussian(512, 5);
    x[40] = outlier;
    x[300] = -outlier;
    const std::vector<float> y = dequantize(type, quantize(type, x), x.size());
    for (float v : y) ASSERT_TRUE(std::isfinite(v)) << outlier;
    if (std::fabs(outlier) <= 1e4f) {  // within fp16 range: the outlier itself is kept
      EXPECT_NEAR(y[40], outlier, std::fabs(outlier) * 0.02) << outlier;
      EXPECT_NEAR(y[300], -outlier, std::fabs(outlier) * 0.02) << outlier;
    }
  }
}

TEST_P(QuantAccuracy, RequantizingIsStable) {
  const DType type = GetParam().type;
  const std::vector<float> x = gaussian(4096, 42);
  const std::vector<uint8_t> q1 = quantize(type, x);
  const std::vector<float> y1 = dequantize(type, q1, x.size());
  const std::vector<uint8_t> q2 = quantize(type, y1);
  const std::vector<float> y2 = dequantize(type, q2, x.size());
  size_t same_bytes = 0;
  for (size_t i = 0; i < q1.size(); ++i) same_bytes += q1[i] == q2[i];
  const double drift = relative_rms_error(y1, y2);
  const double first_error = relative_rms_error(x, y1);
  std::printf("%s requantize: %zu of %zu bytes equal, drift %.2e (first error %.2e)\n",
              dtype_name(type).data(), same_bytes, q1.size(), drift, first_error);
  if (type == DType::Q8_0 || type == DType::Q6_K || type == DType::Q4_0) {
    EXPECT_EQ(y2, y1);  // these formats find the grid the data already lies on
  } else {
    // K formats re-derive their shared fp16 scales from the fits, so a few sub-blocks may move
    // by a fraction of a level; the values must stay close and no worse an approximation of x.
    EXPECT_LE(drift, 0.15 * first_error);
    const double second_error = relative_rms_error(x, y2);
    std::printf("%s error after requantizing %.5f\n", dtype_name(type).data(), second_error);
    EXPECT_LE(second_error, 1.02 * first_error);
  }
  // Quantizing the same input twice is deterministic.
  EXPECT_EQ(quantize(type, x), q1);
}

INSTANTIATE_TEST_SUITE_P(
    Formats, QuantAccuracy,
    ::testing::Values(AccuracyCase{DType::Q8_0, 0.01}, AccuracyCase{DType::Q6_K, 0.03},
                      AccuracyCase{DType::Q5_K, 0.05}, AccuracyCase{DType::Q4_K, 0.09},
                      AccuracyCase{DType::Q4_0, 0.1}),
    [](const auto& param_info) { return std::string(dtype_name(param_info.param.type)); });

}  // namespace
}  // namespace moerun
