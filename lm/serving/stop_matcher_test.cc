#include "lm/serving/stop_matcher.h"

#include "gtest/gtest.h"

namespace helpline::lm {
namespace {

TEST(StopMatcherTest, MatchesAcrossPiecesAndCutsBeforeTheStop) {
  StopMatcher m({"END"});
  EXPECT_EQ(m.Push("abcE"), "abc");
  EXPECT_EQ(m.Push("N"), "");
  EXPECT_FALSE(m.stopped());
  EXPECT_EQ(m.Push("D and more"), "");
  EXPECT_TRUE(m.stopped());
  EXPECT_EQ(m.stop_offset(), 3u);
  EXPECT_EQ(m.Push("x"), "");
  EXPECT_EQ(m.Flush(), "");
}

TEST(StopMatcherTest, ReleasesTextThatCanNoLongerMatch) {
  StopMatcher m({"END"});
  EXPECT_EQ(m.Push("E"), "");
  EXPECT_EQ(m.Push("x"), "Ex");
  EXPECT_EQ(m.Push("EN"), "");
  EXPECT_EQ(m.Flush(), "EN");
  EXPECT_FALSE(m.stopped());
}

TEST(StopMatcherTest, OverlappingPrefixes) {
  StopMatcher m({"aab"});
  EXPECT_EQ(m.Push("aa"), "");
  EXPECT_EQ(m.Push("a"), "a");
  EXPECT_EQ(m.Push("b"), "");
  EXPECT_TRUE(m.stopped());
  EXPECT_EQ(m.stop_offset(), 1u);
}

TEST(StopMatcherTest, EarliestOfSeveralStopsWins) {
  StopMatcher m({"world", "lo w"});
  EXPECT_EQ(m.Push("hello world"), "hel");
  EXPECT_EQ(m.stop_offset(), 3u);
}

TEST(StopMatcherTest, StopInsideOnePiece) {
  StopMatcher m({"\n\n"});
  EXPECT_EQ(m.Push("Hi.\n\nBye"), "Hi.");
  EXPECT_TRUE(m.stopped());
}

TEST(StopMatcherTest, NoStopsPassEverythingThrough) {
  StopMatcher m({});
  EXPECT_EQ(m.Push("abc"), "abc");
  EXPECT_EQ(m.pushed_bytes(), 3u);
  EXPECT_EQ(m.Flush(), "");
}

TEST(StopMatcherTest, MultiByteStop) {
  StopMatcher m({"谢谢"});
  EXPECT_EQ(m.Push("好的谢"), "好的");
  EXPECT_EQ(m.Push("谢你"), "");
  EXPECT_TRUE(m.stopped());
  EXPECT_EQ(m.stop_offset(), 6u);
}

}  // namespace
}  // namespace helpline::lm
