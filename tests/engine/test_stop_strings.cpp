// Stop strings: found across pushes, never shown, held-back text released when it turns out safe.
#include <gtest/gtest.h>

#include "engine/stop_strings.h"

namespace moerun {
namespace {

TEST(StopStrings, StopSpanningPiecesIsFoundAndHidden) {
  StopStringMatcher m({"</answer>"});
  std::string shown = m.push("The result is 4");
  shown += m.push("2.</ans");
  EXPECT_EQ(shown, "The result is 42.");
  EXPECT_FALSE(m.stopped());
  shown += m.push("wer> and more");
  EXPECT_TRUE(m.stopped());
  EXPECT_EQ(shown, "The result is 42.");
  EXPECT_EQ(m.matched(), "</answer>");
  EXPECT_EQ(m.push("later"), "");
  EXPECT_EQ(m.flush(), "");
}

TEST(StopStrings, HeldBackPrefixIsReleasedWhenItDiverges) {
  StopStringMatcher m({"STOP"});
  EXPECT_EQ(m.push("ab ST"), "ab ");
  EXPECT_EQ(m.push("ART"), "START");
  EXPECT_EQ(m.push("S"), "");
  EXPECT_EQ(m.flush(), "S");
  EXPECT_FALSE(m.stopped());
}

TEST(StopStrings, EarliestOfSeveralWins) {
  StopStringMatcher m({"world", "lo w"});
  EXPECT_EQ(m.push("hello world"), "hel");
  EXPECT_EQ(m.matched(), "lo w");
}

TEST(StopStrings, NoStopsPassEverythingThrough) {
  StopStringMatcher m({"", ""});
  EXPECT_EQ(m.push("abc"), "abc");
  EXPECT_EQ(m.flush(), "");
}

TEST(StopStrings, StopAtTheVeryStart) {
  StopStringMatcher m({"\n\n"});
  EXPECT_EQ(m.push("\n"), "");
  EXPECT_EQ(m.push("\nrest"), "");
  EXPECT_TRUE(m.stopped());
}

}  // namespace
}  // namespace moerun
