#include "services/generation/reply/prompt_builder.h"

#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/domain/text.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/shop_domain.h"

namespace helpline::generation::reply {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

// Words and CJK characters: additive over our "\n"-ended parts, like GPT-2's BPE.
size_t CountUnits(absl::string_view s) { return domain::text::CountTokenUnits(s); }

std::shared_ptr<const domain::Domain> Shop() {
  const auto& shop = testutil::ShopDomain();
  EXPECT_TRUE(shop.ok()) << shop.status();
  return *shop;
}

std::unique_ptr<const PromptBuilder> Builder(PromptFormat format = {}, PromptOptions options = {},
                                             TokenCounter counter = CountUnits) {
  auto b = PromptBuilder::Create(Shop(), std::move(format), options, std::move(counter));
  EXPECT_TRUE(b.ok()) << b.status();
  return *std::move(b);
}

void SetSlot(common::v1::DialogueState& state, const std::string& name, const std::string& value) {
  (*state.mutable_slots())[name].set_value(value);
}

common::v1::Turn MakeTurn(uint32_t index, const std::string& user, const std::string& reply,
                          const std::string& intent = "") {
  common::v1::Turn t;
  t.set_index(index);
  t.set_user_text(user);
  t.set_reply(reply);
  t.set_intent(intent);
  return t;
}

TEST(PromptBuilderTest, LayoutOfAFirstTurn) {
  auto builder = Builder();
  v1::GenerationContext context;
  context.set_domain("shop");
  context.set_user_text("Where is my order?\nIt was due Monday.");
  context.mutable_state()->set_active_intent("track_order");
  context.mutable_state()->set_language("en");
  absl::StatusOr<BuiltPrompt> p = builder->Build(context, 1000);
  ASSERT_TRUE(p.ok()) << p.status();
  // The YAML folds the system prompt into one line already; the builder keeps it so.
  const std::string system = builder->SystemPart("en");
  EXPECT_THAT(system, StartsWith("You are the customer service assistant of an online shop."));
  EXPECT_EQ(system.find('\n'), system.size() - 1);
  EXPECT_EQ(p->text, absl::StrCat(system,
                                  "Intent: track_order\n"
                                  "Known: none\n"
                                  "Missing: order_id\n"
                                  "Customer: Where is my order? It was due Monday.\n"
                                  "Agent:"));
  EXPECT_EQ(p->stable_bytes, system.size());
  EXPECT_EQ(p->tokens, CountUnits(p->text));
  EXPECT_EQ(p->language, "en");
  EXPECT_EQ(p->history_turns_kept, 0u);
}

TEST(PromptBuilderTest, LayoutWithHistoryStateEvidenceAndHandover) {
  auto builder = Builder();
  v1::GenerationContext context;
  context.set_user_text("It arrived broken, see the photo");
  common::v1::DialogueState& state = *context.mutable_state();
  state.set_active_intent("delivery_problem");
  state.set_language("en");
  SetSlot(state, "delivery_issue", "damaged");
  SetSlot(state, "order_id", "A-1234567");
  SetSlot(state, "zz_custom", "x  y");  // Not a domain slot: after the domain's, by name.
  state.set_escalate(true);
  *context.add_history() = MakeTurn(0, "hi", "Hello! How can I help you today?");
  auto* e = context.add_evidence();
  e->set_source("ocr");
  e->set_text("ORDER A-1234567\nTotal 49.99");
  absl::StatusOr<BuiltPrompt> p = builder->Build(context, 1000);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->text,
            absl::StrCat(builder->SystemPart("en"),
                         "Customer: hi\n"
                         "Agent: Hello! How can I help you today?\n"
                         "Intent: delivery_problem\n"
                         "Known: order_id=A-1234567, delivery_issue=damaged, zz_custom=x y\n"
                         "Missing: none\n"
                         "Handover: yes\n"
                         "Evidence: (ocr) ORDER A-1234567 Total 49.99\n"
                         "Customer: It arrived broken, see the photo\n"
                         "Agent:"));
  EXPECT_EQ(p->text.substr(0, p->stable_bytes),
            absl::StrCat(builder->SystemPart("en"), builder->HistoryPart(context.history(0))));
}

