#include "services/dst/extractors.h"

#include <map>
#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/shop_domain.h"

namespace helpline::dst {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

// A domain with one slot of every type.
constexpr char kTyped[] = R"yaml(
name: typed
languages: [en, zh]
system_prompt: {en: x, zh: x}
slots:
  order_id: {type: regex, pattern: '(?i)\b((?:[a-z]{1,3}-?)?[0-9]{6,12})\b', normalize: upper}
  charged: {type: amount}
  refund: {type: amount, default_currency: EUR}
  count: {type: number}
  day: {type: date}
  at: {type: time}
  callback: {type: datetime}
  email: {type: email}
  phone: {type: phone}
  colour:
    type: categorical
    values:
      red: {synonyms: {en: [crimson], zh: [红色]}}
      dark_blue: {synonyms: {en: [navy]}}
  note: {type: free_text}
intents:
  any:
    examples: {en: [anything], zh: [任何]}
    optional_slots: [order_id, charged, refund, count, day, at, callback, email, phone, colour,
                     note]
templates:
  escalate: {en: x, zh: x}
  fallback: {en: x, zh: x}
  any.done: {en: x, zh: x}
)yaml";

class ExtractorTest : public ::testing::Test {
 protected:
  ExtractorTest() {
    auto d = domain::ParseDomain(kTyped, "typed.yaml");
    EXPECT_TRUE(d.ok()) << d.status();
    domain_ = std::make_shared<const domain::Domain>(d.ok() ? *d : domain::Domain{});
    extractor_ = std::make_unique<SlotExtractor>(domain_);
    options_.today = absl::CivilDay(2026, 11, 29);
  }

  // slot -> value for `text`.
  std::map<std::string, std::string> Values(absl::string_view text,
                                            std::vector<std::string> requested = {}) {
    ExtractOptions options = options_;
    options.requested = std::move(requested);
    std::map<std::string, std::string> out;
    for (const SlotCandidate& c : extractor_->Extract(text, options)) out[c.slot] = c.value;
    return out;
  }

  std::string One(absl::string_view slot, absl::string_view text) {
    std::optional<SlotCandidate> c =
        extractor_->ExtractSlot(*domain_->FindSlot(slot), text, options_);
    return c ? c->value : "<none>";
  }

  std::shared_ptr<const domain::Domain> domain_;
  std::unique_ptr<SlotExtractor> extractor_;
  ExtractOptions options_;
};

TEST(AmountTest, CurrencyMarksAndSeparators) {
  auto found = [](absl::string_view text) {
    std::vector<std::string> out;
    for (const Amount& a : FindAmounts(text)) out.push_back(a.number + " " + a.currency);
    return out;
  };
  EXPECT_THAT(found("it was $12.50"), ElementsAre("12.50 USD"));
  EXPECT_THAT(found("12,50 €"), ElementsAre("12.50 EUR"));
  EXPECT_THAT(found("¥30"), ElementsAre("30 CNY"));
  EXPECT_THAT(found("退了30元"), ElementsAre("30 CNY"));
  EXPECT_THAT(found("EUR 12"), ElementsAre("12 EUR"));
  EXPECT_THAT(found("1,299.00 usd"), ElementsAre("1299.00 USD"));
  EXPECT_THAT(found("1.299,00€"), ElementsAre("1299.00 EUR"));
  EXPECT_THAT(found("HK$88 and £5"), ElementsAre("88 HKD", "5 GBP"));
  EXPECT_THAT(found("20 bucks, 3 euros, 500 yen, 100日元, 50美元"),
              ElementsAre("20 USD", "3 EUR", "500 JPY", "100 JPY", "50 USD"));
  EXPECT_THAT(found("order 12345678, 3 items"), IsEmpty());
  const std::vector<Amount> a = FindAmounts("paid $12.50 twice");
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].begin, 5u);  // The symbol belongs to the span.
  EXPECT_EQ(a[0].end, 11u);
}

TEST_F(ExtractorTest, AmountSlotsCarryTheCurrency) {
  EXPECT_THAT(Values("I was charged $12.50 and refunded 12,50 €"),
              UnorderedElementsAre(Pair("charged", "12.50 USD"), Pair("refund", "12.50 EUR")));
  // A number slot takes an amount's number when no amount slot wants it.
  EXPECT_EQ(Values("I was charged $12.50 and refunded 12,50 € and 3 dollars")["count"], "3");
}

