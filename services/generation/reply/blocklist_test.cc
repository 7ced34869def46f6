#include "services/generation/reply/blocklist.h"

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace helpline::generation::reply {
namespace {

using ::testing::HasSubstr;
using ::testing::Optional;

Blocklist Parsed(absl::string_view yaml) {
  absl::StatusOr<Blocklist> list = Blocklist::Parse(yaml, "test.yaml");
  EXPECT_TRUE(list.ok()) << list.status();
  return list.ok() ? *std::move(list) : Blocklist();
}

TEST(BlocklistTest, EnglishMatchesWholeWordsCaseInsensitively) {
  const Blocklist list = Parsed("en: [idiot, ass, \"shut   up\"]\n");
  EXPECT_THAT(list.FindIn("Listen, IDIOT, your order is late."), Optional(std::string("idiot")));
  EXPECT_THAT(list.FindIn("Just shut\nup and wait."), Optional(std::string("shut   up")));
  EXPECT_EQ(list.FindIn("I can pass this to an agent; happy to assist."), std::nullopt);
  EXPECT_EQ(list.FindIn("idiotic"), std::nullopt);
  EXPECT_THAT(list.FindIn("你这个idiot"), Optional(std::string("idiot")));  // CJK is a boundary.
}

TEST(BlocklistTest, ChineseMatchesAsSubstring) {
  const Blocklist list = Parsed("zh: [傻逼, 去死]\n");
  EXPECT_THAT(list.FindIn("你这个傻逼，订单自己查"), Optional(std::string("傻逼")));
  EXPECT_THAT(list.FindIn("你怎么不去死呢"), Optional(std::string("去死")));
  EXPECT_EQ(list.FindIn("您好，请问有什么可以帮您？"), std::nullopt);
}

TEST(BlocklistTest, EveryPhraseAppliesToEveryLanguage) {
  const Blocklist list = Parsed("en: [idiot]\nzh: [傻逼]\n");
  EXPECT_TRUE(list.FindIn("Sorry, 傻逼.").has_value());
  EXPECT_TRUE(list.FindIn("好的 idiot").has_value());
  EXPECT_EQ(list.size(), 2u);
}

TEST(BlocklistTest, BadFilesAreInvalidArgumentNamingTheOrigin) {
  absl::StatusOr<Blocklist> list = Blocklist::Parse("[a, b]", "bl.yaml");
  EXPECT_EQ(list.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(list.status().message()), HasSubstr("bl.yaml"));
  list = Blocklist::Parse("en: idiot\n", "bl.yaml");
  EXPECT_EQ(list.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(list.status().message()), HasSubstr("en"));
  list = Blocklist::Parse("en: [ok, \"  \"]\n", "bl.yaml");
  EXPECT_EQ(list.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(list.status().message()), HasSubstr("en[1]: empty phrase"));
  list = Blocklist::Parse("en: [a\n", "bl.yaml");
  EXPECT_EQ(list.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Blocklist::LoadFile("/nonexistent/bl.yaml").status().code(),
            absl::StatusCode::kNotFound);
}

TEST(BlocklistTest, ShippedDefaultListLoads) {
  const char* dir = std::getenv("HELPLINE_SOURCE_DIR");
  absl::StatusOr<Blocklist> list = Blocklist::LoadFile(absl::StrCat(
      dir != nullptr ? dir : ".", "/services/generation/reply/default_blocklist.yaml"));
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_GT(list->size(), 20u);
  EXPECT_TRUE(list->FindIn("What the fuck is wrong with you").has_value());
  EXPECT_TRUE(list->FindIn("你他妈的自己查").has_value());
  // Ordinary customer-service replies pass.
  EXPECT_EQ(list->FindIn("Thanks! I've looked up order A-1234567. You can follow it live under "
                         "My Orders > Track package, and we e-mail you at every step."),
            std::nullopt);
  EXPECT_EQ(list->FindIn("Sorry about the trouble with your payment. How did you pay: card, "
                         "PayPal, bank transfer, Alipay or WeChat Pay? Please assess the class "
                         "of the assignment."),
            std::nullopt);
  EXPECT_EQ(list->FindIn("很抱歉支付遇到了问题。请问您使用的是哪种支付方式？"), std::nullopt);
}

}  // namespace
}  // namespace helpline::generation::reply