// A transactional intent's confirmation is a line of its own, only when the tracker set it
// (training dialogues never have it, so their prompts are unchanged).
TEST(PromptBuilderTest, ConfirmationStatusLine) {
  auto builder = Builder();
  v1::GenerationContext context;
  context.set_user_text("cancel order A-1234567");
  common::v1::DialogueState& state = *context.mutable_state();
  state.set_active_intent("cancel_order");
  state.set_language("en");
  SetSlot(state, "order_id", "A-1234567");
  const std::string before = "Known: order_id=A-1234567\nMissing: none\n";
  absl::StatusOr<BuiltPrompt> p = builder->Build(context, 1000);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_THAT(p->text, HasSubstr(absl::StrCat(before, "Customer:")));
  for (const auto& [status, name] :
       {std::pair{common::v1::CONFIRMATION_STATUS_PENDING, "pending"},
        {common::v1::CONFIRMATION_STATUS_CONFIRMED, "confirmed"},
        {common::v1::CONFIRMATION_STATUS_DECLINED, "declined"}}) {
    state.set_confirmation(status);
    p = builder->Build(context, 1000);
    ASSERT_TRUE(p.ok()) << p.status();
    EXPECT_THAT(p->text, HasSubstr(absl::StrCat(before, "Confirmation: ", name, "\nCustomer:")));
  }
  // Before the handover line, and in past turns as they were prompted.
  state.set_escalate(true);
  common::v1::Turn past = MakeTurn(0, "cancel it", "Shall I cancel order A-1234567?");
  *past.mutable_state() = state;
  *context.add_history() = past;
  p = builder->Build(context, 1000);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_THAT(p->text, HasSubstr("Confirmation: declined\nHandover: yes\nCustomer: cancel it\n"));
  PromptFormat bad;
  bad.confirmation_label = " Confirmation:";
  EXPECT_THAT(PromptBuilder::Create(Shop(), bad, {}, CountUnits).status().message(),
              HasSubstr("format.confirmation_label"));
}

TEST(PromptBuilderTest, ChineseSystemPromptAndEnumLabels) {
  PromptFormat format;
  format.enum_labels = true;
  auto builder = Builder(format);
  v1::GenerationContext context;
  context.set_user_text("我要退货，尺码太小了");
  common::v1::DialogueState& state = *context.mutable_state();
  state.set_active_intent("return_item");
  state.set_language("zh");
  SetSlot(state, "reason", "too_small");
  absl::StatusOr<BuiltPrompt> p = builder->Build(context, 1000);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->language, "zh");
  EXPECT_THAT(p->text, StartsWith("你是一家网上商店的客服助手。"));
  EXPECT_THAT(p->text, HasSubstr("\nKnown: reason=尺码偏小\nMissing: order_id, item\n"
                                 "Customer: 我要退货，尺码太小了\nAgent:"));
  // The context's language wins over the state's.
  context.set_language("en");
  p = builder->Build(context, 1000);
  ASSERT_TRUE(p.ok());
  EXPECT_THAT(p->text, StartsWith("You are the customer service"));
  EXPECT_THAT(p->text, HasSubstr("Known: reason=it is too small\n"));
}

// A session of four turns: each turn's stable part (system + history) is a prefix of the next
// turn's prompt, and the next stable part is exactly the previous one plus the turn just
// finished, rendered the same way. Every part boundary is "\n" then a non-space character, so
// a GPT-2 tokenizer splits there the same way whatever follows (the token prefix is stable).
TEST(PromptBuilderTest, TurnKPlusOneExtendsTheStablePartOfTurnK) {
  auto builder = Builder();
  struct Step {
    std::string user, intent, reply;
    std::vector<std::pair<std::string, std::string>> slots;
  };
  const std::vector<Step> steps = {
      {"Hi there",
       "greet",
       "Hello! I'm the shop's virtual assistant. How can I help you today?",
       {}},
      {"I want to return the running shoes",
       "return_item",
       "Could you give me your order number? You'll find it in your confirmation e-mail.",
       {{"item", "the running shoes"}}},
      {"It's A-1234567, they are too small",
       "return_item",
       "All set: a return for the running shoes from order A-1234567 has been started.",
       {{"item", "the running shoes"}, {"order_id", "A-1234567"}, {"reason", "too_small"}}},
      {"Thanks! 谢谢",
       "thanks",
       "You're welcome! Is there anything else I can help you with?",
       {{"item", "the running shoes"}, {"order_id", "A-1234567"}, {"reason", "too_small"}}},
  };
  v1::GenerationContext context;
  context.mutable_state()->set_language("en");
  std::string previous_stable;
  std::string previous_text;
  for (size_t k = 0; k < steps.size(); ++k) {
    context.set_user_text(steps[k].user);
    context.mutable_state()->set_active_intent(steps[k].intent);
    context.mutable_state()->clear_slots();
    for (const auto& [name, value] : steps[k].slots) SetSlot(*context.mutable_state(), name, value);
    absl::StatusOr<BuiltPrompt> p = builder->Build(context, 4000);
    ASSERT_TRUE(p.ok()) << p.status();
    EXPECT_EQ(p->history_turns_dropped, 0u);
    const std::string stable = p->text.substr(0, p->stable_bytes);
    ASSERT_EQ(stable.back(), '\n');
    ASSERT_FALSE(absl::ascii_isspace(static_cast<unsigned char>(p->text[p->stable_bytes])));
    if (k > 0) {
      EXPECT_THAT(p->text, StartsWith(previous_stable)) << "turn " << k;
      EXPECT_EQ(stable,
                absl::StrCat(previous_stable,
                             builder->HistoryPart(context.history(static_cast<int>(k - 1)))));
      // The per-turn part is all that differs: the previous prompt minus its turn part is
      // the common prefix.
      EXPECT_THAT(previous_text, StartsWith(previous_stable));
    }
    previous_stable = stable;
    previous_text = p->text;
    *context.add_history() =
        MakeTurn(static_cast<uint32_t>(k), steps[k].user, steps[k].reply, steps[k].intent);
  }
}

