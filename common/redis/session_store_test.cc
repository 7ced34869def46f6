// Against a real redis-server started by tests/testing/redis_fixture.h.
#include "common/redis/session_store.h"

#include <algorithm>
#include <atomic>
#include <iostream>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/metrics/metrics.h"
#include "gtest/gtest.h"
#include "tests/testing/redis_fixture.h"

namespace helpline::session {
namespace {

using redis::Pool;
using redis::RedisOptions;

RedisOptions OptionsFor(const testutil::RedisServer& server) {
  RedisOptions options;
  options.host = server.host();
  options.port = server.port();
  options.connect_timeout = absl::Milliseconds(500);
  options.command_timeout = absl::Seconds(2);
  options.pool_size = 8;
  return options;
}

common::v1::DialogueState StateWithIntent(const std::string& intent) {
  common::v1::DialogueState state;
  state.set_active_intent(intent);
  return state;
}

common::v1::Turn TurnWithText(const std::string& text) {
  common::v1::Turn turn;
  turn.set_user_text(text);
  turn.set_reply(absl::StrCat("reply to ", text));
  return turn;
}

absl::Time Soon() { return absl::Now() + absl::Seconds(10); }

class SessionStoreTest : public testutil::RedisTest {
 protected:
  void SetUp() override {
    testutil::RedisTest::SetUp();
    if (HasFatalFailure()) return;
    pool_ = std::make_unique<Pool>(OptionsFor(server()));
    RedisSessionStoreOptions options;
    options.key_prefix = "test";
    options.max_turns = 100;
    options.idle_ttl = absl::Hours(1);
    options.lease_ttl = absl::Seconds(30);
    store_ = MakeStore(options);
  }

  std::unique_ptr<RedisSessionStore> MakeStore(const RedisSessionStoreOptions& options) {
    EXPECT_TRUE(ValidateStoreOptions(options).ok());
    return std::make_unique<RedisSessionStore>(*pool_, options);
  }

  // Runs one whole turn: acquire, commit with the loaded version. Returns the new version.
  absl::StatusOr<uint64_t> RunTurn(SessionStore& store, const SessionKey& key,
                                   const std::string& text) {
    absl::StatusOr<Acquired> acquired = store.AcquireAndLoad(key, 0, Soon());
    if (!acquired.ok()) return acquired.status();
    return store.CommitAndRelease(acquired->lease, acquired->session.record.version(),
                                  StateWithIntent(text), TurnWithText(text));
  }

  redis::Reply Raw(const std::vector<std::string>& args) {
    absl::StatusOr<redis::Reply> reply = pool_->Command(args);
    EXPECT_TRUE(reply.ok()) << reply.status();
    return reply.ok() ? *reply : redis::Reply{};
  }

  std::vector<std::string> AllKeys() {
    std::vector<std::string> keys;
    for (const auto& element : Raw({"KEYS", "*"}).elements) keys.push_back(element.str);
    std::sort(keys.begin(), keys.end());
    return keys;
  }

