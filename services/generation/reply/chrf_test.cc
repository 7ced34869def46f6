#include "services/generation/reply/chrf.h"

#include <cmath>

#include "gtest/gtest.h"

namespace helpline::generation::reply {
namespace {

// The values below are computed by hand from sacrebleu's definition (chrF2, n = 1..6,
// whitespace deleted, averages over the orders both sides have).
TEST(ChrfTest, MatchesHandComputedValues) {
  EXPECT_DOUBLE_EQ(SentenceChrf("Your table is booked.", "Your table is booked."), 100.0);
  // Whitespace does not count; case does.
  EXPECT_DOUBLE_EQ(SentenceChrf("a b  c", "abc"), 100.0);
  EXPECT_DOUBLE_EQ(SentenceChrf("ABC", "abc"), 0.0);
  EXPECT_DOUBLE_EQ(SentenceChrf("", "abc"), 0.0);
  // "ab" vs "abc": orders 1 and 2 only. P = (2/2 + 1/1) / 2 = 1, R = (2/3 + 1/2) / 2 = 7/12,
  // F2 = 5 P R / (4 P + R) = 7/11.
  EXPECT_NEAR(SentenceChrf("ab", "abc"), 700.0 / 11, 1e-9);
  // "thecat" vs "thehat": matches 5/6, 3/5, 1/4, 0, 0, 0 on both sides: P = R = 101/360.
  EXPECT_NEAR(SentenceChrf("the cat", "the hat"), 10100.0 / 360, 1e-9);
  // Characters are code points: "né" vs "ne" match 1 of 2 unigrams, 0 of 1 bigram.
  EXPECT_NEAR(SentenceChrf("né", "ne"), 25.0, 1e-9);
}

TEST(ChrfTest, CorpusScoreSumsTheCountsBeforeAveraging) {
  ChrfAccumulator chrf;
  chrf.Add("ab", "abc");
  chrf.Add("ab", "ab");
  // Unigrams 4/4 and 4/5, bigrams 2/2 and 2/3: P = 1, R = (4/5 + 2/3) / 2 = 11/15,
  // F2 = 5 (11/15) / (4 + 11/15) = 55/71 (the mean of the two sentence scores would differ).
  EXPECT_NEAR(chrf.Score(), 5500.0 / 71, 1e-9);
  EXPECT_EQ(chrf.pairs(), 2u);
  EXPECT_GT(std::abs(chrf.Score() - (SentenceChrf("ab", "abc") + 100.0) / 2), 1.0);

  // A reference without n-grams of an order contributes no hypothesis n-grams of it either
  // (sacrebleu): "abcd" vs "ab" adds nothing to order 3. Orders 1-3: P = (5/7 + 3/5 + 1/1) / 3
  // = 27/35, R = 1, F2 = 5 (27/35) / (4 (27/35) + 1) = 135/143.
  ChrfAccumulator short_reference;
  short_reference.Add("abc", "abc");
  short_reference.Add("abcd", "ab");
  EXPECT_NEAR(short_reference.Score(), 13500.0 / 143, 1e-9);
}

TEST(ChrfTest, ProfilesGiveTheSameScoresAsTexts) {
  const ChrfProfile a("Your order will be ready shortly."), b("Your order is ready.");
  EXPECT_DOUBLE_EQ(SentenceChrf(a, b),
                   SentenceChrf("Your order will be ready shortly.", "Your order is ready."));
  // chrF is not symmetric: beta 2 weighs recall of the reference's n-grams.
  EXPECT_NE(SentenceChrf(a, b), SentenceChrf(b, a));
  EXPECT_EQ(a.total(0), 28);  // characters without whitespace
  EXPECT_EQ(a.total(5), 23);
  EXPECT_EQ(ChrfProfile("abc").total(5), 0);
}

}  // namespace
}  // namespace helpline::generation::reply
