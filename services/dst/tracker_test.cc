#include "services/dst/tracker.h"

#include <cstdlib>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/domain/template.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/shop_domain.h"

namespace helpline::dst {
namespace {

using common::v1::DialogueState;
using common::v1::SLOT_SOURCE_ATTACHMENT;
using common::v1::SLOT_SOURCE_CUSTOMER_TEXT;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

std::shared_ptr<const domain::Domain> Shop() {
  const auto& shop = testutil::ShopDomain();
  EXPECT_TRUE(shop.ok()) << shop.status();
  return shop.ok() ? *shop : std::make_shared<const domain::Domain>();
}

class TrackerTest : public ::testing::Test {
 protected:
  TrackerTest() : tracker_(Shop(), TrackerOptions{}) {}

  // Runs one turn on top of state_ and keeps the result.
  const DialogueState& Say(const std::string& text, const std::string& language = "en",
                           std::vector<common::v1::Evidence> evidence = {}) {
    TurnInput input;
    input.user_text = text;
    input.language = language;
    input.evidence = std::move(evidence);
    input.prior = state_;
    auto result = tracker_.Track(input);
    EXPECT_TRUE(result.ok()) << result.status();
    if (result.ok()) {
      last_ = *result;
      state_ = result->state;
    }
    return state_;
  }

  std::string Slot(const std::string& name) const {
    auto it = state_.slots().find(name);
    return it == state_.slots().end() ? "" : it->second.value();
  }

  Tracker tracker_;
  DialogueState state_;
  TrackResult last_;
};

common::v1::Evidence Ocr(const std::string& text, float confidence = 0.9f) {
  common::v1::Evidence e;
  e.set_source("ocr");
  e.set_text(text);
  e.set_confidence(confidence);
  return e;
}

TEST_F(TrackerTest, EnglishTrackOrderConversation) {
  Say("where is my order?");
  EXPECT_EQ(state_.domain(), "shop");
  EXPECT_EQ(state_.active_intent(), "track_order");
  EXPECT_GE(state_.intent_confidence(), 0.35f);
  EXPECT_THAT(state_.missing_slots(), ElementsAre("order_id"));
  EXPECT_THAT(state_.requested_slots(), ElementsAre("order_id"));
  EXPECT_EQ(state_.turn_count(), 1u);
  EXPECT_EQ(state_.language(), "en");
  EXPECT_FALSE(state_.escalate());

  Say("12345678", "und");  // A bare value answers what we asked.
  EXPECT_EQ(state_.active_intent(), "track_order");
  EXPECT_EQ(Slot("order_id"), "12345678");
  EXPECT_EQ(state_.slots().at("order_id").source(), SLOT_SOURCE_CUSTOMER_TEXT);
  EXPECT_EQ(state_.slots().at("order_id").turn(), 1u);
  EXPECT_GT(state_.slots().at("order_id").confidence(), 0.5f);
  EXPECT_THAT(state_.missing_slots(), IsEmpty());
  EXPECT_THAT(state_.requested_slots(), IsEmpty());
  EXPECT_EQ(state_.language(), "en");  // "und" keeps the conversation's language.
  EXPECT_EQ(domain::SelectTemplate(*Shop(), state_, "en"), "track_order.done");

  Say("sorry, it's A-1234567");  // A correction overwrites.
  EXPECT_EQ(state_.active_intent(), "track_order");
  EXPECT_EQ(Slot("order_id"), "A-1234567");
  EXPECT_EQ(state_.slots().at("order_id").turn(), 2u);

  Say("I want to talk to a human");
  EXPECT_TRUE(state_.escalate());
  EXPECT_EQ(state_.escalation_reason(), "customer_request");
  EXPECT_THAT(state_.requested_slots(), IsEmpty());
  EXPECT_EQ(state_.turn_count(), 4u);
  EXPECT_EQ(domain::SelectTemplate(*Shop(), state_, "en"), "escalate");
}

TEST_F(TrackerTest, ChineseTrackOrderConversation) {
  Say("我的订单到哪了", "zh");
  EXPECT_EQ(state_.active_intent(), "track_order");
  EXPECT_THAT(state_.requested_slots(), ElementsAre("order_id"));
  EXPECT_EQ(state_.language(), "zh");

  Say("订单号是AB123456", "zh");
  EXPECT_EQ(state_.active_intent(), "track_order");
  EXPECT_EQ(Slot("order_id"), "AB123456");
  EXPECT_THAT(state_.missing_slots(), IsEmpty());

  Say("转人工", "zh");
  EXPECT_TRUE(state_.escalate());
  EXPECT_EQ(state_.escalation_reason(), "customer_request");
}

TEST_F(TrackerTest, EscalatingIntentPolicy) {
  Say("get me a manager");
  EXPECT_EQ(state_.active_intent(), "human_agent");
  EXPECT_TRUE(state_.escalate());
  EXPECT_EQ(state_.escalation_reason(), "intent_policy");
}

TEST_F(TrackerTest, EscalationIsSticky) {
  Say("人工客服", "zh");
  EXPECT_TRUE(state_.escalate());
  Say("where is my order?");
  EXPECT_TRUE(state_.escalate());
  EXPECT_EQ(state_.escalation_reason(), "customer_request");
}

TEST_F(TrackerTest, AttachmentFillsEmptySlot) {
  Say("where is my order?");
  Say("here is a screenshot", "en", {Ocr("Order No: AB123456\nTotal $59.90")});
  EXPECT_EQ(state_.active_intent(), "track_order");
  EXPECT_EQ(Slot("order_id"), "AB123456");
  EXPECT_EQ(state_.slots().at("order_id").source(), SLOT_SOURCE_ATTACHMENT);
  EXPECT_LE(state_.slots().at("order_id").confidence(), 0.9f);
  EXPECT_THAT(state_.missing_slots(), IsEmpty());
}

TEST_F(TrackerTest, AttachmentDoesNotOverrideTypedValue) {
  Say("where is my order 12345678");
  EXPECT_EQ(Slot("order_id"), "12345678");
  Say("see the attached receipt", "en", {Ocr("Order No: AB123456")});
  EXPECT_EQ(Slot("order_id"), "12345678");
  EXPECT_EQ(state_.slots().at("order_id").source(), SLOT_SOURCE_CUSTOMER_TEXT);
}

TEST_F(TrackerTest, TypedValueInSameTurnBeatsAttachment) {
  Say("my order A-7654321 is late", "en", {Ocr("Order No: AB123456")});
  EXPECT_EQ(Slot("order_id"), "A-7654321");
  EXPECT_EQ(state_.slots().at("order_id").source(), SLOT_SOURCE_CUSTOMER_TEXT);
}

TEST_F(TrackerTest, AttachmentOnlyTurn) {
  Say("where's my parcel");
  Say("", "und", {Ocr("Order No: AB123456")});
  EXPECT_EQ(Slot("order_id"), "AB123456");
  EXPECT_EQ(state_.active_intent(), "track_order");
}

TEST_F(TrackerTest, EmptyTurnIsRejected) {
  TurnInput input;
  input.user_text = "   ";
  auto r = tracker_.Track(input);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()), ::testing::HasSubstr("user_text"));
}

