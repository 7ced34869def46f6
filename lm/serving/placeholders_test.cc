#include "lm/serving/placeholders.h"

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace helpline::lm {
namespace {

using ::testing::Contains;
using ::testing::Not;

const std::vector<std::string> kAllowed = {"order_id", "city"};

TEST(PlaceholdersAllowedTest, CompleteOpenAndStrayPlaceholders) {
  EXPECT_TRUE(PlaceholdersAllowed("Order {{order_id}} is in {{city}}.", kAllowed));
  EXPECT_TRUE(PlaceholdersAllowed("No placeholder at all.", kAllowed));
  EXPECT_FALSE(PlaceholdersAllowed("It costs {{price}}.", kAllowed));
  // Unfinished at the end: the beginning of an allowed "name}}".
  EXPECT_TRUE(PlaceholdersAllowed("Order {{", kAllowed));
  EXPECT_TRUE(PlaceholdersAllowed("Order {{ord", kAllowed));
  EXPECT_TRUE(PlaceholdersAllowed("Order {{order_id}", kAllowed));
  EXPECT_FALSE(PlaceholdersAllowed("Order {{pri", kAllowed));
  EXPECT_FALSE(PlaceholdersAllowed("Order {{order_idx", kAllowed));
  // A "}}" that closes nothing.
  EXPECT_FALSE(PlaceholdersAllowed("done}} then", kAllowed));
  // Nothing allowed: no placeholder may even start.
  EXPECT_FALSE(PlaceholdersAllowed("Order {{", {}));
  EXPECT_TRUE(PlaceholdersAllowed("Order 42.", {}));
}

// A tokenizer whose vocabulary is the 256 bytes (no merges): every id is one byte.
class PlaceholderGuardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("placeholders_test_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    auto tokenizer = BytesTokenizer();
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
    tokenizer_ = *std::move(tokenizer);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  absl::StatusOr<std::unique_ptr<BpeTokenizer>> BytesTokenizer() {
    std::vector<uint8_t> bytes;
    for (int b = '!'; b <= '~'; ++b) bytes.push_back(static_cast<uint8_t>(b));
    for (int b = 0xA1; b <= 0xAC; ++b) bytes.push_back(static_cast<uint8_t>(b));
    for (int b = 0xAE; b <= 0xFF; ++b) bytes.push_back(static_cast<uint8_t>(b));
    std::vector<int> chars(256, -1);
    for (uint8_t b : bytes) chars[b] = b;
    int extra = 0;
    for (int b = 0; b < 256; ++b) {
      if (chars[b] < 0) chars[b] = 256 + extra++;
    }
    std::string vocab = "{";
    for (int b = 0; b < 256; ++b) {
      const int cp = chars[b];
      std::string utf8;
      if (cp < 0x80) {
        utf8 = std::string(1, static_cast<char>(cp));
      } else {
        utf8 += static_cast<char>(0xC0 | (cp >> 6));
        utf8 += static_cast<char>(0x80 | (cp & 0x3F));
      }
      if (utf8 == "\"" || utf8 == "\\") utf8 = "\\" + utf8;
      vocab += (b ? "," : "") + std::string("\"") + utf8 + "\":" + std::to_string(b);
    }
    vocab += "}";
    std::ofstream(dir_ / "vocab.json") << vocab;
    std::ofstream(dir_ / "merges.txt") << "#version: 0.2\n";
    return BpeTokenizer::Load(dir_.string());
  }

  std::filesystem::path dir_;
  std::unique_ptr<BpeTokenizer> tokenizer_;
};

TEST_F(PlaceholderGuardTest, BansWhatWouldWriteAPlaceholderThatCannotBeFilled) {
  const PlaceholderGuard guard(*tokenizer_, 256);
  std::vector<int32_t> banned;
  // Outside a placeholder: '{' may start one (an allowed name exists), '}' would close
  // nothing only after another '}', letters are free.
  guard.Banned("Your order ", kAllowed, banned);
  EXPECT_THAT(banned, Not(Contains('{')));
  EXPECT_THAT(banned, Not(Contains('a')));
  guard.Banned("Your order }", kAllowed, banned);
  EXPECT_THAT(banned, Contains('}'));
  // After "{{": only the first letters of the allowed names.
  guard.Banned("Your order {{", kAllowed, banned);
  EXPECT_THAT(banned, Not(Contains('o')));
  EXPECT_THAT(banned, Not(Contains('c')));
  EXPECT_THAT(banned, Contains('p'));
  EXPECT_THAT(banned, Contains(' '));
  EXPECT_EQ(banned.size(), 256u - 2);
  // Inside a name, then at its end: only '}' closes it.
  guard.Banned("in {{cit", kAllowed, banned);
  EXPECT_EQ(banned.size(), 255u);
  EXPECT_THAT(banned, Not(Contains('y')));
  guard.Banned("in {{city", kAllowed, banned);
  EXPECT_THAT(banned, Not(Contains('}')));
  EXPECT_EQ(banned.size(), 255u);
  // A completed placeholder closes the context: anything goes again.
  guard.Banned("in {{city}} ", kAllowed, banned);
  EXPECT_THAT(banned, Not(Contains('a')));
  // A lone '{' followed by '{' opens: with nothing allowed, the second '{' is banned.
  guard.Banned("a {", {}, banned);
  EXPECT_THAT(banned, Contains('{'));
}

}  // namespace
}  // namespace helpline::lm