TEST_F(ExtractorTest, BareNumberAnswersARequestedAmount) {
  EXPECT_EQ(Values("49.90", {"charged"})["charged"], "49.90");
  EXPECT_EQ(Values("49.90", {"refund"})["refund"], "49.90 EUR");  // default_currency
  EXPECT_EQ(Values("49.90")["charged"], "");  // Not asked for: a bare number is no amount.
}

TEST_F(ExtractorTest, DatesAndTimesByType) {
  std::map<std::string, std::string> v = Values("call me tomorrow at 5pm");
  EXPECT_EQ(v["day"], "2026-11-30");
  EXPECT_EQ(v["at"], "17:00");
  EXPECT_EQ(v["callback"], "");  // Both parts are taken by the date and time slots.
  EXPECT_EQ(One("callback", "call me tomorrow at 5pm"), "2026-11-30T17:00");
  EXPECT_EQ(One("callback", "明天下午三点"), "2026-11-30T15:00");
  EXPECT_EQ(One("day", "下周一"), "2026-11-30");
  EXPECT_EQ(One("day", "on 2026-12-03 please"), "2026-12-03");
  EXPECT_EQ(One("at", "at 5pm"), "17:00");
  EXPECT_EQ(One("day", "at 5pm"), "<none>");
}

TEST_F(ExtractorTest, TimesAreNotNumbersAndAmountsAreNotTimes) {
  // "5" of "5pm" is claimed by the time, so a requested number finds nothing else.
  std::map<std::string, std::string> v = Values("at 5pm", {"count"});
  EXPECT_EQ(v["count"], "");
  EXPECT_EQ(v["at"], "17:00");
  v = Values("$5 at 3pm");
  EXPECT_EQ(v["charged"], "5 USD");
  EXPECT_EQ(v["at"], "15:00");
}

TEST_F(ExtractorTest, RelativeDatesUseTheInjectedDay) {
  ExtractOptions options;
  options.today = absl::CivilDay(2030, 1, 1);
  std::optional<SlotCandidate> c =
      extractor_->ExtractSlot(*domain_->FindSlot("day"), "tomorrow", options);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->value, "2030-01-02");
}

TEST_F(ExtractorTest, ExtractSlotNormalizesATaggedSpan) {
  EXPECT_EQ(One("order_id", "ab123456"), "AB123456");
  EXPECT_EQ(One("colour", "crimson"), "red");
  EXPECT_EQ(One("colour", "navy"), "dark_blue");
  EXPECT_EQ(One("colour", "dark blue"), "dark_blue");
  EXPECT_EQ(One("colour", "green"), "<none>");  // A categorical value the domain lacks.
  EXPECT_EQ(One("charged", "$5"), "5 USD");
  EXPECT_EQ(One("email", "Jane@Example.com"), "jane@example.com");
  EXPECT_EQ(One("phone", "138 1234 5678"), "13812345678");
  EXPECT_EQ(One("note", "  the red one "), "the red one");
  EXPECT_EQ(One("note", " "), "<none>");
}

TEST_F(ExtractorTest, CardNumbersAreNeverValues) {
  std::map<std::string, std::string> v = Values("4111 1111 1111 1111", {"order_id", "count"});
  EXPECT_THAT(v, IsEmpty());
}

TEST(ShopExtractorTest, ShopSlotsKeepTheirValues) {
  const auto& shop = testutil::ShopDomain();
  ASSERT_TRUE(shop.ok()) << shop.status();
  SlotExtractor extractor(*shop);
  ExtractOptions options;
  options.today = absl::CivilDay(2026, 11, 29);
  std::map<std::string, std::string> v;
  for (const SlotCandidate& c :
       extractor.Extract("order A-1234567 was charged ¥88 on 3 Dec, jane@example.com", options)) {
    v[c.slot] = c.value;
  }
  EXPECT_EQ(v["order_id"], "A-1234567");
  EXPECT_EQ(v["amount"], "88 CNY");
  EXPECT_EQ(v["order_date"], "2026-12-03");
  EXPECT_EQ(v["email"], "jane@example.com");
  options.requested = {"order_id"};
  v.clear();
  for (const SlotCandidate& c : extractor.Extract("13812345678", options)) v[c.slot] = c.value;
  EXPECT_EQ(v["order_id"], "13812345678");
}

}  // namespace
}  // namespace helpline::dst
