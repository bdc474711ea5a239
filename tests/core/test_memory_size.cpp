#include "core/memory_size.h"

#include <gtest/gtest.h>

#include "core/error.h"

namespace moerun {
namespace {

TEST(MemorySize, ParsesUnitsAsPowersOf1024) {
  EXPECT_EQ(parse_memory_size("16GiB"), 16ull << 30);
  EXPECT_EQ(parse_memory_size("16g"), 16ull << 30);
  EXPECT_EQ(parse_memory_size("12000MiB"), 12000ull << 20);
  EXPECT_EQ(parse_memory_size("1.5GB"), 3ull << 29);
  EXPECT_EQ(parse_memory_size("4096"), 4096u);
  EXPECT_EQ(parse_memory_size("2TiB"), 2ull << 40);
}

TEST(MemorySize, RejectsMalformedSizes) {
  for (const char* bad : {"", "GiB", "16 GiB", "16XB", "-1G", "0", "1e3G", "1..5G", "abc"}) {
    EXPECT_THROW(parse_memory_size(bad), Error) << bad;
  }
}

}  // namespace
}  // namespace moerun
