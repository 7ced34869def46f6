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

TEST(DomainTest, DuplicateIntentNamesBothLines) {
  auto d = ParseWith("  human:\n", "  track_order:\n");
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(d.status().message(),
              HasSubstr("mini.yaml: intents.track_order: duplicate intent 'track_order' (first "
                        "at line "));
}

TEST(DomainTest, DuplicateSlot) {
  auto d = ParseWith("  colour:\n", "  order_id:\n");
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(d.status().message(),
              HasSubstr("mini.yaml: slots.order_id: duplicate slot 'order_id' (first at line "));
}

TEST(DomainTest, DuplicateTemplateAndValue) {
  auto d = ParseWith("  ask.order_id:", "  fallback: {en: a, zh: b}\n  ask.order_id:");
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(d.status().message(), HasSubstr("templates.fallback: duplicate template 'fallback'"));
  d = ParseWith("      blue:\n", "      blue:\n      red:\n");
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(d.status().message(), HasSubstr("slots.colour.values.red: duplicate value 'red'"));
}

TEST(DomainTest, EmptyExamplesList) {
  auto d = ParseWith("{en: [human please], zh: [转人工]}", "{en: [], zh: [转人工]}");
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(d.status().message(), HasSubstr("intents.human.examples.en: must not be empty"));
  d = ParseWith("examples: {en: [human please], zh: [转人工]}", "examples: {}");
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(d.status().message(), HasSubstr("intents.human.examples: missing language 'en'"));
  d = ParseWith("examples: {en: [human please], zh: [转人工]}", "description: no examples");
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(d.status().message(), HasSubstr("intents.human.examples: required"));
}

TEST(DomainTest, DuplicateExampleWithinAndAcrossIntents) {
  auto d = ParseWith("en: [human please]", "en: [human please, Human  please ]");
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(d.status().message(),
              HasSubstr("intents.human.examples.en[1]: duplicate example 'Human  please' (also "
                        "at [0])"));
  d = ParseWith("en: [human please]", "en: [Where is my order]");
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(d.status().message(),
              HasSubstr("intents.human.examples.en[0]: example 'Where is my order' is also "
                        "intents.track_order.examples.en[0]"));
}

TEST(DomainTest, CategoricalSlotWithoutValues) {
  auto d = ParseWith(R"(    values:
      red: {label: {zh: 红色}, synonyms: {en: [crimson], zh: [红]}}
      blue:
)",
                     "    description: no values\n");
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(d.status().message(),
              HasSubstr("slots.colour.values: required for a categorical slot"));
  d = ParseWith("      blue:\n", "");
  ASSERT_TRUE(d.ok()) << d.status();  // One value is enough...
  d = ParseWith(R"(    values:
      red: {label: {zh: 红色}, synonyms: {en: [crimson], zh: [红]}}
      blue:
)",
                "    values: {}\n");
  ASSERT_FALSE(d.ok());  // ...none is not.
  EXPECT_THAT(d.status().message(), HasSubstr("slots.colour.values: must not be empty"));
}

TEST(DomainTest, SynonymOfTwoValues) {
  auto d = ParseWith("      blue:\n", "      blue: {synonyms: {en: [Crimson]}}\n");
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(d.status().message(),
              HasSubstr("slots.colour.values.blue.synonyms: 'Crimson' also means 'red'"));
}

TEST(DomainTest, CategoricalIsTheSchemaNameOfEnum) {
  auto d = ParseWith("    type: enum", "    type: categorical");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->FindSlot("colour")->type, SlotType::kEnum);
  EXPECT_EQ(SlotTypeName(SlotType::kEnum), "categorical");
}

TEST(DomainTest, ValuesOnlyForCategorical) {
  auto d = ParseWith("    pattern: '\\b[0-9]{6,12}\\b'",
                     "    pattern: '\\b[0-9]{6,12}\\b'\n    values: {a: }");
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(d.status().message(),
              HasSubstr("slots.order_id.values: only categorical slots have values"));
}

TEST(DomainTest, RegexMatchingEmptyTextOrWithTwoGroups) {
  auto d = ParseWith(R"('\b[0-9]{6,12}\b')", R"('[0-9]*')");
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(d.status().message(), HasSubstr("slots.order_id.pattern: matches the empty string"));
  d = ParseWith(R"('\b[0-9]{6,12}\b')", R"('([a-z]+)([0-9]+)')");
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(d.status().message(),
              HasSubstr("slots.order_id.pattern: at most one capturing group"));
  d = ParseWith(R"(    pattern: '\b[0-9]{6,12}\b')", "    description: no pattern");
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(d.status().message(), HasSubstr("slots.order_id.pattern: required"));
}

