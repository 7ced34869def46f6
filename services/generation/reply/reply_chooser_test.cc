#include "services/generation/reply/reply_chooser.h"

#include "services/generation/reply/chrf.h"

#include <cmath>
#include <set>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/generation/reply/chrf.h"
#include "tests/testing/shop_domain.h"

namespace helpline::generation::reply {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

std::shared_ptr<const domain::Domain> Shop() {
  const auto& shop = testutil::ShopDomain();
  EXPECT_TRUE(shop.ok()) << shop.status();
  return *shop;
}

std::unique_ptr<const ReplyChooser> Chooser(ChooserOptions options = {}) {
  absl::StatusOr<Blocklist> blocklist =
      Blocklist::Parse("en: [idiot, stupid, shut up]\nzh: [傻逼, 闭嘴]\n", "test");
  EXPECT_TRUE(blocklist.ok()) << blocklist.status();
  auto c = ReplyChooser::Create(Shop(), *std::move(blocklist), std::move(options));
  EXPECT_TRUE(c.ok()) << c.status();
  return *std::move(c);
}

void SetSlot(v1::GenerationContext& context, const std::string& name, const std::string& value) {
  (*context.mutable_state()->mutable_slots())[name].set_value(value);
}

// Turn 2 of an English tracking conversation: the customer gave the order number now.
v1::GenerationContext TrackOrder() {
  v1::GenerationContext context;
  context.set_domain("shop");
  context.mutable_state()->set_language("en");
  context.mutable_state()->set_active_intent("track_order");
  common::v1::Turn* t = context.add_history();
  t->set_user_text("Hi, where is my order? You can mail me at Jane.Doe@example.com");
  t->set_reply("Sure. What's the order number? It's in the confirmation e-mail.");
  context.set_user_text("it's a-1234567, and my phone is 415 555 0100");
  SetSlot(context, "order_id", "A-1234567");
  SetSlot(context, "email", "jane.doe@example.com");
  return context;
}

RawCandidate Raw(std::string text, double logprob_sum = -10.0, size_t tokens = 10,
                 bool by_length = false) {
  return RawCandidate{std::move(text), tokens, logprob_sum, by_length};
}

std::vector<std::string> ReasonsOf(const ReplyChooser& chooser, const v1::GenerationContext& ctx,
                                   RawCandidate raw) {
  ReplyChoice choice = chooser.Choose(ctx, {raw});
  return choice.candidates.at(0).rejection_reasons;
}

TEST(ReplyChooserTest, ReasonsAreStableStrings) {
  std::set<std::string> reasons;
  for (absl::string_view r : AllRejectionReasons()) reasons.insert(std::string(r));
  EXPECT_EQ(reasons,
            (std::set<std::string>{"empty", "truncated", "unsafe", "pii_not_from_customer",
                                   "unsupported_value", "slot_contradiction",
                                   "unfilled_placeholder", "repetition"}));
}

TEST(ReplyChooserTest, ChoosesTheBestSurvivorByTheScoreFormula) {
  ChooserOptions options;
  options.weights = {2.0, 1.5, 0.5, 10, /*consensus=*/0.0};
  auto chooser = Chooser(options);
  const v1::GenerationContext context = TrackOrder();
  const std::vector<RawCandidate> raws = {
      // Fluent, but mentions nothing of the state.
      Raw(" Thanks! You can follow the parcel live under My Orders.", -4.0, 12),
      // Mentions the order number and the e-mail: full coverage.
      Raw(" Thanks! Order A-1234567 is on its way; the tracking link goes to "
          "jane.doe@example.com.",
          -9.0, 20),
      // Short and likely.
      Raw(" Thanks!", -0.5, 2),
  };
  ReplyChoice choice = chooser->Choose(context, raws);
  ASSERT_EQ(choice.candidates.size(), 3u);
  for (const ScoredCandidate& c : choice.candidates) EXPECT_THAT(c.rejection_reasons, IsEmpty());
  // Coverage items: order_id and email (both used by track_order); nothing is missing.
  EXPECT_DOUBLE_EQ(choice.candidates[0].coverage, 0.0);
  EXPECT_DOUBLE_EQ(choice.candidates[1].coverage, 1.0);
  EXPECT_DOUBLE_EQ(choice.candidates[2].coverage, 0.0);
  // score = 2 * logprob/tokens + 1.5 * coverage + 0.5 * min(1, units / 10)
  EXPECT_NEAR(choice.candidates[0].score, 2 * (-4.0 / 12) + 0 + 0.5 * 1.0, 1e-9);
  EXPECT_NEAR(choice.candidates[1].score, 2 * (-9.0 / 20) + 1.5 + 0.5 * 1.0, 1e-9);
  EXPECT_NEAR(choice.candidates[2].score, 2 * (-0.5 / 2) + 0 + 0.5 * 0.1, 1e-9);
  ASSERT_TRUE(choice.chosen.has_value());
  EXPECT_EQ(*choice.chosen, 1u);
  EXPECT_EQ(choice.candidates[1].text,
            "Thanks! Order A-1234567 is on its way; the tracking link goes to "
            "jane.doe@example.com.");  // Leading space of the continuation stripped.
  // Without the coverage and length weights the likeliest reply per token wins.
  options.weights = {1.0, 0.0, 0.0, 10, 0.0};
  choice = Chooser(options)->Choose(context, raws);
  EXPECT_EQ(choice.chosen, 2u);  // -0.5/2 > -4/12 > -9/20
}

TEST(ReplyChooserTest, ConsensusPrefersTheReplyTheOtherSurvivorsSupport) {
  ChooserOptions options;
  options.weights = {1.0, 0.0, 0.0, 10, /*consensus=*/10.0};
  const v1::GenerationContext context = TrackOrder();
  const std::vector<RawCandidate> raws = {
      Raw(" Your parcel left the warehouse today.", -1.0, 8),  // the likeliest, alone
      Raw(" Your order is on its way and arrives tomorrow.", -6.0, 10),
      Raw(" Your order is on its way, it arrives tomorrow.", -6.0, 10),
      Raw(" Your order is on its way.", -9.0, 6),
      Raw(" Contact idiot support.", -0.1, 4),  // rejected (unsafe): no say in the consensus
  };
  ReplyChoice choice = Chooser(options)->Choose(context, raws);
  ASSERT_EQ(choice.candidates.size(), 5u);
  ASSERT_TRUE(choice.candidates[4].rejected());
  EXPECT_DOUBLE_EQ(choice.candidates[4].consensus, 0.0);
  // consensus = mean chrF (0..1) against the other survivors as references.
  const std::vector<std::string> texts = {choice.candidates[0].text, choice.candidates[1].text,
                                          choice.candidates[2].text, choice.candidates[3].text};
  for (size_t a = 0; a < texts.size(); ++a) {
    double sum = 0.0;
    for (size_t b = 0; b < texts.size(); ++b) {
      if (b != a) sum += SentenceChrf(texts[a], texts[b]) / 100.0;
    }
    EXPECT_NEAR(choice.candidates[a].consensus, sum / 3.0, 1e-12) << a;
    EXPECT_NEAR(choice.candidates[a].score,
                choice.candidates[a].mean_logprob + 10.0 * choice.candidates[a].consensus, 1e-9);
  }
  EXPECT_LT(choice.candidates[0].consensus, choice.candidates[1].consensus);
  ASSERT_TRUE(choice.chosen.has_value());
  EXPECT_TRUE(*choice.chosen == 1u || *choice.chosen == 2u) << *choice.chosen;
  // Without the consensus term the likeliest survivor wins.
  options.weights.consensus = 0.0;
  choice = Chooser(options)->Choose(context, raws);
  EXPECT_EQ(choice.chosen, 0u);
  EXPECT_DOUBLE_EQ(choice.candidates[1].consensus, 0.0);
  // One survivor: nothing to agree with.
  options.weights.consensus = 10.0;
  choice = Chooser(options)->Choose(context, absl::MakeConstSpan(raws).subspan(0, 1));
  EXPECT_DOUBLE_EQ(choice.candidates[0].consensus, 0.0);
}

// The context's exemplar votes in the consensus as exemplar_votes more candidates: a lone
// survivor worded like it can beat the agreeing pair.
TEST(ReplyChooserTest, ExemplarVotesPullTheChoiceTowardTheExemplar) {
  ChooserOptions options;
  options.weights = {1.0, 0.0, 0.0, 10, /*consensus=*/10.0, /*exemplar_votes=*/4.0};
  v1::GenerationContext context = TrackOrder();
  context.set_exemplar("Please check the details on the screen. Is the order correct?");
  const std::vector<RawCandidate> raws = {
      Raw(" Your order is on its way and arrives tomorrow.", -6.0, 10),
      Raw(" Your order is on its way, it arrives tomorrow.", -6.0, 10),
      Raw(" Please check the details on the screen, is it correct?", -6.0, 10),
  };
  ReplyChoice choice = Chooser(options)->Choose(context, raws);
  for (size_t a = 0; a < raws.size(); ++a) {
    double sum = 4.0 * SentenceChrf(choice.candidates[a].text, context.exemplar()) / 100.0;
    for (size_t b = 0; b < raws.size(); ++b) {
      if (b != a) sum += SentenceChrf(choice.candidates[a].text, choice.candidates[b].text) / 100.0;
    }
    EXPECT_NEAR(choice.candidates[a].consensus, sum / (2.0 + 4.0), 1e-12) << a;
  }
  EXPECT_EQ(choice.chosen, 2u);
  // Without votes the pair wins.
  options.weights.exemplar_votes = 0.0;
  choice = Chooser(options)->Choose(context, raws);
  EXPECT_TRUE(choice.chosen == 0u || choice.chosen == 1u);
  // One survivor with an exemplar: its agreement with the exemplar.
  options.weights.exemplar_votes = 4.0;
  choice = Chooser(options)->Choose(context, absl::MakeConstSpan(raws).subspan(2, 1));
  EXPECT_NEAR(choice.candidates[0].consensus,
              SentenceChrf(choice.candidates[0].text, context.exemplar()) / 100.0, 1e-12);
}

// Each similar reply is one more reference of one vote: without an exemplar, three of them
// worded like the lone candidate outvote the agreeing pair.
TEST(ReplyChooserTest, SimilarRepliesVoteOnceEach) {
  ChooserOptions options;
  options.weights = {1.0, 0.0, 0.0, 10, /*consensus=*/10.0, /*exemplar_votes=*/4.0};
  v1::GenerationContext context = TrackOrder();
  const std::vector<RawCandidate> raws = {
      Raw(" Your order is on its way and arrives tomorrow.", -6.0, 10),
      Raw(" Your order is on its way, it arrives tomorrow.", -6.0, 10),
      Raw(" Please check the details on the screen, is it correct?", -6.0, 10),
  };
  ReplyChoice choice = Chooser(options)->Choose(context, raws);
  EXPECT_TRUE(choice.chosen == 0u || choice.chosen == 1u);
  context.add_similar_replies("Please check the details on the screen. Is it correct?");
  context.add_similar_replies("Please check the details shown on the screen.");
  context.add_similar_replies("");  // empty: no vote
  context.add_similar_replies("Check the details on the screen, please: correct?");
  choice = Chooser(options)->Choose(context, raws);
  for (size_t a = 0; a < raws.size(); ++a) {
    double sum = 0.0;
    for (const std::string& r : context.similar_replies()) {
      if (!r.empty()) sum += SentenceChrf(choice.candidates[a].text, r) / 100.0;
    }
    for (size_t b = 0; b < raws.size(); ++b) {
      if (b != a) sum += SentenceChrf(choice.candidates[a].text, choice.candidates[b].text) / 100.0;
    }
    EXPECT_NEAR(choice.candidates[a].consensus, sum / (2.0 + 3.0), 1e-12) << a;
  }
  EXPECT_EQ(choice.chosen, 2u);
  // With the exemplar too: its votes and theirs share one divisor.
  context.set_exemplar("Your order is on its way.");
  choice = Chooser(options)->Choose(context, raws);
  const std::string& text = choice.candidates[0].text;
  double sum = 4.0 * SentenceChrf(text, context.exemplar()) / 100.0;
  for (const std::string& r : context.similar_replies()) {
    if (!r.empty()) sum += SentenceChrf(text, r) / 100.0;
  }
  sum += SentenceChrf(text, choice.candidates[1].text) / 100.0;
  sum += SentenceChrf(text, choice.candidates[2].text) / 100.0;
  EXPECT_NEAR(choice.candidates[0].consensus, sum / (2.0 + 4.0 + 3.0), 1e-12);
}

TEST(ReplyChooserTest, TiesGoToTheLowerIndex) {
  auto chooser = Chooser();
  const v1::GenerationContext context = TrackOrder();
  ReplyChoice choice = chooser->Choose(context, {Raw(" Happy to help."), Raw(" Happy to help.")});
  EXPECT_EQ(choice.chosen, 0u);
}

TEST(ReplyChooserTest, Unsafe) {
  auto chooser = Chooser();
  const v1::GenerationContext context = TrackOrder();
  EXPECT_THAT(ReasonsOf(*chooser, context, Raw(" Order A-1234567 ships today, you idiot.")),
              ElementsAre("unsafe"));
  EXPECT_THAT(ReasonsOf(*chooser, context, Raw(" Please SHUT UP and wait.")),
              ElementsAre("unsafe"));
  EXPECT_THAT(ReasonsOf(*chooser, context, Raw("订单 A-1234567 自己查，傻逼。")),
              ElementsAre("unsafe"));
  // Word boundaries: "stupidly" is not in the list, "shut-up" is the phrase with a hyphen.
  EXPECT_THAT(ReasonsOf(*chooser, context, Raw(" Our stupidly fast courier has it.")), IsEmpty());
}

TEST(ReplyChooserTest, PersonalDataMustComeFromTheCustomer) {
  auto chooser = Chooser();
  const v1::GenerationContext context = TrackOrder();
  // The customer's own e-mail (history) and phone (this turn, another format) are fine.
  EXPECT_THAT(ReasonsOf(*chooser, context,
                        Raw(" I'll text the tracking link to (415) 555-0100 and e-mail it to "
                            "jane.doe@example.com.")),
              IsEmpty());
  // Made-up e-mail, phone and card numbers are not.
  ReplyChoice choice =
      chooser->Choose(context, {Raw(" I've sent it to jane.d@example.org."),
                                Raw(" Call our courier on +44 20 7946 0958."),
                                Raw(" Your card 4111 1111 1111 1111 was refunded."),
                                Raw(" Your other order B-7654321 shipped too.")});
  // The e-mail and the order number also differ from the state's values.
  EXPECT_THAT(choice.candidates[0].rejection_reasons,
              UnorderedElementsAre("pii_not_from_customer", "slot_contradiction"));
  EXPECT_THAT(choice.candidates[1].rejection_reasons, ElementsAre("pii_not_from_customer"));
  EXPECT_THAT(choice.candidates[2].rejection_reasons, ElementsAre("pii_not_from_customer"));
  EXPECT_THAT(choice.candidates[3].rejection_reasons,
              UnorderedElementsAre("pii_not_from_customer", "slot_contradiction"));
  EXPECT_THAT(choice.candidates[1].details, ElementsAre(HasSubstr("phone '+44 20 7946 0958'")));
  EXPECT_FALSE(choice.chosen.has_value());
  // The domain's own example numbers (ask.order_id) are not personal data.
  v1::GenerationContext asking = TrackOrder();
  asking.mutable_state()->clear_slots();
  EXPECT_THAT(ReasonsOf(*chooser, asking,
                        Raw(" Could you give me your order number? It looks like 12345678 or "
                            "A-1234567.")),
              IsEmpty());
}

TEST(ReplyChooserTest, AllowedValuesAreNeverPersonalData) {
  ChooserOptions options;
  options.allowed_values = {"+1 800 555 0199", "help@shop.example"};
  auto chooser = Chooser(options);
  v1::GenerationContext context = TrackOrder();
  SetSlot(context, "phone", "4155550100");
  EXPECT_THAT(ReasonsOf(*chooser, context,
                        Raw(" You can also call us on 1-800-555-0199 or write to "
                            "help@shop.example.")),
              IsEmpty());
}

TEST(ReplyChooserTest, SlotContradiction) {
  auto chooser = Chooser();
  v1::GenerationContext context = TrackOrder();
  // The customer first gave 87654321, then corrected it: the state holds A-1234567.
  context.mutable_history(0)->set_user_text(
      "where is my order 87654321? mail Jane.Doe@example.com");
  EXPECT_THAT(ReasonsOf(*chooser, context, Raw(" Order 87654321 is on its way.")),
              ElementsAre("slot_contradiction"));
  // A number nobody wrote is both made up and contradicting.
  EXPECT_THAT(ReasonsOf(*chooser, context, Raw(" Order A-7654321 is on its way.")),
              UnorderedElementsAre("pii_not_from_customer", "slot_contradiction"));
  // Same order number, other spelling: fine.
  EXPECT_THAT(ReasonsOf(*chooser, context, Raw(" Order a1234567 is on its way.")), IsEmpty());

  // Amounts, e-mails and phones.
  SetSlot(context, "amount", "49.90");
  SetSlot(context, "phone", "4155550100");
  EXPECT_THAT(ReasonsOf(*chooser, context, Raw(" I see a refund of $59.90 for that order.")),
              ElementsAre("slot_contradiction"));
  EXPECT_THAT(ReasonsOf(*chooser, context, Raw(" I see a refund of $49.9 for that order.")),
              IsEmpty());
  EXPECT_THAT(ReasonsOf(*chooser, context, Raw("已为您退款49.90元。")), IsEmpty());
  context.set_user_text("it's a-1234567, also try my old mail jd@old.example");
  EXPECT_THAT(ReasonsOf(*chooser, context, Raw(" I've sent the link to jd@old.example.")),
              ElementsAre("slot_contradiction"));
  // An unformatted phone number looks like an order number, but it is the phone slot's
  // value: no contradiction.
  EXPECT_THAT(ReasonsOf(*chooser, context, Raw(" We'll text 4155550100 when it ships.")),
              IsEmpty());
}

TEST(ReplyChooserTest, AmountsMustBeSupported) {
  auto chooser = Chooser();
  v1::GenerationContext context = TrackOrder();
  // No amount anywhere: a price or a refund the model made up.
  EXPECT_THAT(ReasonsOf(*chooser, context, Raw(" Your refund of $183.50 is on its way.")),
              ElementsAre("unsupported_value"));
  EXPECT_THAT(ReasonsOf(*chooser, context, Raw("已为您退款30元。")),
              ElementsAre("unsupported_value"));
  // The customer's own amount (another spelling) is supported.
  context.set_user_text("I paid 183.5 dollars for order a-1234567");
  EXPECT_THAT(ReasonsOf(*chooser, context, Raw(" Your refund of $183.50 is on its way.")),
              IsEmpty());
  // Numbers that are not money are not amounts.
  EXPECT_THAT(ReasonsOf(*chooser, context, Raw(" It should arrive in 3 days.")), IsEmpty());
}

TEST(ReplyChooserTest, PlaceholdersAreFilledFromTheState) {
  auto chooser = Chooser();
  v1::GenerationContext context = TrackOrder();
  SetSlot(context, "reason", "damaged");
  ReplyChoice choice =
      chooser->Choose(context, {Raw(" Thanks! I've looked up order {{order_id}} ({{ reason }})."),
                                Raw(" Thanks! I've sent it to {{phone}}."),
                                Raw(" Thanks! I've looked up order {{order_id."),
                                Raw(" Thanks! Order }} is fine.")});
  EXPECT_THAT(choice.candidates[0].rejection_reasons, IsEmpty());
  EXPECT_EQ(choice.candidates[0].text,
            "Thanks! I've looked up order A-1234567 (it arrived damaged).");
  EXPECT_THAT(choice.candidates[1].rejection_reasons, ElementsAre("unfilled_placeholder"));
  EXPECT_THAT(choice.candidates[1].details, ElementsAre(HasSubstr("{{phone}}")));
  EXPECT_THAT(choice.candidates[2].rejection_reasons, ElementsAre("unfilled_placeholder"));
  EXPECT_THAT(choice.candidates[3].rejection_reasons, ElementsAre("unfilled_placeholder"));
  EXPECT_EQ(choice.chosen, 0u);
}

// Templated data writes the customer's values as placeholders ("where is order
// {{order_number}}"): a reply may echo such a placeholder as written; others stay unfilled.
TEST(ReplyChooserTest, PlaceholdersTheCustomerWroteAreEchoed) {
  EXPECT_THAT(CustomerPlaceholders("order {{order_number}} or {{order_number}}, {{a b}} {{x}} {{"),
              ElementsAre("order_number", "x"));
  auto chooser = Chooser();
  v1::GenerationContext context = TrackOrder();
  context.set_user_text("where is order {{order_number}}?");
  EXPECT_THAT(FillablePlaceholders(context), ElementsAre("email", "order_id", "order_number"));
  ReplyChoice choice = chooser->Choose(
      context, {Raw(" Order {{order_number}} ({{order_id}}) ships today."),
                Raw(" I sent order {{order_number}} details to {{phone}}."),
                Raw(" Order {{order_number}} }} ships today.")});
  EXPECT_THAT(choice.candidates[0].rejection_reasons, IsEmpty());
  EXPECT_EQ(choice.candidates[0].text, "Order {{order_number}} (A-1234567) ships today.");
  EXPECT_THAT(choice.candidates[1].rejection_reasons, ElementsAre("unfilled_placeholder"));
  EXPECT_THAT(choice.candidates[2].rejection_reasons, ElementsAre("unfilled_placeholder"));
  // A state value wins over the echo.
  SetSlot(context, "order_number", "B-7");
  choice = chooser->Choose(context, {Raw(" Order {{order_number}} ships today.")});
  EXPECT_EQ(choice.candidates[0].text, "Order B-7 ships today.");
}

// The business's own placeholders ({{website_url}}) are filled from ChooserOptions::constants,
// decoding may write them, and their values are the business's, not personal data.
TEST(ReplyChooserTest, ConstantsFillTheBusinessPlaceholders) {
  ChooserOptions options;
  options.constants = {{"website_url", "https://shop.example/help"},
                       {"support_email", "help@shop.example"},
                       {"order_id", "never used: the state has one"}};
  auto chooser = Chooser(options);
  v1::GenerationContext context = TrackOrder();
  EXPECT_THAT(chooser->AllowedPlaceholders(context),
              ElementsAre("email", "order_id", "support_email", "website_url"));
  ReplyChoice choice = chooser->Choose(
      context, {Raw(" Order {{order_id}}: see {{website_url}} or write to {{support_email}}."),
                Raw(" Write to help@shop.example about {{order_id}}."),
                Raw(" Visit {{store_hours}}.")});
  EXPECT_THAT(choice.candidates[0].rejection_reasons, IsEmpty());
  EXPECT_EQ(choice.candidates[0].text,
            "Order A-1234567: see https://shop.example/help or write to help@shop.example.");
  EXPECT_THAT(choice.candidates[1].rejection_reasons, IsEmpty());
  EXPECT_THAT(choice.candidates[2].rejection_reasons, ElementsAre("unfilled_placeholder"));

  // Without constants the same placeholders are neither decoded nor filled.
  auto plain = Chooser();
  EXPECT_THAT(plain->AllowedPlaceholders(context), ElementsAre("email", "order_id"));
  EXPECT_THAT(ReasonsOf(*plain, context, Raw(" See {{website_url}}.")),
              ElementsAre("unfilled_placeholder"));
  // (an e-mail slot is filled: another address also contradicts it)
  EXPECT_THAT(ReasonsOf(*plain, context, Raw(" Write to help@shop.example.")),
              ElementsAre("pii_not_from_customer", "slot_contradiction"));
}

// Evaluating on templated data: a constant whose value is its own placeholder keeps it as
// written, like the references do; braces that are no such constant are still refused.
TEST(ReplyChooserTest, AConstantMayKeepItsPlaceholderAsWritten) {
  ChooserOptions options;
  options.constants = {{"website_url", "{{website_url}}"}};
  auto chooser = Chooser(options);
  v1::GenerationContext context = TrackOrder();
  ReplyChoice choice = chooser->Choose(
      context, {Raw(" See {{website_url}} for order {{order_id}}."), Raw(" See {{website_url}} }}.")});
  EXPECT_THAT(choice.candidates[0].rejection_reasons, IsEmpty());
  EXPECT_EQ(choice.candidates[0].text, "See {{website_url}} for order A-1234567.");
  EXPECT_THAT(choice.candidates[1].rejection_reasons, ElementsAre("unfilled_placeholder"));
}

// Create refuses `options` with INVALID_ARGUMENT and a message holding `message`.
void ExpectRefused(const ChooserOptions& options, const std::string& message) {
  absl::StatusOr<Blocklist> blocklist = Blocklist::Parse("en: [idiot]\n", "test");
  ASSERT_TRUE(blocklist.ok());
  auto c = ReplyChooser::Create(Shop(), *blocklist, options);
  ASSERT_FALSE(c.ok()) << message;
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(c.status().message(), HasSubstr(message));
}

TEST(ReplyChooserTest, BadConstantsAreRefusedNamingTheEntry) {
  const std::vector<std::pair<std::pair<std::string, std::string>, std::string>> cases = {
      {{"web-site", "x"}, "constants[web-site]: a placeholder name"},
      {{"", "x"}, "constants[]: a placeholder name"},
      {{"website_url", " "}, "constants[website_url]: empty value"},
      {{"website_url", "see {{url}}"}, "constants[website_url]: 'see {{url}}' has braces"},
      {{"website_url", "{{other}}"}, "constants[website_url]: '{{other}}' has braces"},
  };
  for (const auto& [entry, message] : cases) {
    ChooserOptions options;
    options.constants[entry.first] = entry.second;
    ExpectRefused(options, message);
  }
}

// Aliases: the training data's name of a slot ({{order_number}}) may be decoded and is filled
// with the slot's value, only while the slot has one; a bad alias stops Create naming it.
TEST(ReplyChooserTest, AliasesFillTheDataNamesOfASlot) {
  ChooserOptions options;
  options.placeholder_aliases = {{"order_number", "order_id"}, {"tracking_number", "parcel_id"}};
  auto chooser = Chooser(options);
  v1::GenerationContext context = TrackOrder();
  // parcel_id has no value: its alias is neither allowed nor filled.
  EXPECT_THAT(chooser->AllowedPlaceholders(context),
              ElementsAre("email", "order_id", "order_number"));
  ReplyChoice choice = chooser->Choose(context, {Raw(" Your order {{order_number}} ships today."),
                                                 Raw(" Track {{tracking_number}}.")});
  EXPECT_THAT(choice.candidates[0].rejection_reasons, IsEmpty());
  EXPECT_EQ(choice.candidates[0].text, "Your order A-1234567 ships today.");
  EXPECT_THAT(choice.candidates[1].rejection_reasons, ElementsAre("unfilled_placeholder"));
  // Without the alias the same reply is refused.
  EXPECT_THAT(ReasonsOf(*Chooser(), context, Raw(" Your order {{order_number}} ships today.")),
              ElementsAre("unfilled_placeholder"));

  auto bad = [](const std::string& alias, const std::string& slot) {
    ChooserOptions o;
    o.placeholder_aliases[alias] = slot;
    return o;
  };
  ExpectRefused(bad("order-number", "order_id"),
                "placeholder_aliases[order-number]: 'order-number' is not a placeholder name");
  ExpectRefused(bad("order_number", "order id"),
                "placeholder_aliases[order_number]: 'order id' is not a placeholder name");
  ExpectRefused(bad("order_id", "order_id"), "placeholder_aliases[order_id]: names itself");
}

TEST(ReplyChooserTest, Repetition) {
  auto chooser = Chooser();
  const v1::GenerationContext context = TrackOrder();
  EXPECT_THAT(
      ReasonsOf(*chooser, context, Raw(" Thank you thank you thank you for order A-1234567.")),
      ElementsAre("repetition"));
  EXPECT_THAT(ReasonsOf(*chooser, context, Raw("好的好的好的，马上为您查询。")),
              ElementsAre("repetition"));
  // Repetition inside the first sentence leaves nothing to keep.
  EXPECT_THAT(ReasonsOf(*chooser, context,
                        Raw(" I will check order A-1234567 now I will check order A-1234567 now.")),
              ElementsAre("repetition"));
}

TEST(ReplyChooserTest, ARepeatedSentenceIsCutOff) {
  auto chooser = Chooser();
  const v1::GenerationContext context = TrackOrder();
  ReplyChoice choice = chooser->Choose(
      context, {Raw(" I will check order A-1234567 now. Is there anything else I can do? Is there "
                    "anything else I can do?")});
  EXPECT_THAT(choice.candidates[0].rejection_reasons, IsEmpty());
  EXPECT_EQ(choice.candidates[0].text, "I will check order A-1234567 now. Is there anything else I can do?");
  EXPECT_TRUE(choice.candidates[0].pruned);
  choice = chooser->Choose(
      context, {Raw(" I will check order A-1234567 now. I will check order A-1234567 now.")});
  EXPECT_THAT(choice.candidates[0].rejection_reasons, IsEmpty());
  EXPECT_EQ(choice.candidates[0].text, "I will check order A-1234567 now.");
}

TEST(ReplyChooserTest, Empty) {
  auto chooser = Chooser();
  const v1::GenerationContext context = TrackOrder();
  EXPECT_THAT(ReasonsOf(*chooser, context, Raw("")), ElementsAre("empty"));
  EXPECT_THAT(ReasonsOf(*chooser, context, Raw("  ... !")), ElementsAre("empty"));
  EXPECT_THAT(ReasonsOf(*chooser, context, Raw("。。“”")), ElementsAre("empty"));
  // The model went straight on to the next turn: nothing of the reply is left.
  EXPECT_THAT(ReasonsOf(*chooser, context, Raw("\nCustomer: hello?")), ElementsAre("empty"));
}

TEST(ReplyChooserTest, RoleLabelsEndTheReply) {
  auto chooser = Chooser();
  const v1::GenerationContext context = TrackOrder();
  ReplyChoice choice = chooser->Choose(
      context, {Raw(" Order A-1234567 is on its way.\nCustomer: thanks\nAgent: You're welcome", -5,
                    20, /*by_length=*/true)});
  EXPECT_THAT(choice.candidates[0].rejection_reasons, IsEmpty());
  EXPECT_EQ(choice.candidates[0].text, "Order A-1234567 is on its way.");
  EXPECT_TRUE(choice.candidates[0].pruned);
}

TEST(ReplyChooserTest, LengthLimitedRepliesAreCutToTheLastSentence) {
  auto chooser = Chooser();
  const v1::GenerationContext context = TrackOrder();
  ReplyChoice choice = chooser->Choose(
      context,
      {Raw(" Thanks! I've looked up order A-1234567. You can follow it live under My", -8, 24,
           true),
       Raw(" Thanks! I've looked up order A-1234567. You can follow it live under My", -8, 24,
           false),
       Raw(" Thanks, I have looked up order A-1234567 and it is currently", -3, 24, true)});
  EXPECT_THAT(choice.candidates[0].rejection_reasons, IsEmpty());
  EXPECT_EQ(choice.candidates[0].text, "Thanks! I've looked up order A-1234567.");
  EXPECT_TRUE(choice.candidates[0].pruned);
  // Not cut by length: kept whole (the model chose to stop there).
  EXPECT_EQ(choice.candidates[1].text,
            "Thanks! I've looked up order A-1234567. You can follow it live under My");
  EXPECT_FALSE(choice.candidates[1].pruned);
  EXPECT_THAT(choice.candidates[2].rejection_reasons, ElementsAre("truncated"));
  // A Chinese reply cut by the limit.
  v1::GenerationContext zh = TrackOrder();
  zh.mutable_state()->set_language("zh");
  choice = chooser->Choose(
      zh, {Raw("谢谢！已查到订单 A-1234567。您可以在“我的订单 > 查看物流”中实时跟踪，每个", -8, 30,
               true)});
  EXPECT_THAT(choice.candidates[0].rejection_reasons, IsEmpty());
  EXPECT_EQ(choice.candidates[0].text, "谢谢！已查到订单 A-1234567。");
  // Keeping truncated replies instead.
  ChooserOptions keep;
  keep.reject_truncated = false;
  choice = Chooser(keep)->Choose(
      context,
      {Raw(" Thanks, I have looked up order A-1234567 and it is currently", -3, 24, true)});
  EXPECT_THAT(choice.candidates[0].rejection_reasons, IsEmpty());
  EXPECT_EQ(choice.candidates[0].text,
            "Thanks, I have looked up order A-1234567 and it is currently");
}

TEST(ReplyChooserTest, NothingSurvivesMeansTheTemplateReply) {
  auto chooser = Chooser();
  const v1::GenerationContext context = TrackOrder();
  ReplyChoice choice = chooser->Choose(
      context,
      {Raw(" "), Raw(" Shut up, order B-7654321 is late late late."),
       Raw(" Your order {{item}} is", -1, 8, true)});
  EXPECT_FALSE(choice.chosen.has_value());
  EXPECT_THAT(choice.candidates[0].rejection_reasons, ElementsAre("empty"));
  EXPECT_THAT(
      choice.candidates[1].rejection_reasons,
      UnorderedElementsAre("unsafe", "pii_not_from_customer", "slot_contradiction", "repetition"));
  EXPECT_THAT(choice.candidates[2].rejection_reasons,
              UnorderedElementsAre("truncated", "unfilled_placeholder"));
  // No candidates at all: nothing chosen either.
  EXPECT_FALSE(chooser->Choose(context, {}).chosen.has_value());
}

TEST(ReplyChooserTest, ChineseRepliesAndAskingForTheMissingSlot) {
  ChooserOptions options;
  options.ask_keywords["order_id"] = {"订单号", "order number"};
  auto chooser = Chooser(options);
  v1::GenerationContext context;
  context.mutable_state()->set_language("zh");
  context.mutable_state()->set_active_intent("return_item");
  context.set_user_text("我要退货，鞋子尺码太小了");
  SetSlot(context, "reason", "too_small");
  SetSlot(context, "item", "鞋子");
  ReplyChoice choice =
      chooser->Choose(context, {Raw("好的，请问还有什么可以帮您？", -3, 12),
                                Raw("好的，鞋子尺码偏小可以退货。请提供您的订单号。", -6, 20),
                                Raw("好的，请提供您的订单号。", -4, 10)});
  // Items: reason (label 尺码偏小 or a synonym such as 太小), item (鞋子), the missing order_id.
  EXPECT_DOUBLE_EQ(choice.candidates[0].coverage, 0.0);
  EXPECT_DOUBLE_EQ(choice.candidates[1].coverage, 1.0);
  EXPECT_NEAR(choice.candidates[2].coverage, 1.0 / 3, 1e-9);
  EXPECT_EQ(choice.chosen, 1u);
  // The default keywords of an "_id" slot work for English.
  context.mutable_state()->set_language("en");
  choice = Chooser()->Choose(context, {Raw(" What's the order number?", -3, 6)});
  EXPECT_NEAR(choice.candidates[0].coverage, 1.0 / 3, 1e-9);
}

TEST(ReplyChooserTest, ToProto) {
  ScoredCandidate c;
  c.text = "Hello!";
  c.score = -0.25;
  c.rejection_reasons = {"unsafe", "repetition"};
  v1::Candidate proto;
  ToProto(c, proto);
  EXPECT_EQ(proto.text(), "Hello!");
  EXPECT_FLOAT_EQ(proto.score(), -0.25f);
  EXPECT_THAT(proto.rejection_reasons(), ElementsAre("unsafe", "repetition"));
  EXPECT_EQ(proto.origin(), "model");
}

}  // namespace
}  // namespace helpline::generation::reply