  std::unique_ptr<Pool> pool_;
  std::unique_ptr<RedisSessionStore> store_;
  const SessionKey key_{"acme", "chat-1"};
};

TEST(ValidateTest, SessionIdsAndTenants) {
  EXPECT_TRUE(ValidateSessionId("a").ok());
  EXPECT_TRUE(ValidateSessionId("user:42.chat_1-x").ok());
  EXPECT_TRUE(ValidateSessionId(std::string(128, 'x')).ok());
  absl::Status empty = ValidateSessionId("");
  EXPECT_EQ(empty.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(empty.message(), "session_id: must be 1 to 128 characters, got 0");
  EXPECT_EQ(ValidateSessionId(std::string(129, 'x')).code(), absl::StatusCode::kInvalidArgument);
  absl::Status brace = ValidateSessionId("ab{c}", "user");
  EXPECT_EQ(brace.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(brace.message(),
            "user: character '{' at offset 2 is not allowed; use [A-Za-z0-9._:-]");
  EXPECT_EQ(ValidateSessionId("a b").message(),
            "session_id: character byte 0x20 at offset 1 is not allowed; use [A-Za-z0-9._:-]");
  EXPECT_FALSE(ValidateSessionId("caf\xc3\xa9").ok());
  EXPECT_TRUE(ValidateTenant("acme-corp.eu_1").ok());
  EXPECT_EQ(ValidateTenant("a:b").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateTenant("}").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateTenant("").code(), absl::StatusCode::kInvalidArgument);
}

TEST(ValidateTest, StoreOptions) {
  RedisSessionStoreOptions options;
  EXPECT_TRUE(ValidateStoreOptions(options).ok());
  options.key_prefix = "a{b";
  EXPECT_EQ(ValidateStoreOptions(options).message(), "key_prefix: must not contain '{' or '}'");
  options.key_prefix = "ok";
  options.lease_ttl = absl::ZeroDuration();
  EXPECT_EQ(ValidateStoreOptions(options).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(SessionStoreTest, KeysAreHashTagged) {
  EXPECT_EQ(store_->KeyFor(key_, "state"), "test:{acme:chat-1}:state");
  EXPECT_EQ(store_->KeyFor(key_, "turns"), "test:{acme:chat-1}:turns");
}

TEST_F(SessionStoreTest, InvalidKeysAreRejectedBeforeRedis) {
  auto bad = store_->AcquireAndLoad({"acme", "x}y"}, 0, Soon());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->Load({"ac:me", "x"}, 0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->Erase({"acme", ""}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(AllKeys().empty());
}

TEST_F(SessionStoreTest, NewSessionAcquireReturnsNotExistsAndHoldsTheLease) {
  auto acquired = store_->AcquireAndLoad(key_, 0, Soon());
  ASSERT_TRUE(acquired.ok()) << acquired.status();
  EXPECT_FALSE(acquired->session.exists);
  EXPECT_EQ(acquired->session.record.version(), 0u);
  EXPECT_TRUE(acquired->session.turns.empty());
  EXPECT_GT(acquired->lease.token, 0u);
  EXPECT_EQ(acquired->lease.key.session_id, "chat-1");
  redis::Reply lease = Raw({"GET", store_->KeyFor(key_, "lease")});
  EXPECT_EQ(lease.str, absl::StrCat(acquired->lease.token));
  redis::Reply pttl = Raw({"PTTL", store_->KeyFor(key_, "lease")});
  EXPECT_GT(pttl.integer, 0);
  EXPECT_LE(pttl.integer, 30000);
  // No state was written by acquiring.
  EXPECT_EQ(Raw({"EXISTS", store_->KeyFor(key_, "state")}).integer, 0);
}

TEST_F(SessionStoreTest, CommitThenLoadReturnsStateAndTurn) {
  auto acquired = store_->AcquireAndLoad(key_, 0, Soon());
  ASSERT_TRUE(acquired.ok()) << acquired.status();
  absl::Time before = absl::Now();
  auto version = store_->CommitAndRelease(acquired->lease, 0, StateWithIntent("track_order"),
                                          TurnWithText("where is my order"));
  ASSERT_TRUE(version.ok()) << version.status();
  EXPECT_EQ(*version, 1u);
  EXPECT_EQ(Raw({"EXISTS", store_->KeyFor(key_, "lease")}).integer, 0);
  EXPECT_EQ(Raw({"HGET", store_->KeyFor(key_, "state"), "version"}).str, "1");

  auto loaded = store_->Load(key_, 0);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_TRUE(loaded->exists);
  EXPECT_EQ(loaded->record.version(), 1u);
  EXPECT_EQ(loaded->record.state().active_intent(), "track_order");
  EXPECT_GE(loaded->record.update_time().seconds(), absl::ToUnixSeconds(before));
  ASSERT_EQ(loaded->turns.size(), 1u);
  EXPECT_EQ(loaded->turns[0].user_text(), "where is my order");
  EXPECT_EQ(loaded->turns[0].index(), 0u);
  EXPECT_GT(loaded->turns[0].create_time().seconds(), 0);

  auto again = store_->AcquireAndLoad(key_, 0, Soon());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->session.exists);
  EXPECT_EQ(again->session.record.version(), 1u);
  EXPECT_EQ(again->session.turns.size(), 1u);
  EXPECT_GT(again->lease.token, acquired->lease.token);
  auto second = store_->CommitAndRelease(again->lease, 1, StateWithIntent("refund"),
                                         TurnWithText("refund please"));
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(*second, 2u);
  loaded = store_->Load(key_, 0);
  ASSERT_TRUE(loaded.ok());
  ASSERT_EQ(loaded->turns.size(), 2u);
  EXPECT_EQ(loaded->turns[1].index(), 1u);
  EXPECT_EQ(loaded->record.state().active_intent(), "refund");
}

TEST_F(SessionStoreTest, ExplicitTurnIndexIsKept) {
  auto acquired = store_->AcquireAndLoad(key_, 0, Soon());
  ASSERT_TRUE(acquired.ok());
  common::v1::Turn turn = TurnWithText("x");
  turn.set_index(7);
  ASSERT_TRUE(store_->CommitAndRelease(acquired->lease, 0, StateWithIntent("x"), turn).ok());
  EXPECT_EQ(store_->Load(key_, 0)->turns[0].index(), 7u);
}

TEST_F(SessionStoreTest, VersionMismatchIsAbortedAndWritesNothing) {
  ASSERT_TRUE(RunTurn(*store_, key_, "first").ok());
  auto acquired = store_->AcquireAndLoad(key_, 0, Soon());
  ASSERT_TRUE(acquired.ok());
  auto version = store_->CommitAndRelease(acquired->lease, 5, StateWithIntent("second"),
                                          TurnWithText("second"));
  ASSERT_FALSE(version.ok());
  EXPECT_EQ(version.status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(version.status().message(), "version moved: stored 1, expected 5");
  auto loaded = store_->Load(key_, 0);
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ(loaded->record.version(), 1u);
  EXPECT_EQ(loaded->record.state().active_intent(), "first");
  EXPECT_EQ(loaded->turns.size(), 1u);
  // The lease is still ours until released.
  EXPECT_EQ(Raw({"EXISTS", store_->KeyFor(key_, "lease")}).integer, 1);
  store_->ReleaseLease(acquired->lease);
  EXPECT_EQ(Raw({"EXISTS", store_->KeyFor(key_, "lease")}).integer, 0);
}

TEST_F(SessionStoreTest, LostLeaseIsAbortedAndWritesNothing) {
  RedisSessionStoreOptions options;
  options.key_prefix = "test";
  options.lease_ttl = absl::Milliseconds(50);
  auto store = MakeStore(options);
  auto first = store->AcquireAndLoad(key_, 0, Soon());
  ASSERT_TRUE(first.ok()) << first.status();
  // The second turn waits (with backoff) until the first one's lease expires, then takes it.
  auto second = store->AcquireAndLoad(key_, 0, Soon());
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_GT(second->lease.token, first->lease.token);

  auto late = store->CommitAndRelease(first->lease, 0, StateWithIntent("late"),
                                      TurnWithText("late"));
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(late.status().message(), "lease lost");
  auto loaded = store->Load(key_, 0);
  ASSERT_TRUE(loaded.ok());
  EXPECT_FALSE(loaded->exists);
  EXPECT_TRUE(loaded->turns.empty());
  // Releasing a lost lease does not release the new holder's.
  store->ReleaseLease(first->lease);
  EXPECT_EQ(Raw({"GET", store->KeyFor(key_, "lease")}).str, absl::StrCat(second->lease.token));

  auto version = store->CommitAndRelease(second->lease, 0, StateWithIntent("on time"),
                                         TurnWithText("on time"));
  ASSERT_TRUE(version.ok()) << version.status();
  EXPECT_EQ(*version, 1u);
  EXPECT_EQ(store->Load(key_, 0)->turns.at(0).user_text(), "on time");
}

common::v1::SessionRecord RecordWithHandoff(const std::string& intent,
                                            common::v1::HandoffStatus status) {
  common::v1::SessionRecord record;
  *record.mutable_state() = StateWithIntent(intent);
  record.mutable_state()->set_escalate(true);
  record.mutable_handoff()->set_status(status);
  record.mutable_handoff()->set_reason("customer_request");
  record.mutable_handoff()->mutable_summary()->set_text("Intent: " + intent);
  return record;
}

TEST_F(SessionStoreTest, CommitStoresTheHandoffWithTheTurn) {
  auto acquired = store_->AcquireAndLoad(key_, 0, Soon());
  ASSERT_TRUE(acquired.ok()) << acquired.status();
  auto version = store_->CommitAndRelease(
      acquired->lease, 0, RecordWithHandoff("refund", common::v1::HANDOFF_STATUS_INITIATED),
      TurnWithText("a human please"));
  ASSERT_TRUE(version.ok()) << version.status();
  EXPECT_EQ(*version, 1u);
  auto loaded = store_->Load(key_, 0);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->record.version(), 1u);
  EXPECT_EQ(loaded->record.handoff().status(), common::v1::HANDOFF_STATUS_INITIATED);
  EXPECT_EQ(loaded->record.handoff().summary().text(), "Intent: refund");
  EXPECT_TRUE(loaded->record.state().escalate());
  ASSERT_EQ(loaded->turns.size(), 1u);

  // A commit from a state alone replaces the record whole: the handoff is gone.
  ASSERT_TRUE(RunTurn(*store_, key_, "next").ok());
  loaded = store_->Load(key_, 0);
  ASSERT_TRUE(loaded.ok());
  EXPECT_FALSE(loaded->record.has_handoff());
}

TEST_F(SessionStoreTest, UpdateReplacesTheRecordWithoutATurnOrANewVersion) {
  ASSERT_TRUE(RunTurn(*store_, key_, "first").ok());
  auto acquired = store_->AcquireAndLoad(key_, 0, Soon());
  ASSERT_TRUE(acquired.ok()) << acquired.status();
  common::v1::SessionRecord record =
      RecordWithHandoff("first", common::v1::HANDOFF_STATUS_ACCEPTED);
  record.mutable_handoff()->set_agent_id("agent-7");
  *record.mutable_update_time() = acquired->session.record.update_time();
  const absl::Time before = absl::Now();
  ASSERT_TRUE(store_->UpdateAndRelease(acquired->lease, 1, record).ok());
  EXPECT_EQ(Raw({"EXISTS", store_->KeyFor(key_, "lease")}).integer, 0);
  EXPECT_EQ(Raw({"HGET", store_->KeyFor(key_, "state"), "version"}).str, "1");
  const int64_t ttl = Raw({"PTTL", store_->KeyFor(key_, "state")}).integer;
  EXPECT_GT(ttl, absl::ToInt64Milliseconds(absl::Hours(1) - (absl::Now() - before)) - 1000);

  auto loaded = store_->Load(key_, 0);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->record.version(), 1u);
  EXPECT_EQ(loaded->record.handoff().status(), common::v1::HANDOFF_STATUS_ACCEPTED);
  EXPECT_EQ(loaded->record.handoff().agent_id(), "agent-7");
  EXPECT_EQ(loaded->record.update_time().seconds(),
            acquired->session.record.update_time().seconds());
  EXPECT_EQ(loaded->turns.size(), 1u);

  // The next turn commits on top of it as version 2 and sees the handoff.
  auto next = store_->AcquireAndLoad(key_, 0, Soon());
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(next->session.record.handoff().agent_id(), "agent-7");
  auto version = store_->CommitAndRelease(next->lease, 1, next->session.record,
                                          TurnWithText("while accepted"));
  ASSERT_TRUE(version.ok()) << version.status();
  EXPECT_EQ(*version, 2u);
  EXPECT_EQ(store_->Load(key_, 0)->record.handoff().agent_id(), "agent-7");
}

TEST_F(SessionStoreTest, RefusedUpdatesAreAbortedAndWriteNothing) {
  const common::v1::SessionRecord record =
      RecordWithHandoff("x", common::v1::HANDOFF_STATUS_ACCEPTED);
  // No session: nothing to update.
  auto empty = store_->AcquireAndLoad(key_, 0, Soon());
  ASSERT_TRUE(empty.ok());
  absl::Status missing = store_->UpdateAndRelease(empty->lease, 0, record);
  EXPECT_EQ(missing.code(), absl::StatusCode::kAborted) << missing;
  EXPECT_EQ(missing.message(), "the session does not exist");
  store_->ReleaseLease(empty->lease);
  EXPECT_EQ(AllKeys(), std::vector<std::string>{store_->KeyFor(key_, "fence")});

  ASSERT_TRUE(RunTurn(*store_, key_, "first").ok());
  const std::string stored = Raw({"HGET", store_->KeyFor(key_, "state"), "record"}).str;
  auto acquired = store_->AcquireAndLoad(key_, 0, Soon());
  ASSERT_TRUE(acquired.ok());
  absl::Status moved = store_->UpdateAndRelease(acquired->lease, 3, record);
  EXPECT_EQ(moved.code(), absl::StatusCode::kAborted);
  EXPECT_EQ(moved.message(), "version moved: stored 1, expected 3");
  Lease stale = acquired->lease;
  stale.token -= 1;
  absl::Status lost = store_->UpdateAndRelease(stale, 1, record);
  EXPECT_EQ(lost.code(), absl::StatusCode::kAborted);
  EXPECT_EQ(lost.message(), "lease lost");
  EXPECT_EQ(Raw({"HGET", store_->KeyFor(key_, "state"), "record"}).str, stored);
  // Refusals keep the lease: the holder releases it.
  EXPECT_EQ(Raw({"EXISTS", store_->KeyFor(key_, "lease")}).integer, 1);
  store_->ReleaseLease(acquired->lease);
}

TEST_F(SessionStoreTest, BusySessionHitsTheDeadline) {
  auto holder = store_->AcquireAndLoad(key_, 0, Soon());
  ASSERT_TRUE(holder.ok());
  absl::Time start = absl::Now();
  auto waiter = store_->AcquireAndLoad(key_, 0, start + absl::Milliseconds(150));
  absl::Duration waited = absl::Now() - start;
  ASSERT_FALSE(waiter.ok());
  EXPECT_EQ(waiter.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(waiter.status().message(), "session is busy with another turn");
  EXPECT_GE(waited, absl::Milliseconds(150));
  EXPECT_LT(waited, absl::Seconds(1));
  // A past deadline does not even try.
  auto past = store_->AcquireAndLoad({"acme", "other"}, 0, absl::Now() - absl::Seconds(1));
  EXPECT_EQ(past.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(Raw({"EXISTS", store_->KeyFor({"acme", "other"}, "lease")}).integer, 0);
}

TEST_F(SessionStoreTest, ConcurrentTurnsAreSerializedAndNoneIsLost) {
  constexpr int kThreads = 8;
  constexpr int kTurnsPerThread = 5;
  std::mutex mu;
  std::vector<uint64_t> versions;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kTurnsPerThread; ++i) {
        absl::StatusOr<Acquired> acquired =
            store_->AcquireAndLoad(key_, 0, absl::Now() + absl::Seconds(30));
        ASSERT_TRUE(acquired.ok()) << acquired.status();
        uint64_t expected = acquired->session.record.version();
        // What this turn saw is consistent: one turn per version.
        ASSERT_EQ(acquired->session.turns.size(), expected);
        std::string text = absl::StrCat("t", t, "-", i);
        common::v1::DialogueState state = acquired->session.record.state();
        state.set_active_intent(text);
        absl::StatusOr<uint64_t> version =
            store_->CommitAndRelease(acquired->lease, expected, state, TurnWithText(text));
        ASSERT_TRUE(version.ok()) << version.status();
        std::lock_guard lock(mu);
        versions.push_back(*version);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  std::sort(versions.begin(), versions.end());
  ASSERT_EQ(versions.size(), static_cast<size_t>(kThreads * kTurnsPerThread));
  for (size_t i = 0; i < versions.size(); ++i) EXPECT_EQ(versions[i], i + 1);

  auto loaded = store_->Load(key_, 0);
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ(loaded->record.version(), static_cast<uint64_t>(kThreads * kTurnsPerThread));
  ASSERT_EQ(loaded->turns.size(), static_cast<size_t>(kThreads * kTurnsPerThread));
  std::map<std::string, int> next_per_thread;
  std::set<std::string> texts;
  for (size_t i = 0; i < loaded->turns.size(); ++i) {
    const common::v1::Turn& turn = loaded->turns[i];
    EXPECT_EQ(turn.index(), i);
    texts.insert(turn.user_text());
    // Each thread's turns appear in the order that thread ran them.
    std::string thread = turn.user_text().substr(0, turn.user_text().find('-'));
    int n = std::stoi(turn.user_text().substr(turn.user_text().find('-') + 1));
    EXPECT_EQ(n, next_per_thread[thread]++) << turn.user_text();
  }
  EXPECT_EQ(texts.size(), static_cast<size_t>(kThreads * kTurnsPerThread));
  EXPECT_EQ(loaded->record.state().active_intent(), loaded->turns.back().user_text());
}

TEST_F(SessionStoreTest, HistoryIsCappedAtMaxTurns) {
  RedisSessionStoreOptions options;
  options.key_prefix = "test";
  options.max_turns = 3;
  auto store = MakeStore(options);
  for (int i = 0; i < 5; ++i) {
    auto version = RunTurn(*store, key_, absl::StrCat("turn ", i));
    ASSERT_TRUE(version.ok()) << version.status();
    EXPECT_EQ(*version, static_cast<uint64_t>(i + 1));
  }
  EXPECT_EQ(Raw({"LLEN", store->KeyFor(key_, "turns")}).integer, 3);
  auto loaded = store->Load(key_, 0);
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ(loaded->record.version(), 5u);
  ASSERT_EQ(loaded->turns.size(), 3u);
  EXPECT_EQ(loaded->turns[0].index(), 2u);
  EXPECT_EQ(loaded->turns[2].index(), 4u);
  EXPECT_EQ(loaded->turns[2].user_text(), "turn 4");
  // Asking for fewer returns the newest.
  auto acquired = store->AcquireAndLoad(key_, 2, Soon());
  ASSERT_TRUE(acquired.ok());
  ASSERT_EQ(acquired->session.turns.size(), 2u);
  EXPECT_EQ(acquired->session.turns[0].index(), 3u);
  EXPECT_EQ(acquired->session.turns[1].index(), 4u);
  store->ReleaseLease(acquired->lease);
  EXPECT_EQ(store->Load(key_, 1)->turns.at(0).index(), 4u);
}

TEST_F(SessionStoreTest, CommitSetsIdleTtlOnEveryKey) {
  ASSERT_TRUE(RunTurn(*store_, key_, "hello").ok());
  for (const char* suffix : {"state", "turns", "fence"}) {
    redis::Reply pttl = Raw({"PTTL", store_->KeyFor(key_, suffix)});
    EXPECT_GT(pttl.integer, 0) << suffix;
    EXPECT_LE(pttl.integer, 3600 * 1000) << suffix;
    EXPECT_GT(pttl.integer, 3500 * 1000) << suffix;
  }
  EXPECT_EQ(Raw({"EXISTS", store_->KeyFor(key_, "lease")}).integer, 0);
  // Sessions really do expire.
  RedisSessionStoreOptions options;
  options.key_prefix = "short";
  options.idle_ttl = absl::Milliseconds(1);
  auto store = MakeStore(options);
  ASSERT_TRUE(RunTurn(*store, key_, "bye").ok());
  absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (store->Load(key_, 0)->exists && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(2));  // Waiting on Redis's clock: nothing to signal.
  }
  EXPECT_FALSE(store->Load(key_, 0)->exists);
}

TEST_F(SessionStoreTest, EraseRemovesEveryKey) {
  ASSERT_TRUE(RunTurn(*store_, key_, "one").ok());
  ASSERT_TRUE(RunTurn(*store_, key_, "two").ok());
  auto holder = store_->AcquireAndLoad(key_, 0, Soon());  // A turn in flight: lease too.
  ASSERT_TRUE(holder.ok());
  EXPECT_EQ(AllKeys().size(), 4u);
  auto erased = store_->Erase(key_);
  ASSERT_TRUE(erased.ok()) << erased.status();
  EXPECT_EQ(*erased, 4);
  EXPECT_TRUE(AllKeys().empty());
  for (const char* suffix : {"state", "turns", "lease", "fence"}) {
    EXPECT_EQ(Raw({"EXISTS", store_->KeyFor(key_, suffix)}).integer, 0) << suffix;
  }
  // The turn that was in flight cannot bring the session back.
  auto late = store_->CommitAndRelease(holder->lease, 2, StateWithIntent("x"), TurnWithText("x"));
  EXPECT_EQ(late.status().code(), absl::StatusCode::kAborted);
  EXPECT_TRUE(AllKeys().empty());
  // Nor can it after a new turn started on the same (erased) session id.
  auto fresh = store_->AcquireAndLoad(key_, 0, Soon());
  ASSERT_TRUE(fresh.ok());
  EXPECT_FALSE(fresh->session.exists);
  EXPECT_NE(fresh->lease.token, holder->lease.token);
  EXPECT_EQ(store_->CommitAndRelease(holder->lease, 0, StateWithIntent("x"), TurnWithText("x"))
                .status()
                .code(),
            absl::StatusCode::kAborted);

  auto unknown = store_->Erase({"acme", "never-existed"});
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(unknown.status().message(), "session_id 'never-existed' not found");
}

TEST_F(SessionStoreTest, EraseOfSessionWithoutStateIsNotFoundButCleansUp) {
  auto holder = store_->AcquireAndLoad(key_, 0, Soon());  // lease + fence, no state yet
  ASSERT_TRUE(holder.ok());
  EXPECT_EQ(AllKeys().size(), 2u);
  EXPECT_EQ(store_->Erase(key_).status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(AllKeys().empty());
}

TEST_F(SessionStoreTest, TenantsDoNotSeeEachOther) {
  const SessionKey a{"tenant-a", "same-id"};
  const SessionKey b{"tenant-b", "same-id"};
  ASSERT_TRUE(RunTurn(*store_, a, "a's secret").ok());
  auto b_view = store_->Load(b, 0);
  ASSERT_TRUE(b_view.ok());
  EXPECT_FALSE(b_view->exists);
  EXPECT_TRUE(b_view->turns.empty());
  EXPECT_EQ(store_->Erase(b).status().code(), absl::StatusCode::kNotFound);
  auto b_turn = store_->AcquireAndLoad(b, 0, Soon());  // Not blocked by a's session.
  ASSERT_TRUE(b_turn.ok());
  EXPECT_FALSE(b_turn->session.exists);
  ASSERT_TRUE(store_->CommitAndRelease(b_turn->lease, 0, StateWithIntent("b"),
                                       TurnWithText("b's words"))
                  .ok());
  ASSERT_TRUE(store_->Erase(b).ok());
  auto a_view = store_->Load(a, 0);
  ASSERT_TRUE(a_view.ok());
  EXPECT_TRUE(a_view->exists);
  ASSERT_EQ(a_view->turns.size(), 1u);
  EXPECT_EQ(a_view->turns[0].user_text(), "a's secret");
}

TEST_F(SessionStoreTest, ScriptsAreReloadedAfterScriptFlush) {
  ASSERT_TRUE(RunTurn(*store_, key_, "before").ok());
  Raw({"SCRIPT", "FLUSH"});
  auto version = RunTurn(*store_, key_, "after");
  ASSERT_TRUE(version.ok()) << version.status();
  EXPECT_EQ(*version, 2u);
}

TEST_F(SessionStoreTest, CorruptRecordIsDataLoss) {
  Raw({"HSET", store_->KeyFor(key_, "state"), "record", "\xff\xff\xff", "version", "1"});
  EXPECT_EQ(store_->Load(key_, 0).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(store_->AcquireAndLoad(key_, 0, Soon()).status().code(), absl::StatusCode::kDataLoss);
  // The failed acquire did not leave the session locked.
  EXPECT_EQ(Raw({"EXISTS", store_->KeyFor(key_, "lease")}).integer, 0);
}

TEST_F(SessionStoreTest, CommitTimingOutIsUnavailableAndAllOrNothing) {
  ASSERT_TRUE(RunTurn(*store_, key_, "first").ok());
  RedisOptions options = OptionsFor(server());
  options.command_timeout = absl::Milliseconds(100);
  Pool impatient(options);
  RedisSessionStore store(impatient, {.key_prefix = "test", .max_turns = 100});
  auto acquired = store.AcquireAndLoad(key_, 0, Soon());
  ASSERT_TRUE(acquired.ok());
  // Writes (and scripts) stall until UNPAUSE (at most 5 s); the commit gives up after 100 ms.
  Raw({"CLIENT", "PAUSE", "5000", "WRITE"});
  auto version = store.CommitAndRelease(acquired->lease, 1, StateWithIntent("second"),
                                        TurnWithText("second"));
  ASSERT_FALSE(version.ok());
  EXPECT_EQ(version.status().code(), absl::StatusCode::kUnavailable) << version.status();
  Raw({"CLIENT", "UNPAUSE"});
  auto loaded = store_->Load(key_, 0);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  // Either the commit never ran or it ran whole; never a record without its turn.
  EXPECT_EQ(loaded->turns.size(), loaded->record.version());
  EXPECT_EQ(loaded->record.state().active_intent(), loaded->turns.back().user_text());
}

TEST(SessionStoreRedisDownTest, RedisDownIsUnavailableAndNothingIsHalfWritten) {
  // Persistence on, so that what was acknowledged survives the crash and restart.
  auto server = testutil::RedisServer::Start(
      {.extra_args = {"--appendonly", "yes", "--appendfsync", "always"}});
  ASSERT_TRUE(server.ok()) << server.status();
  RedisOptions redis_options = OptionsFor(**server);
  redis_options.command_timeout = absl::Milliseconds(500);
  Pool pool(redis_options);
  RedisSessionStore store(pool, {.key_prefix = "test",
                                 .max_turns = 1000,
                                 .lease_ttl = absl::Milliseconds(200)});
  const SessionKey key{"acme", "crash"};

  // Down before the commit: UNAVAILABLE, and the old state is intact after the restart.
  auto first = store.AcquireAndLoad(key, 0, Soon());
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(store.CommitAndRelease(first->lease, 0, StateWithIntent("kept"),
                                     TurnWithText("kept")).ok());
  auto second = store.AcquireAndLoad(key, 0, Soon());
  ASSERT_TRUE(second.ok());
  ASSERT_TRUE((*server)->Stop().ok());
  auto down = store.CommitAndRelease(second->lease, 1, StateWithIntent("lost"),
                                     TurnWithText("lost"));
  EXPECT_EQ(down.status().code(), absl::StatusCode::kUnavailable) << down.status();
  EXPECT_EQ(store.Ping().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(store.AcquireAndLoad(key, 0, Soon()).status().code(),
            absl::StatusCode::kUnavailable);
  ASSERT_TRUE((*server)->Restart().ok()) << (*server)->Log();
  EXPECT_TRUE(store.Ping().ok());
  auto after = store.Load(key, 0);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->record.version(), 1u);
  EXPECT_EQ(after->record.state().active_intent(), "kept");
  ASSERT_EQ(after->turns.size(), 1u);

  // Down while turns are being committed from several threads.
  std::atomic<int> acknowledged{static_cast<int>(after->record.version())};
  std::atomic<int> failed_commits{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; !stop.load(); ++i) {
        auto acquired = store.AcquireAndLoad(key, 0, absl::Now() + absl::Seconds(2));
        if (!acquired.ok()) continue;
        auto version = store.CommitAndRelease(acquired->lease, acquired->session.record.version(),
                                              StateWithIntent(absl::StrCat(t, "-", i)),
                                              TurnWithText(absl::StrCat(t, "-", i)));
        if (version.ok()) {
          ++acknowledged;
        } else {
          EXPECT_EQ(version.status().code(), absl::StatusCode::kUnavailable) << version.status();
          ++failed_commits;
        }
      }
    });
  }
  absl::Time give_up = absl::Now() + absl::Seconds(20);
  while (acknowledged.load() < 30 && absl::Now() < give_up) std::this_thread::yield();
  ASSERT_GE(acknowledged.load(), 30) << "turns did not commit; failed: " << failed_commits;
  ASSERT_TRUE((*server)->Stop().ok());
  stop = true;
  for (auto& thread : threads) thread.join();
  ASSERT_TRUE((*server)->Restart().ok()) << (*server)->Log();
  auto recovered = store.Load(key, 0);
  ASSERT_TRUE(recovered.ok()) << recovered.status();
  const uint64_t version = recovered->record.version();
  std::cerr << "crash during commits: acknowledged " << acknowledged << ", failed "
            << failed_commits << ", recovered version " << version << "\n";
  EXPECT_GE(version, static_cast<uint64_t>(acknowledged.load()));
  EXPECT_LE(version, static_cast<uint64_t>(acknowledged.load() + failed_commits.load()));
  ASSERT_EQ(recovered->turns.size(), version);
  for (size_t i = 0; i < recovered->turns.size(); ++i) {
    EXPECT_EQ(recovered->turns[i].index(), i);
  }
  EXPECT_EQ(recovered->record.state().active_intent(), recovered->turns.back().user_text());
  // And the store works again: a lease left by a crashed turn expires, then turns go on.
  auto next = store.AcquireAndLoad(key, 0, Soon());
  ASSERT_TRUE(next.ok()) << next.status();
  ASSERT_TRUE(store.CommitAndRelease(next->lease, version, StateWithIntent("again"),
                                     TurnWithText("again")).ok());
}

}  // namespace
}  // namespace helpline::session