TEST_F(TrackerTest, PhoneAndCardAreNotOrderIds) {
  Say("hi, call me on 13812345678");
  EXPECT_EQ(Slot("order_id"), "");
  EXPECT_EQ(Slot("phone"), "13812345678");
  Say("my card 4111 1111 1111 1111 was charged twice");
  EXPECT_EQ(Slot("order_id"), "");
  Say("my card 4111111111111111 was declined");
  EXPECT_EQ(Slot("order_id"), "");
  EXPECT_EQ(state_.active_intent(), "payment_issue");
}

TEST_F(TrackerTest, RequestedOrderIdTakesElevenDigits) {
  Say("track my order");
  Say("13812345678");
  EXPECT_EQ(Slot("order_id"), "13812345678");
  EXPECT_EQ(Slot("phone"), "");
}

TEST_F(TrackerTest, EnumSynonymsAndAmount) {
  Say("I was charged twice, $49.99 on my paypal");
  EXPECT_EQ(state_.active_intent(), "payment_issue");
  EXPECT_EQ(Slot("payment_method"), "paypal");
  EXPECT_EQ(Slot("amount"), "49.99");
  EXPECT_THAT(state_.missing_slots(), IsEmpty());

  state_ = DialogueState();
  Say("付款失败", "zh");
  EXPECT_EQ(state_.active_intent(), "payment_issue");
  EXPECT_THAT(state_.requested_slots(), ElementsAre("payment_method"));
  Say("用的微信", "zh");
  EXPECT_EQ(state_.active_intent(), "payment_issue");
  EXPECT_EQ(Slot("payment_method"), "wechat_pay");
}

TEST_F(TrackerTest, ReturnWithFreeTextItemAndReason) {
  Say("I want to return an item");
  EXPECT_EQ(state_.active_intent(), "return_item");
  EXPECT_THAT(state_.requested_slots(), ElementsAre("order_id"));
  Say("A-1234567");
  EXPECT_THAT(state_.requested_slots(), ElementsAre("item"));
  Say("ok");
  EXPECT_EQ(Slot("item"), "");
  EXPECT_THAT(state_.requested_slots(), ElementsAre("item"));
  Say("the blue running shoes");
  EXPECT_EQ(Slot("item"), "the blue running shoes");
  EXPECT_THAT(state_.requested_slots(), ElementsAre("reason"));
  Say("they are too small");
  EXPECT_EQ(state_.active_intent(), "return_item");
  EXPECT_EQ(Slot("reason"), "too_small");
  EXPECT_THAT(state_.missing_slots(), IsEmpty());
  auto reply = domain::RenderReply(*Shop(), state_, "en");
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(reply->key, "return_item.done");
  EXPECT_THAT(reply->text, ::testing::HasSubstr("the blue running shoes"));
  EXPECT_THAT(reply->unfilled, IsEmpty());
}