// When the gateway stores each turn's state (Turn.state), a past turn is written exactly as
// it was prompted, so turn k+1's prompt is turn k's prompt + " " + reply + "\n" + the new
// turn: everything but the new turn can come from the engine's prefix cache.
TEST(PromptBuilderTest, HistoryWithStatesMakesEachPromptExtendThePreviousPromptAndReply) {
  auto builder = Builder();
  v1::GenerationContext context;
  context.mutable_state()->set_language("en");
  const std::vector<std::pair<std::string, std::string>> turns = {
      {"I want to return the running shoes", "Could you give me your order number?"},
      {"It's A-1234567", "Thanks. Why are you returning them?"},
      {"They are too small", "A return for order A-1234567 has been started."}};
  std::string previous;
  for (size_t k = 0; k < turns.size(); ++k) {
    context.set_user_text(turns[k].first);
    common::v1::DialogueState& state = *context.mutable_state();
    state.set_active_intent("return_item");
    SetSlot(state, "item", "the running shoes");
    if (k >= 1) SetSlot(state, "order_id", "A-1234567");
    absl::StatusOr<BuiltPrompt> p = builder->Build(context, 4000);
    ASSERT_TRUE(p.ok()) << p.status();
    if (k > 0) {
      EXPECT_THAT(p->text, StartsWith(absl::StrCat(previous, " ", turns[k - 1].second, "\n")))
          << "turn " << k;
    }
    previous = p->text;
    common::v1::Turn turn = MakeTurn(static_cast<uint32_t>(k), turns[k].first, turns[k].second,
                                     state.active_intent());
    *turn.mutable_state() = state;
    *context.add_history() = turn;
  }
}

v1::GenerationContext LongSession(size_t turns) {
  v1::GenerationContext context;
  context.set_user_text("And where is my refund for the other order?");
  context.mutable_state()->set_active_intent("refund_status");
  context.mutable_state()->set_language("en");
  for (size_t i = 0; i < turns; ++i) {
    *context.add_history() =
        MakeTurn(static_cast<uint32_t>(i), absl::StrCat("question number ", i, " about my order"),
                 absl::StrCat("answer number ", i, ": it is on its way and arrives soon."));
  }
  return context;
}

TEST(PromptBuilderTest, TrimsFromTheOldestTurnJustEnough) {
  auto builder = Builder();
  const v1::GenerationContext context = LongSession(10);
  absl::StatusOr<BuiltPrompt> full = builder->Build(context, 100000);
  ASSERT_TRUE(full.ok());
  EXPECT_EQ(full->history_turns_kept, 10u);
  const size_t per_turn = CountUnits(builder->HistoryPart(context.history(0)));
  // Room for exactly 4 history turns (all history parts have the same size here).
  const size_t budget = full->tokens - 6 * per_turn;
  absl::StatusOr<BuiltPrompt> p = builder->Build(context, budget);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->history_turns_dropped, 6u);
  EXPECT_EQ(p->history_turns_kept, 4u);
  EXPECT_EQ(p->tokens, budget);
  EXPECT_LE(CountUnits(p->text), budget);
  EXPECT_THAT(p->text, Not(HasSubstr("question number 5 ")));
  EXPECT_THAT(p->text, HasSubstr("Customer: question number 6 about my order\n"));
  EXPECT_THAT(p->text, HasSubstr("Customer: question number 9 about my order\n"));
  // One token less drops one more turn.
  p = builder->Build(context, budget - 1);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->history_turns_kept, 3u);
  // The kept history is rendered exactly as in the untrimmed prompt.
  EXPECT_TRUE(absl::StrContains(full->text, p->text.substr(builder->SystemPart("en").size())));
}

