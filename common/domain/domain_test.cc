#include "common/domain/domain.h"

#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "re2/re2.h"
#include "tests/testing/shop_domain.h"

namespace helpline::domain {
namespace {

using ::testing::HasSubstr;

std::string ShopPath() { return testutil::ShopDomainPath(); }

// A small valid domain; tests break one thing at a time.
constexpr char kMini[] = R"yaml(
name: mini
languages: [en, zh]
system_prompt: {en: "Be nice.", zh: "友好。"}
slots:
  order_id:
    type: regex
    pattern: '\b[0-9]{6,12}\b'
  colour:
    type: enum
    values:
      red: {label: {zh: 红色}, synonyms: {en: [crimson], zh: [红]}}
      blue:
intents:
  track_order:
    examples: {en: [where is my order], zh: [我的订单到哪了]}
    required_slots: [order_id]
    optional_slots: [colour]
  human:
    escalate: true
    examples: {en: [human please], zh: [转人工]}
templates:
  escalate: {en: "A human is coming.", zh: "正在转人工。"}
  fallback: {en: ["Sorry?", "Pardon?"], zh: "抱歉？"}
  ask.order_id: {en: "Order number?", zh: "订单号？"}
  track_order.done: {en: "Order {{order_id}} found.", zh: "订单 {{ order_id }} 已找到。"}
escalation_phrases:
  en: [talk to a human]
  zh: [转人工]
)yaml";

absl::StatusOr<Domain> ParseWith(absl::string_view from, absl::string_view to) {
  std::string yaml = absl::StrReplaceAll(kMini, {{from, to}});
  EXPECT_NE(yaml, kMini) << "the test's replacement did not apply: " << from;
  return ParseDomain(yaml, "mini.yaml");
}

TEST(DomainTest, MiniDomainParses) {
  auto domain = ParseDomain(kMini, "mini.yaml");
  ASSERT_TRUE(domain.ok()) << domain.status();
  EXPECT_EQ(domain->name, "mini");
  EXPECT_THAT(domain->languages, ::testing::ElementsAre("en", "zh"));
  ASSERT_EQ(domain->slots.size(), 2u);
  EXPECT_EQ(domain->slots[0].name, "order_id");  // File order is kept.
  EXPECT_EQ(domain->slots[0].prompt, "ask.order_id");
  ASSERT_NE(domain->slots[0].regex, nullptr);
  EXPECT_TRUE(RE2::PartialMatch("no 12345678", *domain->slots[0].regex));
  const Slot* colour = domain->FindSlot("colour");
  ASSERT_NE(colour, nullptr);
  EXPECT_EQ(colour->type, SlotType::kEnum);
  EXPECT_EQ(colour->Display("red", "zh"), "红色");
  EXPECT_EQ(colour->Display("red", "en"), "red");
  EXPECT_EQ(colour->Display("blue", "zh"), "blue");
  const Intent* human = domain->FindIntent("human");
  ASSERT_NE(human, nullptr);
  EXPECT_TRUE(human->escalate);
  EXPECT_TRUE(domain->FindIntent("track_order")->Uses("colour"));
  EXPECT_FALSE(domain->FindIntent("human")->Uses("order_id"));
  ASSERT_NE(domain->FindTemplate("fallback", "en"), nullptr);
  EXPECT_EQ(domain->FindTemplate("fallback", "en")->size(), 2u);
  EXPECT_EQ(domain->FindTemplate("fallback", "fr"), nullptr);
}

TEST(DomainTest, UnknownRequiredSlotNamesFileAndPath) {
  auto d = ParseWith("required_slots: [order_id]", "required_slots: [order_idd]");
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(d.status().message(),
              HasSubstr("mini.yaml: intents.track_order.required_slots[0]: unknown slot "
                        "'order_idd'"));
  EXPECT_THAT(d.status().message(), HasSubstr("(line "));
}

TEST(DomainTest, BadRegexIsRejectedAtLoad) {
  auto d = ParseWith(R"('\b[0-9]{6,12}\b')", R"('\b([0-9]{6,12}\b')");
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(d.status().message(), HasSubstr("mini.yaml: slots.order_id.pattern: invalid regex"));
}

TEST(DomainTest, MissingTemplateLanguage) {
  auto d = ParseWith(R"(ask.order_id: {en: "Order number?", zh: "订单号？"})",
                     R"(ask.order_id: {en: "Order number?"})");
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(d.status().message(),
              HasSubstr("mini.yaml: templates.ask.order_id: missing language 'zh'"));
}

TEST(DomainTest, UnknownTopLevelKey) {
  auto d = ParseWith("name: mini", "name: mini\nnmae: typo");
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(d.status().message(), HasSubstr("mini.yaml: nmae: unknown key 'nmae'"));
}

TEST(DomainTest, UnknownNestedKey) {
  auto d = ParseWith("    escalate: true", "    escalte: true");
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(d.status().message(),
              HasSubstr("mini.yaml: intents.human.escalte: unknown key 'escalte'"));
}

TEST(DomainTest, PlaceholderMustNameASlot) {
  auto d = ParseWith("Order {{order_id}} found.", "Order {{order_number}} found.");
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(d.status().message(),
              HasSubstr("templates.track_order.done.en: placeholder '{{order_number}}'"));
}

TEST(DomainTest, UnterminatedPlaceholder) {
  auto d = ParseWith("Order {{order_id}} found.", "Order {{order_id found.");
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(d.status().message(), HasSubstr("unterminated placeholder"));
}

TEST(DomainTest, MissingDoneTemplate) {
  auto d = ParseWith(
      R"(track_order.done: {en: "Order {{order_id}} found.", zh: "订单 {{ order_id }} 已找到。"})",
      "");
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(d.status().message(),
              HasSubstr("intents.track_order: missing template 'track_order.done'"));
}

TEST(DomainTest, MissingPromptTemplateOfRequiredSlot) {
  auto d = ParseWith(R"(ask.order_id: {en: "Order number?", zh: "订单号？"})", "");
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(d.status().message(),
              HasSubstr("intents.track_order.required_slots[0]: slot 'order_id' has no prompt "
                        "template 'ask.order_id'"));
}

TEST(DomainTest, UnknownLanguageInExamples) {
  auto d = ParseWith("zh: [我的订单到哪了]}", "zh: [我的订单到哪了], fr: [ou est]}");
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(d.status().message(),
              HasSubstr("intents.track_order.examples.fr: unknown language 'fr'"));
}

TEST(DomainTest, MissingExamplesLanguage) {
  auto d = ParseWith("{en: [human please], zh: [转人工]}", "{en: [human please]}");
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(d.status().message(), HasSubstr("intents.human.examples: missing language 'zh'"));
}

TEST(DomainTest, UnknownSlotType) {
  auto d = ParseWith("type: regex", "type: regexp");
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(d.status().message(), HasSubstr("slots.order_id.type: unknown type 'regexp'"));
}

TEST(DomainTest, EscalateMustBeBoolean) {
  auto d = ParseWith("escalate: true", "escalate: sometimes");
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(d.status().message(), HasSubstr("intents.human.escalate: expected true or false"));
}

TEST(DomainTest, YamlSyntaxErrorHasLine) {
  auto d = ParseDomain("name: [unclosed\nlanguages: [en]\n", "broken.yaml");
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(d.status().message(), HasSubstr("broken.yaml:"));
}

TEST(DomainTest, MissingFileIsNotFound) {
  auto d = LoadDomainFile("/nonexistent/shop.yaml");
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(d.status().message(), HasSubstr("/nonexistent/shop.yaml"));
}

TEST(DomainTest, TemplatePlaceholders) {
  auto names = TemplatePlaceholders("a {{x}} b {{ y }} {{x}}");
  ASSERT_TRUE(names.ok());
  EXPECT_THAT(*names, ::testing::ElementsAre("x", "y", "x"));
  EXPECT_FALSE(TemplatePlaceholders("a {{ }} b").ok());
}

TEST(ShopDomainTest, LoadsAndIsComplete) {
  auto domain = LoadDomainFile(ShopPath());
  ASSERT_TRUE(domain.ok()) << domain.status();
  EXPECT_EQ(domain->name, "shop");
  EXPECT_THAT(domain->languages, ::testing::ElementsAre("en", "zh"));
  for (const char* name :
       {"greet", "track_order", "delivery_problem", "return_item", "refund_status", "payment_issue",
        "account_help", "cancel_order", "human_agent", "goodbye", "thanks"}) {
    const Intent* intent = domain->FindIntent(name);
    ASSERT_NE(intent, nullptr) << name;
    EXPECT_GE(intent->examples.at("en").size(), 10u) << name;
    EXPECT_GE(intent->examples.at("zh").size(), 5u) << name;
  }
  EXPECT_TRUE(domain->FindIntent("human_agent")->escalate);
  for (const char* name :
       {"order_id", "email", "phone", "item", "reason", "payment_method", "amount"}) {
    EXPECT_NE(domain->FindSlot(name), nullptr) << name;
  }
  EXPECT_FALSE(domain->escalation_phrases.at("en").empty());
  EXPECT_FALSE(domain->escalation_phrases.at("zh").empty());
}

TEST(ShopDomainTest, OrderIdPattern) {
  auto domain = LoadDomainFile(ShopPath());
  ASSERT_TRUE(domain.ok()) << domain.status();
  const RE2& re = *domain->FindSlot("order_id")->regex;
  std::string value;
  for (const char* text : {"12345678", "A-1234567", "AB123456", "order 123456 please",
                           "订单号12345678", "abc-123456789012"}) {
    EXPECT_TRUE(RE2::PartialMatch(text, re, &value)) << text;
  }
  EXPECT_TRUE(RE2::PartialMatch("order A-1234567 is late", re, &value));
  EXPECT_EQ(value, "A-1234567");
  // Too short, too long (a card number), too long a prefix.
  for (const char* text : {"12345", "4111111111111111", "ABCD123456", "1234-5678"}) {
    EXPECT_FALSE(RE2::PartialMatch(text, re)) << text;
  }
}

}  // namespace
}  // namespace helpline::domain
