#include "services/dst/tracker.h"

#include <cstdlib>
#include <iostream>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/domain/template.h"
#include "common/domain/text.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/dst/dialogue_acts.h"
#include "tests/testing/shop_domain.h"

namespace helpline::dst {
namespace {

using common::v1::DialogueState;
using common::v1::SLOT_SOURCE_ATTACHMENT;
using common::v1::SLOT_SOURCE_CUSTOMER_TEXT;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::StartsWith;

std::shared_ptr<const domain::Domain> Shop() {
  const auto& shop = testutil::ShopDomain();
  EXPECT_TRUE(shop.ok()) << shop.status();
  return shop.ok() ? *shop : std::make_shared<const domain::Domain>();
}

// A conversation with one tracker: Say() runs a turn on top of the last state.
class ConversationTest : public ::testing::Test {
 protected:
  explicit ConversationTest(std::shared_ptr<const domain::Domain> domain,
                            TrackerOptions options = {})
      : tracker_(std::make_unique<Tracker>(std::move(domain), std::move(options))) {}

  // Runs one turn on top of state_ and keeps the result.
  const DialogueState& Say(const std::string& text, const std::string& language = "en",
                           std::vector<common::v1::Evidence> evidence = {}) {
    TurnInput input;
    input.user_text = text;
    input.language = language;
    input.evidence = std::move(evidence);
    input.prior = state_;
    auto result = tracker_->Track(input);
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

  std::vector<std::string> Stack() const {
    std::vector<std::string> out;
    for (const auto& frame : state_.intent_stack()) out.push_back(frame.intent());
    return out;
  }

  std::unique_ptr<Tracker> tracker_;
  DialogueState state_;
  TrackResult last_;
};

class TrackerTest : public ConversationTest {
 protected:
  TrackerTest() : ConversationTest(Shop()) {}
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

TEST_F(TrackerTest, EmptyTurnKeepsTheState) {
  Say("where is my order?");
  const DialogueState before = state_;
  for (const char* empty : {"", "   ", "?!", "\xE2\x80\xA6"}) {  // The last is an ellipsis.
    const uint32_t turns = state_.turn_count();
    Say(empty, "und");
    EXPECT_TRUE(last_.empty_turn) << "'" << empty << "'";
    EXPECT_EQ(last_.best.intent, "") << "'" << empty << "'";
    EXPECT_EQ(state_.turn_count(), turns + 1);
    DialogueState same = state_;
    same.set_turn_count(before.turn_count());
    EXPECT_EQ(same.SerializeAsString(), before.SerializeAsString()) << "'" << empty << "'";
  }
  Say("12345678");  // The question asked before the empty turns is still open.
  EXPECT_EQ(Slot("order_id"), "12345678");
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
  EXPECT_THAT(Slot("amount"), StartsWith("49.99"));  // "49.99 USD" once amounts have currencies.
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
  // A return is transactional: the reply repeats the values and asks before starting it.
  auto reply = domain::RenderReply(*Shop(), state_, "en");
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(reply->key, "return_item.confirm");
  EXPECT_THAT(reply->text, ::testing::HasSubstr("the blue running shoes"));
  EXPECT_THAT(reply->text, ::testing::HasSubstr("A-1234567"));
  EXPECT_THAT(reply->text, ::testing::HasSubstr("too small"));
  EXPECT_THAT(reply->unfilled, IsEmpty());
  Say("yes");
  EXPECT_TRUE(state_.ready());
  reply = domain::RenderReply(*Shop(), state_, "en");
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(reply->key, "return_item.done");
  EXPECT_THAT(reply->text, ::testing::HasSubstr("the blue running shoes"));
}

// The reply follows the confirmation: a question with the values (never "done" before the
// yes), the acknowledgement of a no, "done" after a yes, in both languages.
TEST_F(TrackerTest, CancellationRepliesFollowTheConfirmation) {
  auto key = [this](const std::string& language) {
    auto reply = domain::RenderReply(*Shop(), state_, language);
    EXPECT_TRUE(reply.ok()) << reply.status();
    EXPECT_THAT(reply.ok() ? reply->unfilled : std::vector<std::string>{}, IsEmpty());
    return reply.ok() ? reply->key + " | " + reply->text : std::string();
  };
  Say("I want to cancel my order A-1234567");
  ASSERT_EQ(state_.active_intent(), "cancel_order");
  ASSERT_EQ(state_.confirmation(), common::v1::CONFIRMATION_STATUS_PENDING);
  EXPECT_THAT(key("en"), StartsWith("cancel_order.confirm | "));
  EXPECT_THAT(key("en"), ::testing::HasSubstr("A-1234567"));
  EXPECT_THAT(key("zh"), StartsWith("cancel_order.confirm | "));
  EXPECT_THAT(key("zh"), ::testing::HasSubstr("A-1234567"));
  Say("no");
  ASSERT_EQ(state_.confirmation(), common::v1::CONFIRMATION_STATUS_DECLINED);
  EXPECT_THAT(key("en"), StartsWith("cancel_order.declined | "));
  EXPECT_THAT(key("en"), ::testing::HasSubstr("nothing has been cancelled"));
  Say("no, it's A-7654321");  // A corrected value is asked about again.
  ASSERT_EQ(state_.confirmation(), common::v1::CONFIRMATION_STATUS_PENDING);
  EXPECT_THAT(key("en"), ::testing::HasSubstr("A-7654321"));
  EXPECT_THAT(key("en"), StartsWith("cancel_order.confirm | "));
  Say("yes, go ahead");
  ASSERT_TRUE(state_.ready());
  EXPECT_THAT(key("en"), StartsWith("cancel_order.done | "));
  EXPECT_THAT(key("en"), ::testing::HasSubstr("A-7654321"));
}

// A requested free-text slot takes a bare answer, not a question, a turn that names another
// request or a long story; the question is asked again and the values so far stay.
TEST_F(TrackerTest, RequestedFreeTextSlotDoesNotSwallowAQuestion) {
  auto ask_item = [this] {
    state_ = DialogueState();
    Say("I want to return an item");
    Say("A-1234567");
    ASSERT_THAT(state_.requested_slots(), ElementsAre("item"));
  };
  for (const std::string question :
       {"What payment methods do you accept?", "what payment methods do you accept",
        "so how long does a refund take", "can I pay with paypal", "Do you ship to Canada"}) {
    ask_item();
    Say(question);
    EXPECT_EQ(Slot("item"), "") << question;
    EXPECT_EQ(Slot("order_id"), "A-1234567") << question;
    // The return still waits for its item: active (asked again) or on the stack when the
    // question named another intent ("how long does a refund take").
    if (state_.active_intent() == "return_item") {
      EXPECT_THAT(state_.requested_slots(), ElementsAre("item")) << question;
    } else {
      EXPECT_THAT(Stack(), ElementsAre("return_item")) << question;
    }
    auto reply = domain::RenderReply(*Shop(), state_, "en");
    ASSERT_TRUE(reply.ok());
    EXPECT_THAT(reply->text, ::testing::Not(::testing::HasSubstr(question))) << reply->text;
  }
  // Another request, even one that scores below the switch threshold (0.39 < 0.6).
  ask_item();
  Say("the parcel is lost");
  EXPECT_EQ(Slot("item"), "");
  EXPECT_EQ(state_.active_intent(), "delivery_problem");
  EXPECT_EQ(Slot("delivery_issue"), "missing");
  EXPECT_THAT(Stack(), ElementsAre("return_item"));
  // A long turn is not an item's name.
  ask_item();
  Say("well I am honestly not sure yet because my sister bought it for me last month");
  EXPECT_EQ(Slot("item"), "");
  // Chinese questions.
  state_ = DialogueState();
  Say("我要退货", "zh");
  Say("A-1234567", "zh");
  ASSERT_THAT(state_.requested_slots(), ElementsAre("item"));
  Say("你们支持哪些付款方式", "zh");
  EXPECT_EQ(Slot("item"), "");
  Say("蓝色跑鞋", "zh");
  EXPECT_EQ(Slot("item"), "蓝色跑鞋");
  // Short answers still fill it, with a value or a description.
  ask_item();
  Say("the red scarf, size M");
  EXPECT_EQ(Slot("item"), "the red scarf, size M");
  EXPECT_THAT(state_.requested_slots(), ElementsAre("reason"));
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

// ---- Update rules (README "Update rules") ----

// Corrections overwrite, even a slot the active intent would not extract.
TEST_F(TrackerTest, CorrectionOverwritesOrderNumber) {
  Say("where is my order 12345678");
  EXPECT_EQ(Slot("order_id"), "12345678");
  Say("no, it's AB123456");
  EXPECT_EQ(state_.active_intent(), "track_order");
  EXPECT_EQ(Slot("order_id"), "AB123456");
  EXPECT_EQ(state_.slots().at("order_id").turn(), 1u);
  Say("不是，是AB654321", "zh");
  EXPECT_EQ(state_.active_intent(), "track_order");
  EXPECT_EQ(Slot("order_id"), "AB654321");
}

TEST_F(TrackerTest, CorrectionReachesSlotsOutsideTheIntent) {
  Say("I was charged twice on my paypal");
  EXPECT_EQ(Slot("payment_method"), "paypal");
  Say("where is my order A-1234567");
  EXPECT_EQ(state_.active_intent(), "track_order");
  Say("alipay");  // Not a correction: track_order does not use payment_method.
  EXPECT_EQ(Slot("payment_method"), "paypal");
  Say("no, it was alipay");
  EXPECT_EQ(Slot("payment_method"), "alipay");
  EXPECT_EQ(state_.active_intent(), "track_order");
  Say("actually wechat", "en");
  EXPECT_EQ(Slot("payment_method"), "wechat_pay");
}

TEST_F(TrackerTest, CorrectionOfTheLastValueAsIfAsked) {
  Say("I was charged twice, $49.99 on my paypal");
  EXPECT_THAT(Slot("amount"), StartsWith("49.99"));  // With its currency when the type has one.
  Say("sorry, it was 59.99");  // A bare number is only taken when asked for, or corrected.
  EXPECT_THAT(Slot("amount"), StartsWith("59.99"));
  EXPECT_EQ(Slot("payment_method"), "paypal");

  state_ = DialogueState();
  Say("I want to return an item");
  Say("A-1234567");
  Say("the blue running shoes");
  EXPECT_THAT(state_.requested_slots(), ElementsAre("reason"));
  Say("no, the red sandals");
  EXPECT_EQ(state_.active_intent(), "return_item");
  EXPECT_EQ(Slot("item"), "the red sandals");
  EXPECT_EQ(Slot("order_id"), "A-1234567");
  EXPECT_THAT(state_.requested_slots(), ElementsAre("reason"));
}

TEST_F(TrackerTest, NegationRemovesTheValue) {
  Say("my package was damaged");
  EXPECT_EQ(state_.active_intent(), "delivery_problem");
  EXPECT_EQ(Slot("delivery_issue"), "damaged");
  Say("it's not damaged, it's late");
  EXPECT_EQ(Slot("delivery_issue"), "late");
  Say("it is not late");
  EXPECT_EQ(Slot("delivery_issue"), "");
  EXPECT_THAT(last_.removed_slots, ElementsAre("delivery_issue"));
  EXPECT_THAT(state_.missing_slots(), ElementsAre("order_id", "delivery_issue"));
  Say("not damaged either");  // Negating a value the slot does not hold changes nothing.
  EXPECT_EQ(Slot("delivery_issue"), "");
}

TEST_F(TrackerTest, NegationInChinese) {
  Say("付款失败", "zh");
  Say("用的微信", "zh");
  EXPECT_EQ(Slot("payment_method"), "wechat_pay");
  Say("不是微信，是支付宝", "zh");
  EXPECT_EQ(Slot("payment_method"), "alipay");
  Say("不要支付宝", "zh");
  EXPECT_EQ(Slot("payment_method"), "");
  EXPECT_THAT(state_.requested_slots(), ElementsAre("payment_method"));
}

TEST_F(TrackerTest, NegatedOrderNumberIsRemovedButCancelOrderKeepsIt) {
  Say("where is my order 12345678");
  Say("it's not 12345678");
  EXPECT_EQ(Slot("order_id"), "");
  EXPECT_THAT(state_.requested_slots(), ElementsAre("order_id"));

  state_ = DialogueState();
  Say("cancel order 12345678");
  EXPECT_EQ(state_.active_intent(), "cancel_order");
  EXPECT_EQ(Slot("order_id"), "12345678");
  Say("my order no 87654321 is late");  // "no" names the number here.
  EXPECT_EQ(Slot("order_id"), "87654321");
}

TEST_F(TrackerTest, SlotNamedAfterARemovalIsRemoved) {
  Say("where is my order A-1234567, call me on 13812345678");
  EXPECT_EQ(Slot("phone"), "13812345678");
  Say("forget the phone number");
  EXPECT_EQ(Slot("phone"), "");
  EXPECT_EQ(Slot("order_id"), "A-1234567");
  Say("cancel the order number");  // Required by the intent: not removed by naming it.
  EXPECT_EQ(Slot("order_id"), "A-1234567");
}

TEST_F(TrackerTest, InterruptedIntentResumesWithItsSlots) {
  Say("I want to return an item");
  Say("11111111");
  EXPECT_THAT(state_.requested_slots(), ElementsAre("item"));
  Say("wait, where is my order 22222222?");
  EXPECT_EQ(state_.active_intent(), "track_order");
  EXPECT_EQ(Slot("order_id"), "22222222");
  EXPECT_TRUE(state_.ready());
  EXPECT_THAT(Stack(), ElementsAre("return_item"));
  EXPECT_EQ(state_.intent_stack(0).slots().at("order_id").value(), "11111111");
  Say("ok");
  EXPECT_TRUE(last_.resumed);
  EXPECT_EQ(state_.active_intent(), "return_item");
  EXPECT_EQ(Slot("order_id"), "11111111");  // Its own order, not the one tracked meanwhile.
  EXPECT_THAT(state_.requested_slots(), ElementsAre("item"));
  EXPECT_THAT(Stack(), IsEmpty());
}

TEST_F(TrackerTest, CustomerReturnsToAnInterruptedIntent) {
  Say("where is my refund");
  EXPECT_EQ(state_.active_intent(), "refund_status");
  Say("my package is late");
  EXPECT_EQ(state_.active_intent(), "delivery_problem");
  EXPECT_THAT(Stack(), ElementsAre("refund_status"));
  Say("back to my refund");
  EXPECT_EQ(state_.active_intent(), "refund_status");
  EXPECT_TRUE(last_.resumed);
  EXPECT_THAT(Stack(), ElementsAre("delivery_problem"));
  Say("A-1234567");
  EXPECT_TRUE(state_.ready());
  Say("thanks");
  EXPECT_EQ(state_.active_intent(), "thanks");
  Say("ok");  // The refund is done: the delivery problem comes back, with its slot.
  EXPECT_EQ(state_.active_intent(), "delivery_problem");
  EXPECT_EQ(Slot("delivery_issue"), "late");
  EXPECT_THAT(Stack(), IsEmpty());
}

// A state stored before `ready` existed: whether its intent was done comes from the domain.
TEST_F(TrackerTest, FinishedIntentIsNotStacked) {
  state_.set_domain("shop");
  state_.set_active_intent("greet");
  Say("where is my order");
  EXPECT_EQ(state_.active_intent(), "track_order");
  EXPECT_THAT(Stack(), IsEmpty());
}

TEST_F(TrackerTest, ResumeCueInChinese) {
  Say("我要退货", "zh");
  EXPECT_EQ(state_.active_intent(), "return_item");
  Say("我的订单到哪了", "zh");
  EXPECT_EQ(state_.active_intent(), "track_order");
  EXPECT_THAT(Stack(), ElementsAre("return_item"));
  Say("回到刚才的问题", "zh");
  EXPECT_EQ(state_.active_intent(), "return_item");
  EXPECT_THAT(Stack(), ElementsAre("track_order"));
}

TEST_F(TrackerTest, AttachmentValueProposedThenConfirmed) {
  Say("where is my order 12345678");
  Say("here is the receipt", "en", {Ocr("Order No: AB123456", 0.8f)});
  EXPECT_EQ(Slot("order_id"), "12345678");  // Never over what the customer typed...
  EXPECT_EQ(state_.slots().at("order_id").source(), SLOT_SOURCE_CUSTOMER_TEXT);
  ASSERT_TRUE(state_.proposed_slots().contains("order_id"));
  const auto& proposed = state_.proposed_slots().at("order_id");
  EXPECT_EQ(proposed.value(), "AB123456");
  EXPECT_EQ(proposed.source(), SLOT_SOURCE_ATTACHMENT);
  EXPECT_LE(proposed.confidence(), 0.8f);
  EXPECT_EQ(proposed.turn(), 1u);
  EXPECT_THAT(state_.confirm_slots(), ElementsAre("order_id"));  // ...the reply asks.
  EXPECT_THAT(state_.requested_slots(), IsEmpty());
  Say("yes");  // ...unless the customer confirms.
  EXPECT_EQ(Slot("order_id"), "AB123456");
  const auto& value = state_.slots().at("order_id");
  EXPECT_EQ(value.source(), common::v1::SLOT_SOURCE_ATTACHMENT_CONFIRMED);
  EXPECT_GE(value.confidence(), 0.95f);
  EXPECT_EQ(value.turn(), 2u);
  EXPECT_THAT(state_.proposed_slots(), IsEmpty());
  EXPECT_THAT(state_.confirm_slots(), IsEmpty());
  EXPECT_EQ(state_.active_intent(), "track_order");
}

TEST_F(TrackerTest, AttachmentValueRefused) {
  Say("我的订单12345678到哪了", "zh");
  Say("", "und", {Ocr("订单号：AB123456")});
  EXPECT_THAT(state_.confirm_slots(), ElementsAre("order_id"));
  Say("不是", "zh");
  EXPECT_EQ(Slot("order_id"), "12345678");
  EXPECT_EQ(state_.slots().at("order_id").source(), SLOT_SOURCE_CUSTOMER_TEXT);
  EXPECT_THAT(state_.proposed_slots(), IsEmpty());
  EXPECT_THAT(state_.confirm_slots(), IsEmpty());
}

TEST_F(TrackerTest, EverySlotValueHasConfidenceSourceAndTurn) {
  Say("I was charged twice, $49.99 on my paypal, mail me at jane@example.com");
  Say("where is my order?", "en", {Ocr("Order No: AB123456")});
  Say("I want to return an item");
  Say("the green jacket");
  ASSERT_GE(state_.slots_size(), 5);
  for (const auto& [name, value] : state_.slots()) {
    EXPECT_FALSE(value.value().empty()) << name;
    EXPECT_GT(value.confidence(), 0.0f) << name;
    EXPECT_LE(value.confidence(), 1.0f) << name;
    EXPECT_NE(value.source(), common::v1::SLOT_SOURCE_UNSPECIFIED) << name;
    EXPECT_LT(value.turn(), state_.turn_count()) << name;
  }
  EXPECT_EQ(state_.slots().at("item").turn(), 3u);
  EXPECT_EQ(state_.slots().at("order_id").source(), SLOT_SOURCE_ATTACHMENT);
}

TEST_F(TrackerTest, OutOfScopeStreakEscalates) {
  Say("what is the capital of france");
  EXPECT_EQ(state_.low_confidence_streak(), 1u);
  Say("where is my order?");  // Understood: the streak starts over.
  EXPECT_EQ(state_.low_confidence_streak(), 0u);
  Say("do you sell bicycles to mars");
  Say("tell me about penguins");
  EXPECT_EQ(state_.low_confidence_streak(), 2u);
  EXPECT_FALSE(state_.escalate());
  Say("how tall is mount everest");
  EXPECT_TRUE(state_.escalate());
  EXPECT_EQ(state_.escalation_reason(), "out_of_scope_streak");
  EXPECT_THAT(state_.requested_slots(), IsEmpty());
}

TEST(TrackerOptionsTest, StreakLengthIsConfigurable) {
  TrackerOptions options;
  options.max_low_confidence_turns = 2;
  Tracker tracker(Shop(), options);
  TurnInput input;
  input.user_text = "今天天气好热";
  input.language = "zh";
  auto first = tracker.Track(input);
  ASSERT_TRUE(first.ok());
  EXPECT_FALSE(first->state.escalate());
  input.user_text = "讲个笑话";
  input.prior = first->state;
  auto second = tracker.Track(input);
  ASSERT_TRUE(second.ok());
  EXPECT_TRUE(second->state.escalate());
  EXPECT_EQ(second->state.escalation_reason(), "out_of_scope_streak");
}

TEST_F(TrackerTest, RepeatedQuestionIsFrustration) {
  Say("where is my order?");
  EXPECT_EQ(state_.frustration_signals(), 0u);
  Say("Where is my order!!");
  EXPECT_EQ(state_.frustration_signals(), 1u);
  EXPECT_FALSE(state_.escalate());
  Say("where   is my ORDER?");
  EXPECT_TRUE(state_.escalate());
  EXPECT_EQ(state_.escalation_reason(), "frustration");
}

TEST_F(TrackerTest, NegativeWordingAndCapitalsAreFrustration) {
  Say("WHERE IS MY PARCEL");
  EXPECT_EQ(state_.frustration_signals(), 1u);
  EXPECT_FALSE(state_.escalate());
  Say("this is ridiculous, it was due on monday");
  EXPECT_TRUE(state_.escalate());
  EXPECT_EQ(state_.escalation_reason(), "frustration");

  state_ = DialogueState();
  Say("我的订单到哪了，气死我了", "zh");
  EXPECT_EQ(state_.frustration_signals(), 1u);
  Say("你们的服务太差了", "zh");
  EXPECT_EQ(state_.escalation_reason(), "frustration");

  state_ = DialogueState();
  Say("my order AB123456 from UPS is late");  // Values and acronyms are not shouting.
  EXPECT_EQ(state_.frustration_signals(), 0u);
}

// A human handed the conversation back (the gateway clears escalate, the counters stay):
// only a new signal hands it over again.
TEST_F(TrackerTest, HandedBackConversationNeedsANewSignal) {
  Say("WHERE IS MY PARCEL");
  Say("this is ridiculous");
  ASSERT_EQ(state_.escalation_reason(), "frustration");
  state_.set_escalate(false);
  state_.clear_escalation_reason();
  Say("ok, the order is A-1234567");
  EXPECT_FALSE(state_.escalate());
  Say("still nothing, this is ridiculous");
  EXPECT_TRUE(state_.escalate());
  EXPECT_EQ(state_.escalation_reason(), "frustration");
}

TEST_F(TrackerTest, ExplicitRequestBeatsOtherReasons) {
  Say("THIS IS USELESS, GET ME A HUMAN AGENT");
  EXPECT_TRUE(state_.escalate());
  EXPECT_EQ(state_.escalation_reason(), "customer_request");
}

// A domain with transactional intents and slots the shop does not have.
constexpr char kDesk[] = R"yaml(
name: desk
languages: [en, zh]
system_prompt: {en: "Be nice.", zh: "友好。"}
slots:
  order_id:
    type: regex
    pattern: '(?i)\b((?:[a-z]{1,3}-?)?[0-9]{6,12})\b'
    normalize: upper
  shipping:
    type: enum
    values:
      express: {synonyms: {en: [express, next day], zh: [加急]}}
      standard: {synonyms: {en: [standard shipping, normal shipping], zh: [普通快递]}}
  coupon:
    type: regex
    pattern: '(?i)\b(save[0-9]{2})\b'
    normalize: upper
intents:
  cancel_order:
    transactional: true
    required_slots: [order_id]
    examples:
      en: [cancel my order, I want to cancel the order, please cancel it]
      zh: [取消订单, 我要取消订单]
  change_shipping:
    transactional: true
    required_slots: [order_id, shipping]
    optional_slots: [coupon]
    examples:
      en: [change the shipping of my order, I want different shipping, upgrade the delivery]
      zh: [修改配送方式, 换个快递方式]
  track_order:
    required_slots: [order_id]
    examples:
      en: [where is my order, track my order]
      zh: [我的订单到哪了]
  human:
    escalate: true
    examples: {en: [human please], zh: [转人工]}
templates:
  escalate: {en: "A human is coming.", zh: "正在转人工。"}
  fallback: {en: "Sorry?", zh: "抱歉？"}
  ask.order_id: {en: "Order number?", zh: "订单号？"}
  ask.shipping: {en: "Which shipping?", zh: "哪种配送？"}
  cancel_order.done: {en: "Cancelled {{order_id}}.", zh: "已取消 {{order_id}}。"}
  cancel_order.confirm: {en: "Cancel {{order_id}}?", zh: "取消 {{order_id}}？"}
  cancel_order.declined: {en: "Not cancelled.", zh: "未取消。"}
  change_shipping.done: {en: "Changed to {{shipping}}.", zh: "已改为 {{shipping}}。"}
  change_shipping.confirm: {en: "Change to {{shipping}}?", zh: "改为 {{shipping}}？"}
  change_shipping.declined: {en: "Not changed.", zh: "未更改。"}
  track_order.done: {en: "Order {{order_id}} found.", zh: "订单 {{order_id}} 已找到。"}
escalation_phrases:
  en: [talk to a human]
  zh: [转人工]
)yaml";

std::shared_ptr<const domain::Domain> Desk() {
  auto desk = domain::ParseDomain(kDesk, "desk.yaml");
  EXPECT_TRUE(desk.ok()) << desk.status();
  return desk.ok() ? std::make_shared<const domain::Domain>(*std::move(desk))
                   : std::make_shared<const domain::Domain>();
}

class DeskTest : public ConversationTest {
 protected:
  DeskTest() : ConversationTest(Desk()) {}
};

TEST_F(DeskTest, TransactionalIntentIsReadyOnlyAfterConfirmation) {
  Say("I want to cancel the order");
  EXPECT_EQ(state_.active_intent(), "cancel_order");
  EXPECT_EQ(state_.confirmation(), common::v1::CONFIRMATION_STATUS_UNSPECIFIED);
  Say("yes");  // Nothing to confirm yet.
  EXPECT_FALSE(state_.ready());
  EXPECT_THAT(state_.requested_slots(), ElementsAre("order_id"));
  Say("12345678");
  EXPECT_THAT(state_.missing_slots(), IsEmpty());
  EXPECT_EQ(state_.confirmation(), common::v1::CONFIRMATION_STATUS_PENDING);
  EXPECT_FALSE(state_.ready());
  EXPECT_THAT(state_.requested_slots(), IsEmpty());
  Say("yes, please go ahead");
  EXPECT_EQ(state_.confirmation(), common::v1::CONFIRMATION_STATUS_CONFIRMED);
  EXPECT_TRUE(state_.ready());
  EXPECT_EQ(state_.active_intent(), "cancel_order");
}

TEST_F(DeskTest, DeclinedConfirmationAsksWhatToChange) {
  Say("cancel my order 12345678");
  EXPECT_EQ(state_.confirmation(), common::v1::CONFIRMATION_STATUS_PENDING);
  Say("no");
  EXPECT_EQ(state_.confirmation(), common::v1::CONFIRMATION_STATUS_DECLINED);
  EXPECT_FALSE(state_.ready());
  EXPECT_EQ(Slot("order_id"), "12345678");  // "no" alone changes no value.
  Say("it's 87654321");
  EXPECT_EQ(Slot("order_id"), "87654321");
  EXPECT_EQ(state_.confirmation(), common::v1::CONFIRMATION_STATUS_PENDING);
  Say("confirm");
  EXPECT_TRUE(state_.ready());
  Say("no wait, it's 11223344");  // A change after confirming asks again.
  EXPECT_EQ(Slot("order_id"), "11223344");
  EXPECT_EQ(state_.confirmation(), common::v1::CONFIRMATION_STATUS_PENDING);
  EXPECT_FALSE(state_.ready());
}

TEST_F(DeskTest, ConfirmationInChinese) {
  Say("我要取消订单AB123456", "zh");
  EXPECT_EQ(state_.confirmation(), common::v1::CONFIRMATION_STATUS_PENDING);
  Say("好的", "zh");
  EXPECT_EQ(state_.confirmation(), common::v1::CONFIRMATION_STATUS_CONFIRMED);
  EXPECT_TRUE(state_.ready());

  state_ = DialogueState();
  Say("取消订单AB123456", "zh");
  Say("不要取消", "zh");
  EXPECT_EQ(state_.confirmation(), common::v1::CONFIRMATION_STATUS_DECLINED);
  Say("确认", "zh");
  EXPECT_EQ(state_.confirmation(), common::v1::CONFIRMATION_STATUS_CONFIRMED);
}

TEST_F(DeskTest, NonTransactionalIntentIsReadyWhenComplete) {
  Say("where is my order 12345678");
  EXPECT_TRUE(state_.ready());
  EXPECT_EQ(state_.confirmation(), common::v1::CONFIRMATION_STATUS_UNSPECIFIED);
}

TEST_F(DeskTest, RemovalOfEnumValueAndNamedSlot) {
  Say("I want different shipping for order 12345678, express please, coupon SAVE10");
  EXPECT_EQ(state_.active_intent(), "change_shipping");
  EXPECT_EQ(Slot("shipping"), "express");
  EXPECT_EQ(Slot("coupon"), "SAVE10");
  Say("cancel the coupon");
  EXPECT_EQ(Slot("coupon"), "");
  EXPECT_EQ(state_.active_intent(), "change_shipping");
  Say("I don't want express shipping");
  EXPECT_EQ(Slot("shipping"), "");
  EXPECT_THAT(state_.requested_slots(), ElementsAre("shipping"));
  EXPECT_FALSE(state_.ready());
  Say("加急", "zh");
  EXPECT_EQ(Slot("shipping"), "express");
  Say("不要加急，普通快递就行", "zh");
  EXPECT_EQ(Slot("shipping"), "standard");
}

TEST_F(DeskTest, AttachmentConfirmationComesBeforeTheIntentsConfirmation) {
  Say("cancel my order 12345678");
  Say("this one", "en", {Ocr("Order: 87654321")});
  EXPECT_THAT(state_.confirm_slots(), ElementsAre("order_id"));
  Say("yes");  // Confirms the attachment's number, not the cancellation.
  EXPECT_EQ(Slot("order_id"), "87654321");
  EXPECT_EQ(state_.confirmation(), common::v1::CONFIRMATION_STATUS_PENDING);
  EXPECT_FALSE(state_.ready());
  Say("yes");
  EXPECT_TRUE(state_.ready());
}

TEST_F(DeskTest, InterruptedTransactionAsksAgainWhenResumed) {
  Say("cancel my order 12345678");
  EXPECT_EQ(state_.confirmation(), common::v1::CONFIRMATION_STATUS_PENDING);
  Say("where is my order 55555555");
  EXPECT_EQ(state_.active_intent(), "track_order");
  EXPECT_THAT(Stack(), ElementsAre("cancel_order"));
  Say("ok");
  EXPECT_EQ(state_.active_intent(), "cancel_order");
  EXPECT_EQ(Slot("order_id"), "12345678");
  EXPECT_EQ(state_.confirmation(), common::v1::CONFIRMATION_STATUS_PENDING);
  EXPECT_FALSE(state_.ready());
}

// A stand-in for a trained model (a seam, not a mock of a real part): fixed analyses by text.
class FakeModel : public UtteranceModel {
 public:
  std::map<std::string, UtteranceAnalysis> analyses;
  mutable std::vector<std::string> languages;