TEST(DomainTest, TypedSlots) {
  const std::string typed = R"(  order_id:
    type: regex
    pattern: '\b[0-9]{6,12}\b'
  charged: {type: amount, default_currency: EUR, description: What was charged.}
  day: {type: date}
  at: {type: time}
  callback: {type: datetime}
  count: {type: number}
)";
  auto d = ParseWith("  order_id:\n    type: regex\n    pattern: '\\b[0-9]{6,12}\\b'\n", typed);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->FindSlot("charged")->type, SlotType::kAmount);
  EXPECT_EQ(d->FindSlot("charged")->default_currency, "EUR");
  EXPECT_EQ(d->FindSlot("charged")->description, "What was charged.");
  EXPECT_EQ(d->FindSlot("day")->type, SlotType::kDate);
  EXPECT_EQ(d->FindSlot("at")->type, SlotType::kTime);
  EXPECT_EQ(d->FindSlot("callback")->type, SlotType::kDateTime);
  EXPECT_EQ(SlotTypeName(d->FindSlot("callback")->type), "datetime");

  auto bad = ParseWith("  order_id:\n    type: regex\n    pattern: '\\b[0-9]{6,12}\\b'\n",
                       absl::StrCat(typed, "  x: {type: amount, default_currency: euro}\n"));
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(),
              HasSubstr("slots.x.default_currency: 'euro' is not an ISO 4217 code"));
  bad = ParseWith("  order_id:\n    type: regex\n    pattern: '\\b[0-9]{6,12}\\b'\n",
                  absl::StrCat(typed, "  x: {type: date, default_currency: EUR}\n"));
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("slots.x.default_currency: only for amount slots"));
  bad = ParseWith("  order_id:\n    type: regex\n    pattern: '\\b[0-9]{6,12}\\b'\n",
                  absl::StrCat(typed, "  x: {type: date, normalize: upper}\n"));
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("slots.x.normalize: only for regex slots"));
}

// The templates a transactional track_order needs besides track_order.done.
constexpr char kConfirmTemplates[] =
    "  track_order.confirm: {en: \"Order {{order_id}}, right?\", zh: \"订单 {{order_id}}，对吗？\"}\n"
    "  track_order.declined: {en: \"Nothing done.\", zh: \"未做任何操作。\"}\n"
    "escalation_phrases:";

absl::StatusOr<Domain> ParseTransactional(absl::string_view templates) {
  std::string yaml = absl::StrReplaceAll(
      kMini, {{"    optional_slots: [colour]",
               "    optional_slots: [colour]\n    transactional: true"},
              {"escalation_phrases:", templates}});
  return ParseDomain(yaml, "mini.yaml");
}

TEST(DomainTest, TransactionalFlag) {
  auto d = ParseTransactional(kConfirmTemplates);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_TRUE(d->FindIntent("track_order")->transactional);
  EXPECT_FALSE(d->FindIntent("human")->transactional);

  d = ParseWith("    optional_slots: [colour]",
                "    optional_slots: [colour]\n    transactional: maybe");
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(d.status().message(),
              HasSubstr("intents.track_order.transactional: expected true or false"));
  d = ParseWith("    escalate: true", "    escalate: true\n    transactional: true");
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(d.status().message(), HasSubstr("intents.human.transactional: an intent with "
                                              "escalate: true"));
}

// A transactional intent is confirmed before it is done and answers a "no": its templates
// for both are required, the error names the intent's flag and the missing key.
TEST(DomainTest, TransactionalIntentNeedsConfirmAndDeclinedTemplates) {
  auto d = ParseWith("    optional_slots: [colour]",
                     "    optional_slots: [colour]\n    transactional: true");
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(d.status().message(),
              HasSubstr("mini.yaml: intents.track_order.transactional: a transactional intent "
                        "needs template 'track_order.confirm'"));
  EXPECT_THAT(d.status().message(), HasSubstr("(line 19)"));  // The flag's line.
  d = ParseTransactional(
      "  track_order.confirm: {en: \"Order {{order_id}}, right?\", zh: \"对吗？\"}\n"
      "escalation_phrases:");
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(d.status().message(),
              HasSubstr("intents.track_order.transactional: a transactional intent needs "
                        "template 'track_order.declined'"));
  // In every language, as any template.
  d = ParseTransactional(
      "  track_order.confirm: {en: \"Order {{order_id}}, right?\"}\n"
      "  track_order.declined: {en: \"Nothing done.\", zh: \"未做任何操作。\"}\n"
      "escalation_phrases:");
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(d.status().message(),
              HasSubstr("templates.track_order.confirm: missing language 'zh'"));
}

TEST(DomainTest, SlotListedTwiceOrInBothLists) {
  auto d = ParseWith("optional_slots: [colour]", "optional_slots: [order_id]");
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(d.status().message(),
              HasSubstr("intents.track_order.optional_slots[0]: slot 'order_id' is listed twice"));
  d = ParseWith("optional_slots: [colour]", "optional_slots: [colourr]");
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(d.status().message(),
              HasSubstr("intents.track_order.optional_slots[0]: unknown slot 'colourr'"));
}

TEST(DomainTest, WrongShapes) {
  auto d = ParseWith("escalation_phrases:\n  en: [talk to a human]\n  zh: [转人工]",
                     "escalation_phrases: [talk to a human]");
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(d.status().message(), HasSubstr("mini.yaml: escalation_phrases: expected a mapping"));
  d = ParseWith("languages: [en, zh]", "languages: [en, zh, en]");
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(d.status().message(), HasSubstr("languages[2]: duplicate 'en'"));
  d = ParseWith("  human:\n", "  Human:\n");
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(d.status().message(), HasSubstr("intents.Human: intent names must be"));
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
  EXPECT_TRUE(domain->FindIntent("return_item")->transactional);
  EXPECT_TRUE(domain->FindIntent("cancel_order")->transactional);
  EXPECT_FALSE(domain->FindIntent("track_order")->transactional);
  EXPECT_EQ(domain->FindSlot("amount")->type, SlotType::kAmount);
  EXPECT_EQ(domain->FindSlot("reason")->type, SlotType::kEnum);
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