TEST_F(TrackerTest, SlotsCarryOverAcrossIntents) {
  Say("where is my order A-1234567");
  EXPECT_THAT(state_.missing_slots(), IsEmpty());
  Say("actually, I want to cancel my order");
  EXPECT_EQ(state_.active_intent(), "cancel_order");
  EXPECT_EQ(Slot("order_id"), "A-1234567");
  EXPECT_THAT(state_.missing_slots(), IsEmpty());
}

TEST_F(TrackerTest, ConfirmationKeepsIntent) {
  Say("my package is late");
  EXPECT_EQ(state_.active_intent(), "delivery_problem");
  EXPECT_EQ(Slot("delivery_issue"), "late");
  Say("ok");
  EXPECT_EQ(state_.active_intent(), "delivery_problem");
  Say("好的", "zh");
  EXPECT_EQ(state_.active_intent(), "delivery_problem");
  Say("可以", "zh");
  EXPECT_EQ(state_.active_intent(), "delivery_problem");
}

TEST_F(TrackerTest, OutOfScopeHasNoIntent) {
  Say("what is the capital of france");
  EXPECT_EQ(state_.active_intent(), "");
  EXPECT_EQ(domain::SelectTemplate(*Shop(), state_, "en"), "fallback");
}

TEST_F(TrackerTest, EmailForAccountHelp) {
  Say("I forgot my password");
  EXPECT_EQ(state_.active_intent(), "account_help");
  EXPECT_EQ(Slot("account_issue"), "password_reset");
  EXPECT_THAT(state_.requested_slots(), ElementsAre("email"));
  Say("it's Jane.Doe@Example.com");
  EXPECT_EQ(Slot("email"), "jane.doe@example.com");
  EXPECT_EQ(state_.active_intent(), "account_help");
  EXPECT_THAT(state_.missing_slots(), IsEmpty());
}

// Held-out phrasings (not in shop.yaml): the classifier must generalize a little.
TEST(IntentClassifierTest, HeldOutPhrases) {
  IntentClassifier classifier(*Shop());
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"hello, anybody there?", "greet"},
      {"can you tell me where my order is", "track_order"},
      {"when does my parcel arrive", "track_order"},
      {"my package still hasn't arrived", "delivery_problem"},
      {"the item I received is broken", "delivery_problem"},
      {"how can I send back the shoes", "return_item"},
      {"I still have not got my refund", "refund_status"},
      {"my credit card got declined", "payment_issue"},
      {"I cannot log in to my account", "account_help"},
      {"please cancel my order", "cancel_order"},
      {"thank you very much", "thanks"},
      {"ok bye", "goodbye"},
      {"我的包裹到哪里了", "track_order"},
      {"我想退货", "return_item"},
      {"退款还没到账", "refund_status"},
      {"忘记登录密码", "account_help"},
      {"帮我取消订单", "cancel_order"},
      {"非常感谢", "thanks"},
  };
  int right = 0;
  for (const auto& [text, want] : cases) {
    auto scores = classifier.Score(text);
    const std::string got = scores.empty() ? "" : scores.front().intent;
    const float score = scores.empty() ? 0 : scores.front().score;
    if (got == want && score >= 0.35f) {
      ++right;
    } else {
      ADD_FAILURE() << "'" << text << "': got " << got << " (" << score << "), want " << want;
    }
  }
  EXPECT_EQ(right, static_cast<int>(cases.size()));
}

TEST(IntentClassifierTest, DigitsAndEmailsCarryNoIntent) {
  EXPECT_TRUE(IntentClassifier::Features("12345678").empty());
  EXPECT_TRUE(IntentClassifier::Features("a@b.com").empty());
  EXPECT_TRUE(IntentClassifier(*Shop()).Score("A-1234567").empty());
}

}  // namespace
}  // namespace helpline::dst
// A tuning aid, skipped unless DEBUG_TEXTS="text|text|..." is set: prints the top scores.
namespace helpline::dst {
TEST(DebugScores, Print) {
  const char* env = std::getenv("DEBUG_TEXTS");
  if (env == nullptr) GTEST_SKIP();
  IntentClassifier classifier(*Shop());
  for (absl::string_view t : absl::StrSplit(env, '|')) {
    auto scores = classifier.Score(t);
    std::string line = std::string(t) + " =>";
    for (size_t i = 0; i < scores.size() && i < 4; ++i)
      absl::StrAppend(&line, " ", scores[i].intent, ":", scores[i].score);
    std::cout << line << "\n";
  }
}
}  // namespace helpline::dst
