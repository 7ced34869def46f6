#include "lm/tokenizer/pretokenize.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace helpline::lm::bpe_internal {
namespace {

using ::testing::ElementsAre;

std::vector<std::string> Pieces(absl::string_view text) {
  std::vector<std::string> pieces;
  for (size_t pos = 0; pos < text.size();) {
    const size_t end = NextPieceEnd(text, pos);
    EXPECT_GT(end, pos);
    EXPECT_LE(end, text.size());
    if (end <= pos || end > text.size()) break;
    pieces.emplace_back(text.substr(pos, end - pos));
    pos = end;
  }
  return pieces;
}

TEST(PreTokenizeTest, WordsTakeOneLeadingSpace) {
  EXPECT_THAT(Pieces("Hello world"), ElementsAre("Hello", " world"));
  EXPECT_THAT(Pieces("Hello, world!"), ElementsAre("Hello", ",", " world", "!"));
  EXPECT_THAT(Pieces("a 12 !? b"), ElementsAre("a", " 12", " !?", " b"));
  EXPECT_THAT(Pieces("abc123def"), ElementsAre("abc", "123", "def"));
}

TEST(PreTokenizeTest, Contractions) {
  EXPECT_THAT(Pieces("I'm don't we're they've he'll she'd it's"),
              ElementsAre("I", "'m", " don", "'t", " we", "'re", " they", "'ve", " he", "'ll",
                          " she", "'d", " it", "'s"));
  // Case-sensitive, and only at the start of a piece.
  EXPECT_THAT(Pieces("WE'LL"), ElementsAre("WE", "'", "LL"));
  EXPECT_THAT(Pieces("x 's"), ElementsAre("x", " '", "s"));
  EXPECT_THAT(Pieces("!'s"), ElementsAre("!'", "s"));
  EXPECT_THAT(Pieces("'sup"), ElementsAre("'s", "up"));
  EXPECT_THAT(Pieces("''re"), ElementsAre("''", "re"));
  EXPECT_THAT(Pieces("'"), ElementsAre("'"));
}

TEST(PreTokenizeTest, WhitespaceRunsLeaveTheirLastSpaceToTheNextWord) {
  EXPECT_THAT(Pieces("a  b"), ElementsAre("a", " ", " b"));
  EXPECT_THAT(Pieces("a    b"), ElementsAre("a", "   ", " b"));
  EXPECT_THAT(Pieces("a\n\nb"), ElementsAre("a", "\n", "\n", "b"));
  EXPECT_THAT(Pieces("a\r\n"), ElementsAre("a", "\r\n"));
  EXPECT_THAT(Pieces("a \n b"), ElementsAre("a", " \n", " b"));
  EXPECT_THAT(Pieces("a\tb"), ElementsAre("a", "\t", "b"));
  EXPECT_THAT(Pieces("  "), ElementsAre("  "));
  EXPECT_THAT(Pieces(" "), ElementsAre(" "));
  EXPECT_THAT(Pieces("x   "), ElementsAre("x", "   "));
}

TEST(PreTokenizeTest, UnicodeClasses) {
  // NBSP is \s but not U+0020, so it never joins a word.
  EXPECT_THAT(Pieces("a\u00a0b"), ElementsAre("a", "\u00a0", "b"));
  EXPECT_THAT(Pieces("a \u00a0b"), ElementsAre("a", " ", "\u00a0", "b"));
  // U+0085 is White_Space (Python's `regex`); U+FEFF is not (JavaScript's \s differs).
  EXPECT_THAT(Pieces("a\u0085\u0085b"), ElementsAre("a", "\u0085", "\u0085", "b"));
  EXPECT_THAT(Pieces("a \ufeffb"), ElementsAre("a", " \ufeff", "b"));
  EXPECT_THAT(Pieces("你好，世界"), ElementsAre("你好", "，", "世界"));
  EXPECT_THAT(Pieces("caf\u00e9 cafe\u0301"), ElementsAre("caf\u00e9", " cafe", "\u0301"));
  EXPECT_THAT(Pieces("x²³ Ⅷ"), ElementsAre("x", "²³", " Ⅷ"));
  // An emoji ZWJ sequence and its skin tone are all symbols/format characters: one piece.
  EXPECT_THAT(Pieces(" \U0001F468\u200D\U0001F469\u200D\U0001F467!"),
              ElementsAre(" \U0001F468\u200D\U0001F469\u200D\U0001F467!"));
  EXPECT_THAT(Pieces("\U00020000\U00020001 x"), ElementsAre("\U00020000\U00020001", " x"));
}

TEST(PreTokenizeTest, InvalidUtf8BytesArePunctuation) {
  EXPECT_THAT(Pieces("a\xff"
                     "b"),
              ElementsAre("a", "\xff", "b"));
  EXPECT_THAT(Pieces("a \xff\xfe!"), ElementsAre("a", " \xff\xfe!"));
  EXPECT_THAT(Pieces("\xe4\xbd"), ElementsAre("\xe4\xbd"));  // Truncated 3-byte character.
  EXPECT_THAT(Pieces("\xed\xa0\x80x"), ElementsAre("\xed\xa0\x80", "x"));  // Surrogate.
  EXPECT_THAT(Pieces("\xc0\xaf"
                     "a"),
              ElementsAre("\xc0\xaf", "a"));  // Overlong.
}

TEST(PreTokenizeTest, ClassOfCodePoint) {
  EXPECT_EQ(ClassOfCodePoint('a'), CharClass::kLetter);
  EXPECT_EQ(ClassOfCodePoint(0x00AA), CharClass::kLetter);  // ª Lo
  EXPECT_EQ(ClassOfCodePoint(0x02B0), CharClass::kLetter);  // ʰ Lm
  EXPECT_EQ(ClassOfCodePoint(0x01C5), CharClass::kLetter);  // ǅ Lt
  EXPECT_EQ(ClassOfCodePoint(0x00B2), CharClass::kNumber);  // ² No
  EXPECT_EQ(ClassOfCodePoint(0x2167), CharClass::kNumber);  // Ⅷ Nl
  EXPECT_EQ(ClassOfCodePoint(0x0663), CharClass::kNumber);  // Arabic-Indic three, Nd
  EXPECT_EQ(ClassOfCodePoint(0x0301), CharClass::kOther);   // Mn
  EXPECT_EQ(ClassOfCodePoint(0x1F600), CharClass::kOther);  // So
  EXPECT_EQ(ClassOfCodePoint(0x20000), CharClass::kLetter);
  EXPECT_EQ(ClassOfCodePoint(0x1D7CE), CharClass::kNumber);  // Mathematical bold zero
  for (uint32_t cp : {0x09u, 0x0Au, 0x0Bu, 0x0Cu, 0x0Du, 0x20u, 0x85u, 0xA0u, 0x1680u, 0x2000u,
                      0x200Au, 0x2028u, 0x2029u, 0x202Fu, 0x205Fu, 0x3000u}) {
    EXPECT_EQ(ClassOfCodePoint(cp), CharClass::kSpace) << cp;
  }
  for (uint32_t cp : {0x1Cu, 0x1Fu, 0x180Eu, 0x200Bu, 0xFEFFu, 0xD800u, 0x110000u}) {
    EXPECT_EQ(ClassOfCodePoint(cp), CharClass::kOther) << cp;
  }
}

}  // namespace
}  // namespace helpline::lm::bpe_internal
