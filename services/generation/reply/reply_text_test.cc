#include "services/generation/reply/reply_text.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace helpline::generation::reply {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Optional;

TEST(CollapseWhitespaceTest, FoldsRunsAndNewlinesAndStrips) {
  EXPECT_EQ(CollapseWhitespace("  Where is\n\n my   order?\t "), "Where is my order?");
  EXPECT_EQ(CollapseWhitespace("我的订单\u3000到哪了"), "我的订单 到哪了");
  EXPECT_EQ(CollapseWhitespace(" \n "), "");
}

TEST(CutToLastSentenceTest, EnglishCutsAfterLastTerminator) {
  EXPECT_THAT(
      CutToLastSentence("Thanks! I've looked up order A-1234567. You can follow it under My"),
      Optional(std::string("Thanks! I've looked up order A-1234567.")));
  EXPECT_THAT(CutToLastSentence("Could you give me your order number? It is in the"),
              Optional(std::string("Could you give me your order number?")));
}

TEST(CutToLastSentenceTest, ClosingQuotesAndBracketsStayWithTheSentence) {
  EXPECT_THAT(CutToLastSentence("Try \"where is my order?\" and I will help. Then we"),
              Optional(std::string("Try \"where is my order?\" and I will help.")));
  EXPECT_THAT(CutToLastSentence("Sure (it's in My Orders.) The tracking"),
              Optional(std::string("Sure (it's in My Orders.)")));
}

TEST(CutToLastSentenceTest, DecimalPointsAndDomainsDoNotEndASentence) {
  EXPECT_EQ(CutToLastSentence("The refund of 49.99 goes to shop.example and"), std::nullopt);
  EXPECT_THAT(CutToLastSentence("You paid 49.99. The refund"),
              Optional(std::string("You paid 49.99.")));
}

TEST(CutToLastSentenceTest, ChineseTerminatorsNeedNoSpace) {
  EXPECT_THAT(CutToLastSentence("已查到订单 A-1234567。您可以在“我的订单”中实时跟踪，每个配送"),
              Optional(std::string("已查到订单 A-1234567。")));
  EXPECT_THAT(CutToLastSentence("请问您的订单号是多少？可以在确认邮件"),
              Optional(std::string("请问您的订单号是多少？")));
  EXPECT_THAT(CutToLastSentence("好的，例如：“我要退货。”还有"),
              Optional(std::string("好的，例如：“我要退货。”")));
}

TEST(CutToLastSentenceTest, NoCompleteSentence) {
  EXPECT_EQ(CutToLastSentence("Thanks, I have looked up your order and it"), std::nullopt);
  EXPECT_EQ(CutToLastSentence("谢谢，已为您查询订单"), std::nullopt);
  EXPECT_EQ(CutToLastSentence(""), std::nullopt);
}

TEST(CutToLastSentenceTest, CompleteTextIsKept) {
  EXPECT_THAT(CutToLastSentence("Happy to help. Anything else?  "),
              Optional(std::string("Happy to help. Anything else?")));
}

TEST(IsBlankTest, PunctuationAndSpaceOnly) {
  EXPECT_TRUE(IsBlank(""));
  EXPECT_TRUE(IsBlank(" ... !? \n"));
  EXPECT_TRUE(IsBlank("。，！“”"));
  EXPECT_FALSE(IsBlank("ok."));
  EXPECT_FALSE(IsBlank("好。"));
  EXPECT_FALSE(IsBlank("42"));
}

TEST(RepetitionUnitsTest, WordsLowercasedAndCjkCharacters) {
  EXPECT_THAT(RepetitionUnits("Thanks, THANKS! 好的。 1111 A-1234567"),
              ElementsAre("thanks", "thanks", "好", "的", "a1234567"));
}

TEST(FindRepetitionTest, NormalRepliesPass) {
  const RepetitionOptions options;
  EXPECT_EQ(FindRepetition("Thanks! I've looked up order A-1234567. You can follow it live "
                           "under My Orders > Track package, and we e-mail you at every step "
                           "until it's delivered.",
                           options),
            "");
  EXPECT_EQ(FindRepetition("谢谢！已查到订单 A-1234567。您可以在“我的订单 > 查看物流”中实时跟踪，"
                           "每个配送节点我们都会发邮件通知您。",
                           options),
            "");
  EXPECT_EQ(FindRepetition("谢谢您！谢谢", options), "");
  // Digit groups are not units: a card or phone number is no repetition.
  EXPECT_EQ(FindRepetition("Card 4111 1111 1111 1111 and 0 0 0 0", options), "");
}

TEST(FindRepetitionTest, ShortNgramRepeatedThreeTimes) {
  const RepetitionOptions options;
  EXPECT_THAT(FindRepetition("Thank you thank you thank you for waiting", options),
              HasSubstr("'thank you' x3"));
  EXPECT_THAT(FindRepetition("好的好的好的，马上处理", options), HasSubstr("x3"));
}

TEST(FindRepetitionTest, LongNgramRepeatedTwice) {
  const RepetitionOptions options;
  EXPECT_THAT(FindRepetition("I will check your order now. I will check your order now.", options),
              HasSubstr("x2"));
}

TEST(FindRepetitionTest, LowDistinctRatio) {
  RepetitionOptions options;
  options.max_ngram = 0;  // Only the ratio.
  EXPECT_THAT(FindRepetition("order order item order item order item order the the order item "
                             "order item the order item order the item",
                             options),
              HasSubstr("distinct units 3/"));
  options.distinct_min_units = 0;
  EXPECT_EQ(FindRepetition("order order item order item order item order the the order item "
                           "order item the order item order the item",
                           options),
            "");
}

}  // namespace
}  // namespace helpline::generation::reply

namespace helpline::generation::reply {
namespace {

TEST(SentenceEndsTest, EveryCompleteSentence) {
  EXPECT_THAT(SentenceEnds("Hi. Order 3.5 is here! Then"), ElementsAre(3, 22));
  EXPECT_THAT(SentenceEnds("好的。马上"), ElementsAre(9));
  EXPECT_THAT(SentenceEnds("no end"), ::testing::IsEmpty());
}

TEST(CutBeforeRepetitionTest, KeepsTheSentencesBeforeTheLoop) {
  const RepetitionOptions options;
  EXPECT_EQ(CutBeforeRepetition("Sure. Is there anything else? Is there anything else?", options),
            "Sure. Is there anything else?");
  EXPECT_EQ(CutBeforeRepetition("Yes yes yes yes. Fine.", options), std::nullopt);
  EXPECT_EQ(CutBeforeRepetition("All good here.", options), "All good here.");
}

}  // namespace
}  // namespace helpline::generation::reply
