#include "common/domain/template.h"

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "common/domain/text.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/shop_domain.h"

namespace helpline::domain {
namespace {

using common::v1::DialogueState;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

const Domain& Shop() {
  static const Domain empty;
  const auto& shop = testutil::ShopDomain();
  EXPECT_TRUE(shop.ok()) << shop.status();
  return shop.ok() ? **shop : empty;
}

void SetSlot(DialogueState& state, const std::string& name, const std::string& value) {
  (*state.mutable_slots())[name].set_value(value);
}

TEST(SelectTemplateTest, Scheme) {
  DialogueState state;
  EXPECT_EQ(SelectTemplate(Shop(), state, "en"), "fallback");
  state.set_active_intent("no_such_intent");
  EXPECT_EQ(SelectTemplate(Shop(), state, "en"), "fallback");
  state.set_active_intent("greet");
  EXPECT_EQ(SelectTemplate(Shop(), state, "en"), "greet.done");
  state.set_active_intent("track_order");
  EXPECT_EQ(SelectTemplate(Shop(), state, "en"), "ask.order_id");
  SetSlot(state, "order_id", "12345678");
  EXPECT_EQ(SelectTemplate(Shop(), state, "en"), "track_order.done");
  state.set_active_intent("return_item");  // order_id carried over; item is next.
  EXPECT_EQ(SelectTemplate(Shop(), state, "en"), "ask.item");
  state.set_escalate(true);
  EXPECT_EQ(SelectTemplate(Shop(), state, "en"), "escalate");
  state.set_escalate(false);
  state.set_active_intent("human_agent");  // escalate: true in the domain.
  EXPECT_EQ(SelectTemplate(Shop(), state, "en"), "escalate");
}

// A transactional intent with every slot: confirm while pending (or unset, as in a state
// from before confirmation existed), acknowledge a no, "done" only once confirmed.
TEST(SelectTemplateTest, TransactionalIntentFollowsTheConfirmation) {
  DialogueState state;
  state.set_active_intent("cancel_order");
  EXPECT_EQ(SelectTemplate(Shop(), state, "en"), "ask.order_id");
  SetSlot(state, "order_id", "A-1234567");
  EXPECT_EQ(SelectTemplate(Shop(), state, "en"), "cancel_order.confirm");
  state.set_confirmation(common::v1::CONFIRMATION_STATUS_PENDING);
  EXPECT_EQ(SelectTemplate(Shop(), state, "zh"), "cancel_order.confirm");
  state.set_confirmation(common::v1::CONFIRMATION_STATUS_DECLINED);
  EXPECT_EQ(SelectTemplate(Shop(), state, "en"), "cancel_order.declined");
  state.set_confirmation(common::v1::CONFIRMATION_STATUS_CONFIRMED);
  EXPECT_EQ(SelectTemplate(Shop(), state, "en"), "cancel_order.done");
  // A non-transactional intent ignores the field.
  state.set_active_intent("track_order");
  state.set_confirmation(common::v1::CONFIRMATION_STATUS_PENDING);
  EXPECT_EQ(SelectTemplate(Shop(), state, "en"), "track_order.done");
}

TEST(RenderReplyTest, ConfirmationQuestionRepeatsTheValues) {
  DialogueState state;
  state.set_active_intent("return_item");
  state.set_confirmation(common::v1::CONFIRMATION_STATUS_PENDING);
  SetSlot(state, "order_id", "A-1234567");
  SetSlot(state, "item", "the red scarf");
  SetSlot(state, "reason", "damaged");
  for (const char* language : {"en", "zh"}) {
    for (uint32_t offset : {0u, 1u}) {
      auto r = RenderReply(Shop(), state, language, offset);
      ASSERT_TRUE(r.ok()) << r.status();
      EXPECT_EQ(r->key, "return_item.confirm");
      EXPECT_TRUE(r->unfilled.empty()) << r->text;
      EXPECT_THAT(r->text, HasSubstr("A-1234567"));
      EXPECT_THAT(r->text, HasSubstr("the red scarf"));
      EXPECT_THAT(r->text, HasSubstr(std::string(language) == "en" ? "damaged" : "商品损坏"));
    }
  }
}

// A value read from an attachment that differs from the typed one is asked about first,
// with the attachment's value in the question.
TEST(RenderReplyTest, AttachmentValueIsAskedAboutBeforeTheTransaction) {
  DialogueState state;
  state.set_active_intent("cancel_order");
  state.set_confirmation(common::v1::CONFIRMATION_STATUS_PENDING);
  SetSlot(state, "order_id", "12345678");
  (*state.mutable_proposed_slots())["order_id"].set_value("87654321");
  state.add_confirm_slots("order_id");
  auto r = RenderReply(Shop(), state, "en");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->key, "confirm.order_id");
  EXPECT_THAT(r->text, HasSubstr("87654321"));
  EXPECT_EQ(r->text.find("12345678"), std::string::npos) << r->text;
  // No template for the slot: the scheme goes on.
  state.set_confirm_slots(0, "reason");
  (*state.mutable_proposed_slots())["reason"].set_value("damaged");
  EXPECT_EQ(SelectTemplate(Shop(), state, "en"), "cancel_order.confirm");
}

TEST(RenderTemplateTest, FillsPlaceholdersAndReportsUnfilled) {
  DialogueState state;
  SetSlot(state, "order_id", "A-1234567");
  Rendered r = RenderTemplate(Shop(), "Order {{order_id}} / {{ item }}.", state, "en");
  EXPECT_EQ(r.text, "Order A-1234567 / .");
  EXPECT_THAT(r.unfilled, ElementsAre("item"));
}

TEST(RenderTemplateTest, EnumLabelsPerLanguage) {
  DialogueState state;
  SetSlot(state, "payment_method", "wechat_pay");
  EXPECT_EQ(RenderTemplate(Shop(), "{{payment_method}}", state, "en").text, "WeChat Pay");
  EXPECT_EQ(RenderTemplate(Shop(), "{{payment_method}}", state, "zh").text, "微信支付");
}

TEST(RenderReplyTest, TrackOrderDoneInBothLanguages) {
  DialogueState state;
  state.set_active_intent("track_order");
  SetSlot(state, "order_id", "12345678");
  auto en = RenderReply(Shop(), state, "en");
  ASSERT_TRUE(en.ok()) << en.status();
  EXPECT_EQ(en->key, "track_order.done");
  EXPECT_EQ(en->language, "en");
  EXPECT_THAT(en->text, HasSubstr("12345678"));
  EXPECT_TRUE(en->unfilled.empty());
  EXPECT_EQ(en->text.find("{{"), std::string::npos);

  auto zh = RenderReply(Shop(), state, "zh");
  ASSERT_TRUE(zh.ok());
  EXPECT_THAT(zh->text, HasSubstr("订单 12345678"));
  EXPECT_TRUE(text::ContainsCjk(zh->text));
}

TEST(RenderReplyTest, LanguageResolution) {
  DialogueState state;
  state.set_language("zh");
  auto r = RenderReply(Shop(), state, "und");  // Unsupported: the state's language.
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->language, "zh");
  state.set_language("fr");
  r = RenderReply(Shop(), state, "");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->language, "en");  // The domain's first language.
  EXPECT_EQ(r->key, "fallback");
}

TEST(RenderReplyTest, DeterministicVariantsByTurnAndOffset) {
  DialogueState state;  // fallback has two English variants.
  auto a = RenderReply(Shop(), state, "en", 0);
  auto b = RenderReply(Shop(), state, "en", 1);
  auto a2 = RenderReply(Shop(), state, "en", 0);
  ASSERT_TRUE(a.ok() && b.ok() && a2.ok());
  EXPECT_EQ(a->text, a2->text);
  EXPECT_NE(a->text, b->text);
  EXPECT_EQ(a->variant, 0u);
  EXPECT_EQ(b->variant, 1u);
  state.set_turn_count(1);
  auto c = RenderReply(Shop(), state, "en", 0);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->variant, 1u);
}

TEST(TextTest, TokenUnitsNeverSplitUtf8) {
  const std::string s = "Order 123 好的，谢谢 ok";
  auto units = text::TokenUnits(s);
  std::vector<std::string> pieces;
  for (auto [b, e] : units) pieces.push_back(s.substr(b, e - b));
  EXPECT_THAT(pieces, ElementsAre("Order", "123", "好", "的", "，", "谢", "谢", "ok"));
}

}  // namespace
}  // namespace helpline::domain