TEST(PromptBuilderTest, AlignedTrimmingMovesThePromptStartOnlyEveryGTurns) {
  PromptOptions options;
  options.history_alignment = 4;
  auto builder = Builder({}, options);
  // The gateway keeps the last 6 turns: turn t sees history t-6 .. t-1.
  std::vector<std::string> starts;
  for (size_t t = 6; t <= 13; ++t) {
    v1::GenerationContext context = LongSession(t);
    context.mutable_history()->DeleteSubrange(0, static_cast<int>(t - 6));
    absl::StatusOr<BuiltPrompt> p = builder->Build(context, 100000);
    ASSERT_TRUE(p.ok());
    const size_t first = t - 6 + p->history_turns_dropped;
    EXPECT_EQ(first % 4, 0u) << "turn " << t;
    starts.push_back(p->text.substr(0, p->stable_bytes));
  }
  // Turns 6..13 start their history at index 0,4,4,4,4,8,8,8: the stable part of one turn
  // is a prefix of the next one's in 5 of the 7 transitions.
  size_t extended = 0;
  for (size_t i = 1; i < starts.size(); ++i) extended += absl::StartsWith(starts[i], starts[i - 1]);
  EXPECT_EQ(extended, 5u);
  // Without alignment every one of these turns starts one turn later: no transition extends.
  auto plain = Builder();
  size_t plain_extended = 0;
  std::string prev;
  for (size_t t = 6; t <= 13; ++t) {
    v1::GenerationContext context = LongSession(t);
    context.mutable_history()->DeleteSubrange(0, static_cast<int>(t - 6));
    absl::StatusOr<BuiltPrompt> p = plain->Build(context, 100000);
    ASSERT_TRUE(p.ok());
    const std::string stable = p->text.substr(0, p->stable_bytes);
    if (t > 6) plain_extended += absl::StartsWith(stable, prev);
    prev = stable;
  }
  EXPECT_EQ(plain_extended, 0u);
}

TEST(PromptBuilderTest, ThisTurnOverTheBudgetIsInvalidArgumentNamingUserText) {
  auto builder = Builder();
  v1::GenerationContext context = LongSession(3);
  const size_t system = CountUnits(builder->SystemPart("en"));
  absl::StatusOr<BuiltPrompt> p = builder->Build(context, system + 5);
  ASSERT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(p.status().message()), StartsWith("context.user_text: "));
  EXPECT_THAT(std::string(p.status().message()), HasSubstr(absl::StrCat("at most ", system + 5)));
  // A long customer text alone.
  context.clear_history();
  std::string long_text;
  for (int i = 0; i < 400; ++i) absl::StrAppend(&long_text, "really ");
  context.set_user_text(long_text);
  p = builder->Build(context, 300);
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(PromptBuilderTest, EvidenceIsCutToMaxBytesAtACharacterBoundary) {
  PromptFormat format;
  format.max_evidence_bytes = 10;
  auto builder = Builder(format);
  v1::GenerationContext context;
  context.set_user_text("看图");
  auto* e = context.add_evidence();
  e->set_source("ocr");
  e->set_text("订单号A1234567");  // 订单号 is 9 bytes; the 10th byte is "A".
  absl::StatusOr<BuiltPrompt> p = builder->Build(context, 1000);
  ASSERT_TRUE(p.ok());
  EXPECT_THAT(p->text, HasSubstr("\nEvidence: (ocr) 订单号A\n"));
  e->set_text("订单号订单号");
  p = builder->Build(context, 1000);
  ASSERT_TRUE(p.ok());
  EXPECT_THAT(p->text, HasSubstr("\nEvidence: (ocr) 订单号\n"));
}