  UtteranceAnalysis Analyze(absl::string_view text, absl::string_view language) const override {
    languages.emplace_back(language);
    auto it = analyses.find(std::string(text));
    return it != analyses.end() ? it->second : UtteranceAnalysis{{}, true, {}};
  }
};

SlotCandidate Span(const std::string& text, const std::string& slot, const std::string& part,
                   float confidence = 0.8f) {
  const size_t begin = text.find(part);
  EXPECT_NE(begin, std::string::npos) << part;
  return {slot, part, confidence, begin, begin + part.size()};
}

class ModelTrackerTest : public ConversationTest {
 protected:
  ModelTrackerTest() : ConversationTest(Shop(), Options()) {}

  static TrackerOptions Options() {
    TrackerOptions options;
    auto model = std::make_shared<FakeModel>();
    const std::string send_back = "I'd like to send back the green jacket, it arrived smashed";
    model->analyses[send_back] = {{{"return_item", 0.92f}, {"delivery_problem", 0.05f}},
                                  false,
                                  {Span(send_back, "item", "the green jacket"),
                                   Span(send_back, "reason", "smashed"),
                                   Span(send_back, "order_id", "jacket")}};
    model->analyses["gimme status"] = {{{"track_order", 0.81f}}, false, {}};
    // In scope by the model's own threshold, though below the TF-IDF intent_threshold.
    model->analyses["我要退货"] = {{{"return_item", 0.29f}}, false, {}};
    const std::string charged = "they took 45 from me A-1234567";
    model->analyses[charged] = {{{"payment_issue", 0.7f}},
                                false,
                                {Span(charged, "amount", "45", 0.6f),
                                 Span(charged, "order_id", "A-123")}};
    // "where is my order" is in the domain's examples, but the model decides.
    model->analyses["where is my order"] = {{{"track_order", 0.3f}}, true, {}};
    model_ = model;
    options.model = std::move(model);
    return options;
  }

