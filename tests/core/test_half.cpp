// Exhaustive checks of the fp16 and bf16 conversions in core/half.h.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/half.h"

namespace moerun {
namespace {

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

float float_of(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// The value of an fp16 bit pattern from the IEEE definition (finite patterns only).
double fp16_value_by_definition(uint16_t h) {
  const int sign = (h >> 15) ? -1 : 1;
  const int exp = (h >> 10) & 31;
  const int mant = h & 1023;
  if (exp == 0) return sign * std::ldexp(mant, -24);
  return sign * std::ldexp(1024 + mant, exp - 25);
}

bool fp16_is_nan(uint16_t h) {
  return (h & 0x7c00) == 0x7c00 && (h & 0x3ff) != 0;
}

TEST(Half, Fp16ToF32MatchesDefinitionForEveryPattern) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const auto p = static_cast<uint16_t>(h);
    const float f = fp16_to_f32(p);
    if ((p & 0x7c00) == 0x7c00) {
      if (fp16_is_nan(p)) {
        EXPECT_TRUE(std::isnan(f)) << std::hex << h;
      } else {
        EXPECT_TRUE(std::isinf(f)) << std::hex << h;
      }
      EXPECT_EQ(std::signbit(f), (p >> 15) != 0) << std::hex << h;
      continue;
    }
    EXPECT_EQ(static_cast<double>(f), fp16_value_by_definition(p)) << std::hex << h;
    EXPECT_EQ(std::signbit(f), (p >> 15) != 0) << std::hex << h;  // -0 stays -0
  }
}

TEST(Half, Fp16RoundTripIsExactForEveryPattern) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const auto p = static_cast<uint16_t>(h);
    const uint16_t back = f32_to_fp16(fp16_to_f32(p));
    if (fp16_is_nan(p)) {
      EXPECT_TRUE(fp16_is_nan(back)) << std::hex << h;
      EXPECT_EQ(back >> 15, p >> 15) << std::hex << h;
    } else {
      EXPECT_EQ(back, p) << std::hex << h;
    }
  }
}

TEST(Half, F32ToFp16RoundsToNearestTiesToEven) {
  // Between every two adjacent non-negative finite halves (subnormals included), the exact
  // midpoint goes to the even pattern and its f32 neighbours go to the nearer half.
  for (uint32_t h = 0; h < 0x7bff; ++h) {
    const float a = fp16_to_f32(static_cast<uint16_t>(h));
    const float b = fp16_to_f32(static_cast<uint16_t>(h + 1));
    const float mid = (a + b) / 2;  // exact in f32
    ASSERT_EQ(static_cast<double>(mid) * 2, static_cast<double>(a) + b);
    const uint16_t even = (h & 1) ? static_cast<uint16_t>(h + 1) : static_cast<uint16_t>(h);
    EXPECT_EQ(f32_to_fp16(mid), even) << std::hex << h;
    EXPECT_EQ(f32_to_fp16(-mid), even | 0x8000) << std::hex << h;
    EXPECT_EQ(f32_to_fp16(std::nextafter(mid, 0.0f)), h) << std::hex << h;
    EXPECT_EQ(f32_to_fp16(std::nextafter(mid, 1e9f)), h + 1) << std::hex << h;
  }
}

TEST(Half, F32ToFp16EdgeCases) {
  EXPECT_EQ(f32_to_fp16(0.0f), 0x0000);
  EXPECT_EQ(f32_to_fp16(-0.0f), 0x8000);
  EXPECT_EQ(f32_to_fp16(1.0f), 0x3c00);
  EXPECT_EQ(f32_to_fp16(-2.0f), 0xc000);
  EXPECT_EQ(f32_to_fp16(0.5f), 0x3800);
  EXPECT_EQ(f32_to_fp16(65504.0f), 0x7bff);
  EXPECT_EQ(f32_to_fp16(65519.996f), 0x7bff);  // below the midpoint to 65536
  EXPECT_EQ(f32_to_fp16(65520.0f), 0x7c00);    // tie with an odd pattern: to infinity
  EXPECT_EQ(f32_to_fp16(1e10f), 0x7c00);
  EXPECT_EQ(f32_to_fp16(-1e10f), 0xfc00);
  EXPECT_EQ(f32_to_fp16(INFINITY), 0x7c00);
  EXPECT_EQ(f32_to_fp16(-INFINITY), 0xfc00);
  EXPECT_TRUE(fp16_is_nan(f32_to_fp16(NAN)));
  EXPECT_TRUE(fp16_is_nan(f32_to_fp16(float_of(0x7f800001u))));  // signalling NaN stays NaN
  EXPECT_EQ(f32_to_fp16(std::ldexp(1.0f, -24)), 0x0001);         // smallest subnormal
  EXPECT_EQ(f32_to_fp16(std::ldexp(1.0f, -25)), 0x0000);         // tie to even (zero)
  EXPECT_EQ(f32_to_fp16(std::nextafter(std::ldexp(1.0f, -25), 1.0f)), 0x0001);
  EXPECT_EQ(f32_to_fp16(std::ldexp(1.0f, -26)), 0x0000);
  EXPECT_EQ(f32_to_fp16(std::ldexp(1.0f, -14)), 0x0400);     // smallest normal
  EXPECT_EQ(f32_to_fp16(std::ldexp(1023.0f, -24)), 0x03ff);  // largest subnormal
  EXPECT_EQ(f32_to_fp16(1e-30f), 0x0000);
}

TEST(Bf16, RoundTripIsExactForEveryPattern) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const auto p = static_cast<uint16_t>(h);
    const float f = bf16_to_f32(p);
    EXPECT_EQ(bits_of(f), h << 16);
    const uint16_t back = f32_to_bf16(f);
    const bool nan = (p & 0x7f80) == 0x7f80 && (p & 0x7f) != 0;
    if (nan) {
      EXPECT_TRUE(std::isnan(bf16_to_f32(back))) << std::hex << h;
      EXPECT_EQ(back >> 15, p >> 15) << std::hex << h;
    } else {
      EXPECT_EQ(back, p) << std::hex << h;
    }
  }
}

TEST(Bf16, RoundsToNearestTiesToEven) {
  for (uint32_t h = 0; h < 0x7f80; ++h) {
    const float mid = float_of((h << 16) | 0x8000u);  // exactly halfway to h + 1
    const uint32_t even = (h & 1) ? h + 1 : h;
    EXPECT_EQ(f32_to_bf16(mid), even) << std::hex << h;
    EXPECT_EQ(f32_to_bf16(float_of((h << 16) | 0x7fffu)), h) << std::hex << h;
    EXPECT_EQ(f32_to_bf16(float_of((h << 16) | 0x8001u)), h + 1) << std::hex << h;
  }
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(f32_to_bf16(-123.5f), 0xc2f7);
  EXPECT_EQ(f32_to_bf16(INFINITY), 0x7f80);
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(NAN))));
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(float_of(0x7f800001u)))));  // low payload only
}

}  // namespace
}  // namespace moerun
