#include "services/preprocess/preprocessor.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace helpline::preprocess {
namespace {

using common::v1::PiiKind;
using ::testing::ElementsAre;

class PreprocessorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto created = Preprocessor::Create({});
    ASSERT_TRUE(created.ok()) << created.status();
    p_ = std::move(*created);
  }

  common::v1::PreprocessedText Run(const std::string& text, const std::string& hint = "") {
    auto result = p_->Process(text, hint);
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *result : common::v1::PreprocessedText();
  }

  std::vector<std::string> TokenTexts(const std::string& text) {
    common::v1::PreprocessedText r = Run(text);
    std::vector<std::string> out;
    for (const auto& t : r.tokens()) out.push_back(t.text());
    return out;
  }

  // "KIND:slice" for each span, the slice taken from the normalized text by offsets.
  std::vector<std::string> Spans(const std::string& text) {
    common::v1::PreprocessedText r = Run(text);
    std::vector<std::string> out;
    for (const auto& s : r.pii_spans()) {
      out.push_back(std::string(PlaceholderFor(s.kind())) +
                    r.normalized_text().substr(s.begin(), s.end() - s.begin()));
    }
    return out;
  }

  std::unique_ptr<Preprocessor> p_;
};

TEST_F(PreprocessorTest, NfkcFoldsFullWidth) {
  EXPECT_EQ(Run("ＡＢＣ１２３").normalized_text(), "ABC123");
  EXPECT_EQ(Run("ｏｒｄｅｒ　１２３４５６７８").normalized_text(), "order 12345678");  // U+3000
  EXPECT_EQ(Run("ﬁle №５").normalized_text(), "file No5");                             // ligature
  EXPECT_EQ(Run("e\u0301").normalized_text(), "\u00e9");                               // composed
}

TEST_F(PreprocessorTest, RemovesControlAndZeroWidthCharacters) {
  EXPECT_EQ(Run("a\u200Bb\u200Cc\u200Dd\u200Ee\u200Ff\uFEFFg\u2060h\u00ADi").normalized_text(),
            "abcdefghi");
  EXPECT_EQ(Run(std::string("x\x01y\x1b[0mz\x7f\0w", 11)).normalized_text(), "xy[0mzw");
  // A zero-width space between a letter and its accent no longer blocks composition.
  EXPECT_EQ(Run("e\u200B\u0301").normalized_text(), "\u00e9");
}

TEST_F(PreprocessorTest, CollapsesWhitespace) {
  EXPECT_EQ(Run("  hello \t\t world  ").normalized_text(), "hello world");
  EXPECT_EQ(Run("line one \r\n\r\n  line two\u2028three").normalized_text(),
            "line one\nline two\nthree");
  EXPECT_EQ(Run("a\u00A0\u3000b").normalized_text(), "a b");
  EXPECT_EQ(Run(" \t\n ").normalized_text(), "");
}

TEST_F(PreprocessorTest, RejectsInvalidUtf8) {
  for (const std::string& bad :
       {std::string("\xff"), std::string("ok \xc3"), std::string("\xc0\xaf"),
        std::string("\xed\xa0\x80"), std::string("\xf4\x90\x80\x80")}) {
    auto result = p_->Process(bad, "");
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(result.status().message(), "text: not valid UTF-8");
  }
}