// The exemplar is a line just before the customer's, cut to its byte limit; it is not part
// of the stable prefix (history keeps no exemplar), and it is the first thing given up when
// this turn does not fit, before the request is refused.
TEST(PromptBuilderTest, ExemplarLineBeforeTheCustomerAndDroppedWhenThisTurnDoesNotFit) {
  PromptFormat format;
  format.max_exemplar_bytes = 40;
  auto builder = Builder(format);
  v1::GenerationContext context;
  context.set_user_text("Where is my order?");
  context.mutable_state()->set_active_intent("track_order");
  *context.add_history() = MakeTurn(0, "hi", "Hello!");
  context.set_exemplar("Could you give me your {{order_id}}, please? It is on\nthe receipt.");
  absl::StatusOr<BuiltPrompt> p = builder->Build(context, 1000);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->text, absl::StrCat(builder->SystemPart("en"),
                                  "Customer: hi\nAgent: Hello!\n"
                                  "Intent: track_order\nKnown: none\nMissing: order_id\n"
                                  "Example: Could you give me your {{order_id}}, ple\n"
                                  "Customer: Where is my order?\nAgent:"));
  EXPECT_EQ(p->text.substr(0, p->stable_bytes),
            absl::StrCat(builder->SystemPart("en"), builder->HistoryPart(context.history(0))));
  EXPECT_EQ(builder->TurnPart(context, "en", /*with_exemplar=*/false),
            "Intent: track_order\nKnown: none\nMissing: order_id\nCustomer: Where is my order?\nAgent:");

  // A budget that holds this turn only without the exemplar: history goes, then the exemplar.
  const size_t bare = CountUnits(absl::StrCat(
      builder->SystemPart("en"), builder->TurnPart(context, "en", /*with_exemplar=*/false)));
  p = builder->Build(context, bare);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_THAT(p->text, Not(HasSubstr("Example:")));
  EXPECT_EQ(p->history_turns_dropped, 1u);
  EXPECT_EQ(p->tokens, bare);
  EXPECT_EQ(builder->Build(context, bare - 1).status().code(), absl::StatusCode::kInvalidArgument);
}

// A counter that is not additive over parts (bytes / 4, rounded up): the builder still
// never returns a prompt over the budget.
TEST(PromptBuilderTest, NonAdditiveCounterStaysWithinBudget) {
  TokenCounter bytes = [](absl::string_view s) { return (s.size() + 3) / 4; };
  auto builder = Builder({}, {}, bytes);
  const v1::GenerationContext context = LongSession(12);
  for (size_t budget = 200; budget < 700; budget += 7) {
    absl::StatusOr<BuiltPrompt> p = builder->Build(context, budget);
    ASSERT_TRUE(p.ok()) << budget << ": " << p.status();
    EXPECT_LE(bytes(p->text), budget);
    EXPECT_EQ(p->tokens, bytes(p->text));
  }
}

TEST(PromptBuilderTest, CreateRejectsLabelsThatBreakTokenBoundaries) {
  PromptFormat format;
  format.customer_label = " Customer:";
  auto b = PromptBuilder::Create(Shop(), format, {}, CountUnits);
  EXPECT_EQ(b.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(b.status().message()), StartsWith("format.customer_label"));
  format = {};
  format.agent_label = "";
  EXPECT_THAT(std::string(PromptBuilder::Create(Shop(), format, {}, CountUnits).status().message()),
              StartsWith("format.agent_label"));
  format = {};
  format.system_suffix = "\n\n ";
  EXPECT_THAT(std::string(PromptBuilder::Create(Shop(), format, {}, CountUnits).status().message()),
              StartsWith("format.system_suffix"));
  EXPECT_THAT(std::string(PromptBuilder::Create(Shop(), {}, {}, nullptr).status().message()),
              StartsWith("count_tokens"));
}

TEST(PromptBuilderTest, StopSequencesAndHistoryIntents) {
  PromptFormat format;
  format.history_intents = true;
  EXPECT_EQ(FormatStopSequences(format), (std::vector<std::string>{"\n"}));
  auto builder = Builder(format);
  EXPECT_EQ(builder->HistoryPart(MakeTurn(0, "hi", "Hello!", "greet")),
            "Intent: greet\nCustomer: hi\nAgent: Hello!\n");
  EXPECT_EQ(builder->HistoryPart(MakeTurn(1, "", "", "")), "Intent: none\nCustomer:\nAgent:\n");
}

}  // namespace
}  // namespace helpline::generation::reply