  static inline std::shared_ptr<FakeModel> model_;
};

TEST_F(ModelTrackerTest, IntentsAndOutOfScopeComeFromTheModel) {
  Say("gimme status");
  EXPECT_EQ(state_.active_intent(), "track_order");
  EXPECT_FLOAT_EQ(state_.intent_confidence(), 0.81f);
  EXPECT_EQ(model_->languages.back(), "en");

  state_ = DialogueState();
  Say("我要退货", "zh");
  EXPECT_EQ(state_.active_intent(), "return_item");
  EXPECT_EQ(model_->languages.back(), "zh");

  state_ = DialogueState();
  Say("where is my order");
  EXPECT_EQ(state_.active_intent(), "");
  EXPECT_EQ(last_.best.intent, "");
  EXPECT_EQ(state_.low_confidence_streak(), 1u);
}

TEST_F(ModelTrackerTest, ModelSpansMergeWithTypedCandidates) {
  Say("I'd like to send back the green jacket, it arrived smashed");
  EXPECT_EQ(state_.active_intent(), "return_item");
  EXPECT_EQ(Slot("item"), "the green jacket");  // Free text the rules take only when asked.
  EXPECT_FLOAT_EQ(state_.slots().at("item").confidence(), 0.8f);
  EXPECT_EQ(Slot("reason"), "damaged");          // The span canonicalized by its extractor.
  EXPECT_EQ(Slot("order_id"), "");               // "jacket" is no order number.
  EXPECT_THAT(state_.requested_slots(), ElementsAre("order_id"));

  state_ = DialogueState();
  Say("they took 45 from me A-1234567");
  EXPECT_EQ(state_.active_intent(), "payment_issue");
  EXPECT_THAT(Slot("amount"), StartsWith("45"));  // A bare number from the model's span.
  EXPECT_EQ(Slot("order_id"), "A-1234567");       // The typed extractor's value wins.
  EXPECT_EQ(state_.slots().at("order_id").source(), SLOT_SOURCE_CUSTOMER_TEXT);
}

TEST_F(ModelTrackerTest, BareValuesAndAnswersSkipTheModel) {
  Say("gimme status");
  const size_t calls = model_->languages.size();
  Say("A-1234567");
  Say("ok");
  EXPECT_EQ(model_->languages.size(), calls);
  EXPECT_EQ(Slot("order_id"), "A-1234567");
  EXPECT_EQ(state_.active_intent(), "track_order");
}

TEST(DialogueActsTest, Answers) {
  for (const char* yes : {"yes", "Yes.", "yes please, go ahead", "ok", "confirm", "that's right",
                          "好的", "好", "是的。", "确认", "确认取消", "可以"}) {
    const AnswerCue cue = ReadAnswer(domain::text::AsciiLower(yes));
    EXPECT_EQ(cue.answer, Answer::kAffirm) << yes;
  }
  EXPECT_EQ(ReadAnswer("no problem").answer, Answer::kAffirm);
  EXPECT_EQ(CorrectionBody("no problem, go ahead"), -1);
  for (const char* no : {"no", "No!", "nope, wrong one", "no thanks", "不是", "不对", "不要取消",
                         "不"}) {
    EXPECT_EQ(ReadAnswer(domain::text::AsciiLower(no)).answer, Answer::kDeny) << no;
  }
  for (const char* neither : {"nothing", "knock knock", "yesterday", "好像不对", "可以取消吗？",
                              "is it ok?", "notice", "不过", "where is my order"}) {
    EXPECT_EQ(ReadAnswer(domain::text::AsciiLower(neither)).answer, Answer::kNone) << neither;
  }
  EXPECT_TRUE(ReadAnswer("yes!").whole_turn);
  EXPECT_TRUE(ReadAnswer("got it").whole_turn);
  EXPECT_FALSE(ReadAnswer("yes, it's 12345678").whole_turn);
}

TEST(DialogueActsTest, Corrections) {
  auto body = [](absl::string_view s) {
    const int b = CorrectionBody(s);
    return b < 0 ? std::string("-") : std::string(s.substr(b));
  };
  EXPECT_EQ(body("no, it's ab123"), "ab123");
  EXPECT_EQ(body("actually the red ones"), "the red ones");
  EXPECT_EQ(body("sorry, i meant 12345678"), "i meant 12345678");
  EXPECT_EQ(body("不是，是ab123"), "ab123");
  EXPECT_EQ(body("说错了，应该是支付宝"), "支付宝");
  EXPECT_EQ(body("no"), "-");
  EXPECT_EQ(body("nothing arrived"), "-");
  EXPECT_EQ(body("where is my order"), "-");
}

TEST(DialogueActsTest, Negations) {
  auto kind = [](absl::string_view s, absl::string_view value) {
    return NegationBefore(s, s.find(value)).kind;
  };
  EXPECT_EQ(kind("it's not damaged", "damaged"), NegationKind::kNot);
  EXPECT_EQ(kind("not really damaged", "damaged"), NegationKind::kNot);
  EXPECT_EQ(kind("i don't want express shipping", "express"), NegationKind::kRemoval);
  EXPECT_EQ(kind("no express", "express"), NegationKind::kNo);
  EXPECT_EQ(kind("cancel the coupon", "coupon"), NegationKind::kRemoval);
  EXPECT_EQ(kind("the box is damaged", "damaged"), NegationKind::kNone);
  EXPECT_EQ(kind("not late, damaged", "damaged"), NegationKind::kNone);
  EXPECT_EQ(kind("not the box but it is damaged", "damaged"), NegationKind::kNone);
  EXPECT_EQ(kind("i did not say that, it was damaged", "damaged"), NegationKind::kNone);
  EXPECT_EQ(kind("不是损坏", "损坏"), NegationKind::kNot);
  EXPECT_EQ(kind("不要用微信", "微信"), NegationKind::kRemoval);
  EXPECT_EQ(kind("不是这个，微信", "微信"), NegationKind::kNone);
  EXPECT_EQ(kind("用微信", "微信"), NegationKind::kNone);
  EXPECT_TRUE(FindNegationCues("i don't want it").removal);
  EXPECT_TRUE(FindNegationCues("cancel the coupon").removal);
  EXPECT_TRUE(FindNegationCues("不要加急").removal);
  const NegationCues not_only = FindNegationCues("it's not damaged");
  EXPECT_TRUE(not_only.any);
  EXPECT_FALSE(not_only.removal);
  EXPECT_TRUE(FindNegationCues("不是微信").any);
  EXPECT_FALSE(FindNegationCues("不是微信").removal);
  EXPECT_FALSE(FindNegationCues("where is my order nowhere").any);
}

TEST(DialogueActsTest, FrustrationSignals) {
  EXPECT_TRUE(IsAllCaps("WHERE IS MY ORDER"));
  EXPECT_TRUE(IsAllCaps("I WANT A REFUND NOW!!!"));
  EXPECT_FALSE(IsAllCaps("OK THANKS"));
  EXPECT_FALSE(IsAllCaps("order AB123456 via UPS and DHL"));
  EXPECT_FALSE(IsAllCaps("我的订单到哪了"));
  EXPECT_TRUE(HasNegativeWording("this is ridiculous"));
  EXPECT_TRUE(HasNegativeWording("i'm fed up with this"));
  EXPECT_TRUE(HasNegativeWording("垃圾服务"));
  EXPECT_FALSE(HasNegativeWording("my package is late"));
  EXPECT_FALSE(HasNegativeWording("jokes aside, where is it"));
}

TEST(DialogueActsTest, Questions) {
  for (const char* q : {"what payment methods do you accept", "where's my refund", "ok so how",
                        "hi, can you help", "is it too late", "do you ship abroad", "why?",
                        "the blue one?", "可以退货吗", "你们支持哪些付款方式", "运费多少",
                        "我的包裹呢", "能不能换货"}) {
    EXPECT_TRUE(IsQuestion(q)) << q;
  }
  for (const char* s : {"the blue running shoes", "which one was it, the red one", "a can opener",
                        "is", "order a-1234567", "蓝色跑鞋", "尺码偏小", ""}) {
    EXPECT_FALSE(IsQuestion(s)) << s;
  }
  EXPECT_EQ(TurnWords("the blue running shoes"), 4u);
  EXPECT_EQ(TurnWords("it's A-1234567, ok?"), 4u);
  EXPECT_EQ(TurnWords("蓝色跑鞋"), 2u);
  EXPECT_EQ(TurnWords("蓝色跑鞋 size 42"), 4u);
  EXPECT_EQ(TurnWords("好"), 1u);
  EXPECT_EQ(TurnWords(""), 0u);
}

TEST(DialogueActsTest, RequestFingerprintIgnoresCaseAndPunctuation) {
  const uint64_t a = RequestFingerprint("where is my order?");
  EXPECT_NE(a, 0u);
  EXPECT_EQ(RequestFingerprint("where   is my order!!"), a);
  EXPECT_NE(RequestFingerprint("where is my refund?"), a);
  EXPECT_EQ(RequestFingerprint("ok thanks"), 0u);   // Too short to be a question.
  EXPECT_EQ(RequestFingerprint("12345678"), 0u);
  EXPECT_NE(RequestFingerprint("我的订单到哪了"), 0u);
  EXPECT_EQ(RequestFingerprint("谢谢"), 0u);
}

TEST(TrackerOptionsTest, FromConfig) {
  v1::DstConfig config;
  config.set_intent_threshold(0.4f);
  auto options = TrackerOptionsFromConfig(config);
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_FLOAT_EQ(options->intent_threshold, 0.4f);
  EXPECT_EQ(options->max_low_confidence_turns, 3u);
  EXPECT_EQ(options->frustration_threshold, 2u);
  config.set_max_low_confidence_turns(5);
  config.set_frustration_threshold(4);
  options = TrackerOptionsFromConfig(config);
  ASSERT_TRUE(options.ok());
  EXPECT_EQ(options->max_low_confidence_turns, 5u);
  EXPECT_EQ(options->frustration_threshold, 4u);
  config.set_intent_threshold(-0.1f);
  options = TrackerOptionsFromConfig(config);
  ASSERT_FALSE(options.ok());
  EXPECT_EQ(options.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(options.status().message()), ::testing::HasSubstr("intent_threshold"));
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

namespace helpline::dst {
namespace {

// The learned tracker's answers for the fusion rules, scripted: what a trained model says
// about a turn cannot be chosen (the real model runs in dst_service_test and eval_test).
class ScriptedDialogueModel : public DialogueModel {
 public:
  absl::StatusOr<DialogueAnalysis> Analyze(const common::v1::DialogueState& prior,
                                           absl::string_view text) const override {
    seen_prior = prior;
    DialogueAnalysis out = next;
    out.context.set_model("scripted");
    out.context.add_vector(static_cast<float>(prior.context().vector_size() + 1));
    out.context.set_user_turns(prior.context().user_turns() + 1);
    return out;
  }
  DialogueAnalysis next;
  mutable common::v1::DialogueState seen_prior;
};

class FusionTest : public ConversationTest {
 protected:
  FusionTest() : ConversationTest(Shop()) {
    TrackerOptions options;
    options.dialogue_model = model_;
    tracker_ = std::make_unique<Tracker>(Shop(), std::move(options));
  }
  std::shared_ptr<ScriptedDialogueModel> model_ = std::make_shared<ScriptedDialogueModel>();
};

TEST_F(FusionTest, LearnedValuesFillWhatTheRulesLeaveThroughTheSlotsExtractor) {
  Say("where is my parcel");
  ASSERT_EQ(state_.active_intent(), "track_order");
  // The rules find no order number in "the one I told you about"; the learned tracker's
  // value is canonicalized by the regex slot (upper case) and marked as its own.
  model_->next.values = {{"order_id", "ab123456", false}};
  Say("the one I told you about");
  EXPECT_EQ(Slot("order_id"), "AB123456");
  EXPECT_EQ(state_.slots().at("order_id").source(), common::v1::SLOT_SOURCE_DIALOGUE_MODEL);
  EXPECT_FLOAT_EQ(state_.slots().at("order_id").confidence(), 0.7f);
  // A typed value wins over the learned one; a value the extractor rejects is dropped.
  model_->next.values = {{"order_id", "99887766", false}, {"reason", "sunny", false}};
  Say("no, it is 12345678");
  EXPECT_EQ(Slot("order_id"), "12345678");
  EXPECT_EQ(state_.slots().at("order_id").source(), SLOT_SOURCE_CUSTOMER_TEXT);
  EXPECT_EQ(Slot("reason"), "");
}

TEST_F(FusionTest, LearnedIntentOnlyWhenTheTextNamesNone) {
  model_->next.intent = "track_order";
  Say("mm hm");  // The rules name no intent: the learned one is taken.
  EXPECT_EQ(state_.active_intent(), "track_order");
  model_->next.intent = "track_order";
  Say("I want to return an item");  // The text names return_item: the rules win.
  EXPECT_EQ(state_.active_intent(), "return_item");
}

TEST_F(FusionTest, ContextAndTheNextRepliesActsAreWrittenEveryTurn) {
  Say("where is my order");
  EXPECT_EQ(state_.context().model(), "scripted");
  EXPECT_THAT(state_.context().vector(), ElementsAre(1.0f));
  // The reply asks for the order number: the next turn's learned tracker reads REQUEST.
  ASSERT_EQ(state_.context().system_acts_size(), 1);
  EXPECT_EQ(state_.context().system_acts(0).act(), "REQUEST");
  EXPECT_EQ(state_.context().system_acts(0).slot(), "order_id");
  Say("12345678");
  EXPECT_EQ(model_->seen_prior.context().system_acts(0).slot(), "order_id");
  EXPECT_THAT(state_.context().vector(), ElementsAre(2.0f));  // resumed from the prior
  EXPECT_EQ(state_.context().user_turns(), 2u);
  // An empty turn keeps the memory as it was.
  Say("?!");
  EXPECT_EQ(state_.context().user_turns(), 2u);
}

}  // namespace
}  // namespace helpline::dst
