// Handoff transitions and summaries (plain functions), and HandoffDesk against a real
// redis-server: the errors of accept/release/get and what they leave in the store.
#include "services/gateway/handoff.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/metrics/metrics.h"
#include "common/redis/redis_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/dst/tracker.h"
#include "tests/testing/redis_fixture.h"
#include "tests/testing/shop_domain.h"

namespace helpline::gateway {
namespace {

using common::v1::DialogueState;
using common::v1::Handoff;
using common::v1::Turn;
using ::testing::HasSubstr;

DialogueState EscalatedState() {
  DialogueState state;
  state.set_domain("shop");
  state.set_active_intent("human_agent");
  state.set_escalate(true);
  state.set_escalation_reason("customer_request");
  state.set_language("en");
  (*state.mutable_slots())["order_id"].set_value("12345678");
  (*state.mutable_slots())["email"].set_value("");  // Empty values are not "known".
  state.add_missing_slots("reason");
  return state;
}

Turn MakeTurn(uint32_t index, const std::string& user, const std::string& reply) {
  Turn turn;
  turn.set_index(index);
  turn.set_user_text(user);
  turn.set_reply(reply);
  return turn;
}

// The shop domain, or null (with a failure naming why) when it cannot be loaded.
const domain::Domain* Shop() {
  const auto& shop = testutil::ShopDomain();
  EXPECT_TRUE(shop.ok()) << shop.status();
  return shop.ok() ? shop->get() : nullptr;
}

double CounterValue(const std::string& reason, const std::string& status) {
  const std::string text = metrics::Registry::Default().Serialize();
  const std::string needle = absl::StrCat("helpline_gateway_handoffs_total{reason=\"", reason,
                                          "\",status=\"", status, "\"} ");
  const size_t at = text.find(needle);
  if (at == std::string::npos) return 0;
  return std::stod(text.substr(at + needle.size()));
}

TEST(HandoffSummaryTest, HoldsStateReasonAndTheLastLines) {
  const DialogueState state = EscalatedState();
  const std::vector<Turn> history = {MakeTurn(0, "Where is my order?", "What is its number?"),
                                     MakeTurn(1, "12345678", "It ships tomorrow."),
                                     MakeTurn(2, "customer only", "")};
  SummaryInput input;
  input.state = &state;
  input.history = &history;
  input.user_text = "I want to talk to a human";
  input.reply = "An agent will be with you shortly.";
  input.turn_index = 3;
  input.max_lines = 4;
  const common::v1::HandoffSummary summary = MakeHandoffSummary(input);
  EXPECT_EQ(summary.intent(), "human_agent");
  EXPECT_EQ(summary.reason(), "customer_request");
  EXPECT_EQ(summary.turn_count(), 4u);
  EXPECT_EQ(summary.language(), "en");
  ASSERT_EQ(summary.slots().size(), 1u);
  EXPECT_EQ(summary.slots().at("order_id"), "12345678");
  ASSERT_EQ(summary.missing_slots_size(), 1);
  // The newest 4 lines; a turn without a reply contributes its customer line only.
  ASSERT_EQ(summary.recent_lines_size(), 4);
  EXPECT_EQ(summary.recent_lines(0).speaker(), "bot");
  EXPECT_EQ(summary.recent_lines(0).text(), "It ships tomorrow.");
  EXPECT_EQ(summary.recent_lines(0).turn_index(), 1u);
  EXPECT_EQ(summary.recent_lines(1).text(), "customer only");
  EXPECT_EQ(summary.recent_lines(2).speaker(), "customer");
  EXPECT_EQ(summary.recent_lines(2).text(), "I want to talk to a human");
  EXPECT_EQ(summary.recent_lines(3).speaker(), "bot");
  EXPECT_EQ(summary.recent_lines(3).turn_index(), 3u);
  EXPECT_EQ(summary.text(),
            "Handed over (customer_request) after 4 turns. Intent: human_agent. Known: "
            "order_id=12345678. Missing: reason. Last messages: bot: It ships tomorrow. | "
            "customer: customer only | customer: I want to talk to a human | bot: An agent "
            "will be with you shortly.");
}

TEST(HandoffSummaryTest, LongLinesAreCutOnACharacterBoundary) {
  const DialogueState state = EscalatedState();
  SummaryInput input;
  input.state = &state;
  std::string chinese;
  for (int i = 0; i < 200; ++i) chinese += "转";  // 3 bytes each.
  input.user_text = chinese;
  const common::v1::HandoffSummary summary = MakeHandoffSummary(input);
  ASSERT_EQ(summary.recent_lines_size(), 1);
  const std::string& text = summary.recent_lines(0).text();
  EXPECT_LT(text.size(), chinese.size());
  EXPECT_TRUE(absl::EndsWith(text, "转…")) << text;
  EXPECT_EQ(summary.turn_count(), 1u);
}

TEST(HandoffTransitionTest, InitiateAcceptRelease) {
  DialogueState state = EscalatedState();
  Handoff previous;
  previous.set_sequence(2);
  previous.set_status(common::v1::HANDOFF_STATUS_RELEASED);
  Handoff handoff =
      InitiateHandoff(state, common::v1::HandoffSummary(), previous, 7, absl::FromUnixSeconds(9));
  EXPECT_EQ(handoff.status(), common::v1::HANDOFF_STATUS_INITIATED);
  EXPECT_EQ(handoff.reason(), "customer_request");
  EXPECT_EQ(handoff.sequence(), 3u);
  EXPECT_EQ(handoff.initiate_turn(), 7u);
  EXPECT_EQ(handoff.initiate_time().seconds(), 9);
  EXPECT_TRUE(HandoffActive(handoff));

  absl::StatusOr<bool> accepted = AcceptHandoff(handoff, "s1", "alice", absl::FromUnixSeconds(10));
  ASSERT_TRUE(accepted.ok()) << accepted.status();
  EXPECT_TRUE(*accepted);
  EXPECT_EQ(handoff.status(), common::v1::HANDOFF_STATUS_ACCEPTED);
  EXPECT_EQ(handoff.agent_id(), "alice");
  EXPECT_EQ(handoff.accept_time().seconds(), 10);
  // The same agent again: idempotent, nothing changes.
  absl::StatusOr<bool> again = AcceptHandoff(handoff, "s1", "alice", absl::FromUnixSeconds(11));
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(*again);
  EXPECT_EQ(handoff.accept_time().seconds(), 10);
  // Another agent: refused, naming the one who has it.
  absl::StatusOr<bool> other = AcceptHandoff(handoff, "s1", "bob", absl::FromUnixSeconds(12));
  EXPECT_EQ(other.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(other.status().message()), HasSubstr("accepted by agent 'alice'"));

  ASSERT_TRUE(
      ReleaseHandoff(handoff, state, "s1", "alice", Shop(), absl::FromUnixSeconds(13)).ok());
  EXPECT_EQ(handoff.status(), common::v1::HANDOFF_STATUS_RELEASED);
  EXPECT_EQ(handoff.released_by(), "alice");
  EXPECT_FALSE(HandoffActive(handoff));
  // The escalation is cleared, and so is the always-human intent that would bring it back.
  EXPECT_FALSE(state.escalate());
  EXPECT_EQ(state.escalation_reason(), "");
  EXPECT_EQ(state.active_intent(), "");
  EXPECT_EQ(state.slots().at("order_id").value(), "12345678");

  absl::Status twice = ReleaseHandoff(handoff, state, "s1", "", nullptr, absl::Now());
  EXPECT_EQ(twice.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(twice.message()), HasSubstr("released"));
  absl::StatusOr<bool> late = AcceptHandoff(handoff, "s1", "alice", absl::Now());
  EXPECT_EQ(late.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(HandoffTransitionTest, ReleaseKeepsAnOrdinaryIntent) {
  DialogueState state = EscalatedState();
  state.set_active_intent("track_order");
  Handoff handoff;
  handoff.set_status(common::v1::HANDOFF_STATUS_INITIATED);
  ASSERT_TRUE(ReleaseHandoff(handoff, state, "s1", "", Shop(), absl::Now()).ok());
  EXPECT_EQ(state.active_intent(), "track_order");
  EXPECT_FALSE(state.escalate());
}

// The tracker counts toward escalation in the state the gateway stores (out-of-scope streak,
// frustration signals, recent requests). A release starts them afresh: the human dealt with
// what they counted, and the released conversation is not handed back at the next signal.
TEST(HandoffTransitionTest, ReleaseResetsTheTrackersEscalationCounters) {
  const auto& shop = testutil::ShopDomain();
  ASSERT_TRUE(shop.ok()) << shop.status();
  dst::Tracker tracker(*shop, dst::TrackerOptions{});
  DialogueState state;
  auto say = [&](const std::string& text) {
    dst::TurnInput input;
    input.user_text = text;
    input.language = "en";
    input.prior = state;
    absl::StatusOr<dst::TrackResult> result = tracker.Track(input);
    ASSERT_TRUE(result.ok()) << result.status();
    state = result->state;
  };
  say("where is my order A-1234567");
  say("WHERE IS MY ORDER A-1234567");  // Capitals and the same request again.
  ASSERT_TRUE(state.escalate());
  ASSERT_EQ(state.escalation_reason(), "frustration");
  ASSERT_GE(state.frustration_signals(), 2u);
  ASSERT_GT(state.recent_request_fingerprints_size(), 0);
  state.set_low_confidence_streak(2);

  Handoff handoff;
  handoff.set_status(common::v1::HANDOFF_STATUS_ACCEPTED);
  ASSERT_TRUE(ReleaseHandoff(handoff, state, "s1", "alice", Shop(), absl::Now()).ok());
  EXPECT_FALSE(state.escalate());
  EXPECT_EQ(state.low_confidence_streak(), 0u);
  EXPECT_EQ(state.frustration_signals(), 0u);
  EXPECT_EQ(state.recent_request_fingerprints_size(), 0);
  EXPECT_EQ(state.slots().at("order_id").value(), "A-1234567");  // What was said stays.

  // One annoyed turn after the release is one signal, not the third.
  say("this is ridiculous, where is my order");
  EXPECT_FALSE(state.escalate()) << state.escalation_reason();
  EXPECT_EQ(state.frustration_signals(), 1u);
  // Nor does one turn the bot does not understand end a streak from before.
  say("blorp");
  EXPECT_FALSE(state.escalate()) << state.escalation_reason();
  EXPECT_EQ(state.low_confidence_streak(), 1u);
}

TEST(HandoffTransitionTest, NothingToAcceptOrRelease) {
  Handoff none;
  DialogueState state;
  absl::StatusOr<bool> accepted = AcceptHandoff(none, "s9", "alice", absl::Now());
  EXPECT_EQ(accepted.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(accepted.status().message()),
              HasSubstr("session 's9' has no handoff to accept"));
  absl::Status released = ReleaseHandoff(none, state, "s9", "", nullptr, absl::Now());
  EXPECT_EQ(released.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(released.message()), HasSubstr("session 's9' has no handoff to release"));
}

TEST(HandoffTransitionTest, AgentIds) {
  EXPECT_TRUE(ValidateAgentId("alice.smith+desk@example.com", "agent_id", true).ok());
  EXPECT_TRUE(ValidateAgentId("", "agent_id", false).ok());
  EXPECT_EQ(ValidateAgentId("", "agent_id", true).message(), "agent_id: required");
  EXPECT_THAT(std::string(ValidateAgentId("a/b", "agent_id", true).message()),
              HasSubstr("agent_id: character '/' at offset 1"));
  EXPECT_THAT(std::string(ValidateAgentId("a\nb", "agent_id", true).message()),
              HasSubstr("byte 0x0a"));
  EXPECT_FALSE(ValidateAgentId(std::string(129, 'x'), "agent_id", true).ok());
}

class HandoffDeskTest : public testutil::RedisTest {
 protected:
  void SetUp() override {
    testutil::RedisTest::SetUp();
    if (HasFatalFailure()) return;
    redis::RedisOptions options;
    options.host = server().host();
    options.port = server().port();
    pool_ = std::make_unique<redis::Pool>(options);
    store_ =
        std::make_unique<session::RedisSessionStore>(*pool_, session::RedisSessionStoreOptions{});
    desk_ = std::make_unique<HandoffDesk>(*store_, Shop());
  }

  // Commits one turn whose record holds `handoff` (unset status: none).
  void CommitTurn(const Handoff& handoff) {
    auto acquired = store_->AcquireAndLoad(key_, 0, Soon());
    ASSERT_TRUE(acquired.ok()) << acquired.status();
    common::v1::SessionRecord record;
    *record.mutable_state() = EscalatedState();
    if (handoff.status() != common::v1::HANDOFF_STATUS_UNSPECIFIED) {
      *record.mutable_handoff() = handoff;
    }
    ASSERT_TRUE(store_
                    ->CommitAndRelease(acquired->lease, acquired->session.record.version(), record,
                                       MakeTurn(0, "a human please", "ok"))
                    .ok());
  }

  static absl::Time Soon() { return absl::Now() + absl::Seconds(5); }

  std::unique_ptr<redis::Pool> pool_;
  std::unique_ptr<session::RedisSessionStore> store_;
  std::unique_ptr<HandoffDesk> desk_;
  const session::SessionKey key_{"acme", "desk-1"};
};

TEST_F(HandoffDeskTest, UnknownSessionIsNotFoundEverywhere) {
  EXPECT_EQ(desk_->Get(key_).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(desk_->Accept(key_, "alice", Soon()).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(desk_->Release(key_, "", Soon()).status().code(), absl::StatusCode::kNotFound);
  // Nothing was written, not even a lease or its fence counter.
  EXPECT_TRUE(pool_->Command({"KEYS", "*"})->elements.empty());
  // Another tenant's session is as unknown.
  CommitTurn(Handoff());
  EXPECT_EQ(desk_->Get({"other", key_.session_id}).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(HandoffDeskTest, SessionWithoutHandoffIsAFailedPrecondition) {
  CommitTurn(Handoff());
  const std::string fence = pool_->Command({"GET", store_->KeyFor(key_, "fence")})->str;
  absl::StatusOr<Handoff> got = desk_->Get(key_);
  EXPECT_EQ(got.status().code(), absl::StatusCode::kFailedPrecondition);
  absl::StatusOr<Handoff> accepted = desk_->Accept(key_, "alice", Soon());
  EXPECT_EQ(accepted.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(accepted.status().message()),
              HasSubstr("session 'desk-1' has no handoff to accept"));
  EXPECT_EQ(desk_->Release(key_, "", Soon()).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(desk_->Accept(key_, "", Soon()).status().code(), absl::StatusCode::kInvalidArgument);
  // Refused calls take no lease: the fence counter did not move.
  EXPECT_EQ(pool_->Command({"GET", store_->KeyFor(key_, "fence")})->str, fence);
}

TEST_F(HandoffDeskTest, AcceptThenReleaseIsStoredAndCounted) {
  Handoff initiated;
  initiated.set_status(common::v1::HANDOFF_STATUS_INITIATED);
  initiated.set_reason("intent_policy");
  initiated.set_sequence(1);
  CommitTurn(initiated);
  const double accepted_before = CounterValue("intent_policy", "accepted");
  const double released_before = CounterValue("intent_policy", "released");

  absl::StatusOr<Handoff> accepted = desk_->Accept(key_, "alice", Soon());
  ASSERT_TRUE(accepted.ok()) << accepted.status();
  EXPECT_EQ(accepted->status(), common::v1::HANDOFF_STATUS_ACCEPTED);
  EXPECT_EQ(desk_->Get(key_)->agent_id(), "alice");
  // Same agent: the same record, not counted twice; another agent: refused.
  ASSERT_TRUE(desk_->Accept(key_, "alice", Soon()).ok());
  EXPECT_EQ(desk_->Accept(key_, "bob", Soon()).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(CounterValue("intent_policy", "accepted"), accepted_before + 1);

  absl::StatusOr<Handoff> released = desk_->Release(key_, "alice", Soon());
  ASSERT_TRUE(released.ok()) << released.status();
  EXPECT_EQ(released->status(), common::v1::HANDOFF_STATUS_RELEASED);
  EXPECT_EQ(CounterValue("intent_policy", "released"), released_before + 1);
  auto loaded = store_->Load(key_, 0);
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ(loaded->record.version(), 1u);  // No turn was added.
  EXPECT_EQ(loaded->turns.size(), 1u);
  EXPECT_EQ(loaded->record.handoff().status(), common::v1::HANDOFF_STATUS_RELEASED);
  EXPECT_FALSE(loaded->record.state().escalate());
  EXPECT_EQ(loaded->record.state().active_intent(), "");
  EXPECT_EQ(desk_->Release(key_, "", Soon()).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(HandoffDeskTest, BusySessionHitsTheDeadlineAndRedisDownIsUnavailable) {
  Handoff initiated;
  initiated.set_status(common::v1::HANDOFF_STATUS_INITIATED);
  CommitTurn(initiated);
  auto holder = store_->AcquireAndLoad(key_, 0, Soon());  // A turn in progress.
  ASSERT_TRUE(holder.ok());
  absl::StatusOr<Handoff> busy = desk_->Accept(key_, "alice", absl::Now() + absl::Milliseconds(50));
  EXPECT_EQ(busy.status().code(), absl::StatusCode::kDeadlineExceeded);
  store_->ReleaseLease(holder->lease);
  EXPECT_EQ(desk_->Get(key_)->status(), common::v1::HANDOFF_STATUS_INITIATED);

  ASSERT_TRUE(server().Stop().ok());
  EXPECT_EQ(desk_->Get(key_).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(desk_->Accept(key_, "alice", Soon()).status().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace helpline::gateway