TEST_F(PreprocessorTest, RejectsOversizedText) {
  auto small = Preprocessor::Create({.max_text_bytes = 10});
  ASSERT_TRUE(small.ok());
  EXPECT_TRUE((*small)->Process("0123456789", "").ok());
  auto result = (*small)->Process("0123456789A", "");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(result.status().message(), "text: 11 bytes is over the limit of 10");
  // NFKC expansion is capped too: U+FDFA is 3 bytes in and 33 bytes out.
  std::string expanding;
  for (int i = 0; i < 3; ++i) expanding += "\uFDFA";
  auto expanded = (*small)->Process(expanding, "");
  ASSERT_FALSE(expanded.ok());
  EXPECT_EQ(expanded.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(PreprocessorTest, EmptyTextIsFine) {
  common::v1::PreprocessedText r = Run("");
  EXPECT_EQ(r.normalized_text(), "");
  EXPECT_EQ(r.tokens_size(), 0);
  EXPECT_EQ(r.language(), "und");
}

TEST_F(PreprocessorTest, SegmentsEnglishWordsOnly) {
  EXPECT_THAT(TokenTexts("Hello, world! Where's order #12345678?"),
              ElementsAre("Hello", "world", "Where's", "order", "12345678"));
}

TEST_F(PreprocessorTest, SegmentsChineseWithByteOffsets) {
  const std::string text = "我想查询我的订单状态，订单号是12345678。";
  common::v1::PreprocessedText r = Run(text);
  ASSERT_GE(r.tokens_size(), 5);
  std::string joined;
  size_t previous_end = 0;
  bool has_multi_character_word = false;
  for (const auto& t : r.tokens()) {
    ASSERT_LE(t.begin(), t.end());
    ASSERT_LE(t.end(), r.normalized_text().size());
    EXPECT_GE(t.begin(), previous_end);
    EXPECT_EQ(r.normalized_text().substr(t.begin(), t.end() - t.begin()), t.text());
    previous_end = t.end();
    joined += t.text();
    if (t.text().size() > 3) has_multi_character_word = true;  // One Han char = 3 bytes.
  }
  // The dictionary joins characters into words; punctuation is left out.
  EXPECT_TRUE(has_multi_character_word);
  EXPECT_EQ(joined, "我想查询我的订单状态订单号是12345678");
  EXPECT_THAT(TokenTexts("订单状态"), ::testing::Contains("订单"));
  // Full-width punctuation folds to ASCII under NFKC; the offsets refer to the folded text.
  EXPECT_EQ(r.normalized_text(), "我想查询我的订单状态,订单号是12345678。");
}

TEST_F(PreprocessorTest, DetectsLanguageByScript) {
  EXPECT_EQ(Run("where is my order").language(), "en");
  EXPECT_EQ(Run("我的订单在哪里").language(), "zh");
  EXPECT_EQ(Run("我的order到了吗").language(), "zh");
  EXPECT_EQ(Run("I ordered a 手机 last week, where is it").language(), "en");
  EXPECT_EQ(Run("12345678").language(), "und");
  EXPECT_EQ(Run("Привет, где мой заказ").language(), "und");
  EXPECT_EQ(Run("こんにちは").language(), "und");
}

TEST_F(PreprocessorTest, HonorsEnglishOrChineseHint) {
  EXPECT_EQ(Run("where is my order", "zh").language(), "zh");
  EXPECT_EQ(Run("我的订单", "EN-us").language(), "en");
  EXPECT_EQ(Run("我的订单", "fr").language(), "zh");
}

TEST_F(PreprocessorTest, FindsEmails) {
  EXPECT_THAT(Spans("contact john.doe+shop@example.co.uk, please"),
              ElementsAre("[EMAIL]john.doe+shop@example.co.uk"));
  EXPECT_THAT(Spans("我的邮箱是ａ＠ｂ．ｃｏｍ谢谢"), ElementsAre("[EMAIL]a@b.com"));
  EXPECT_THAT(Spans("not an address: a@b or @example.com"), ElementsAre());
}

TEST_F(PreprocessorTest, FindsPhoneNumbers) {
  EXPECT_THAT(Spans("call +1 (555) 123-4567 now"), ElementsAre("[PHONE]+1 (555) 123-4567"));
  EXPECT_THAT(Spans("电话+86 138 0013 8000"), ElementsAre("[PHONE]+86 138 0013 8000"));
  EXPECT_THAT(Spans("手机13800138000"), ElementsAre("[PHONE]13800138000"));  // No spaces in zh.
  EXPECT_THAT(Spans("my mobile is 13800138000."), ElementsAre("[PHONE]13800138000"));
  EXPECT_THAT(Spans("office 020 7946 0958"), ElementsAre("[PHONE]020 7946 0958"));
  EXPECT_THAT(Spans("us: 555-123-4567 or 555.987.6543"),
              ElementsAre("[PHONE]555-123-4567", "[PHONE]555.987.6543"));
  EXPECT_THAT(Spans("(555) 123-4567"), ElementsAre("[PHONE](555) 123-4567"));
  EXPECT_THAT(Spans("toll free 1-800-555-0199"), ElementsAre("[PHONE]1-800-555-0199"));
}

TEST_F(PreprocessorTest, OrderNumbersDatesAndAddressesAreNotPhones) {
  EXPECT_THAT(Spans("my order 12345678 has not arrived"), ElementsAre());
  EXPECT_THAT(Spans("order A-1234567, ref 123456789012"), ElementsAre());
  EXPECT_THAT(Spans("ordered on 2024-01-15 or 15.01.2024"), ElementsAre());
  EXPECT_THAT(Spans("server 192.168.1.100"), ElementsAre());
  EXPECT_THAT(Spans("code 1234-5678"), ElementsAre());
  EXPECT_THAT(Spans("+12 34"), ElementsAre());  // Too few digits for E.164.
}

TEST_F(PreprocessorTest, FindsPaymentCardsWithLuhn) {
  EXPECT_THAT(Spans("card 4111 1111 1111 1111 thanks"), ElementsAre("[CARD]4111 1111 1111 1111"));
  EXPECT_THAT(Spans("card 4111-1111-1111-1111"), ElementsAre("[CARD]4111-1111-1111-1111"));
  EXPECT_THAT(Spans("5555555555554444"), ElementsAre("[CARD]5555555555554444"));
  EXPECT_THAT(Spans("amex 3782 822463 10005"), ElementsAre("[CARD]3782 822463 10005"));
  // Followed by the security code: the card is the groups that pass.
  EXPECT_THAT(Spans("4111 1111 1111 1111 123"), ElementsAre("[CARD]4111 1111 1111 1111"));
  // Luhn failures are neither cards nor phones.
  EXPECT_THAT(Spans("card 4111 1111 1111 1112"), ElementsAre());
  EXPECT_THAT(Spans("4111111111111112"), ElementsAre());
  // A 13+ digit number glued to letters is an identifier, not a card.
  EXPECT_THAT(Spans("ref X4111111111111111"), ElementsAre());
}

TEST_F(PreprocessorTest, RedactsAllKinds) {
  common::v1::PreprocessedText r =
      Run("mail a@b.com or call +1 555 123 4567, card 4111 1111 1111 1111.");
  EXPECT_EQ(r.redacted_text(), "mail [EMAIL] or call [PHONE], card [CARD].");
  ASSERT_EQ(r.pii_spans_size(), 3);
  EXPECT_EQ(r.pii_spans(0).kind(), common::v1::PII_KIND_EMAIL);
  EXPECT_EQ(r.pii_spans(1).kind(), common::v1::PII_KIND_PHONE);
  EXPECT_EQ(r.pii_spans(2).kind(), common::v1::PII_KIND_PAYMENT_CARD);
  EXPECT_EQ(Run("nothing here").redacted_text(), "nothing here");
}

TEST(LuhnTest, KnownNumbers) {
  EXPECT_TRUE(PassesLuhn("4111111111111111"));
  EXPECT_TRUE(PassesLuhn("378282246310005"));
  EXPECT_TRUE(PassesLuhn("6011111111111117"));
  EXPECT_FALSE(PassesLuhn("4111111111111112"));
  EXPECT_FALSE(PassesLuhn("1234567812345678"));
  EXPECT_FALSE(PassesLuhn(""));
  EXPECT_FALSE(PassesLuhn("41111x1111111111"));
}

}  // namespace
}  // namespace helpline::preprocess
