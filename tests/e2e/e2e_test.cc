// End-to-end tests: the five real binaries on loopback with a real redis-server (Stack of
// tests/testing/process_fixture.h), driven through the public gRPC and HTTP APIs.
//
// One Stack serves the whole suite; tests that kill, stop or restart a process leave the
// repair to the next test's SetUp (Stack::EnsureHealthy), so a failure does not cascade.
#include <hiredis/hiredis.h>
#include <signal.h>

#include <algorithm>
#include <iostream>
#include <atomic>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "helpline/chat/v1/chat_service.grpc.pb.h"
#include "nlohmann/json.hpp"
#include "tests/testing/process_fixture.h"

namespace helpline::e2e {
namespace {

using chat::v1::ChatService;
using chat::v1::ConverseRequest;
using chat::v1::ConverseResponse;
using chat::v1::ConverseStreamRequest;
using chat::v1::ConverseStreamResponse;
using chat::v1::GetSessionRequest;
using chat::v1::GetSessionResponse;
using chat::v1::SessionService;
using testutil::HttpResponse;
using testutil::ServiceProcess;
using testutil::Stack;

constexpr char kTenantA[] = "tenant-a";
constexpr char kTenantB[] = "tenant-b";

bool Contains(const google::protobuf::RepeatedPtrField<std::string>& list,
              absl::string_view value) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

// The slot whose value contains `needle`, or "" when none does.
std::string SlotHolding(const common::v1::DialogueState& state, absl::string_view needle) {
  for (const auto& [name, slot] : state.slots()) {
    if (absl::StrContains(slot.value(), needle)) return name;
  }
  return "";
}

// A direct Redis connection, to look at keys the gateway writes. Reconnects after errors.
class RedisPeek {
 public:
  explicit RedisPeek(int port) : port_(port) {}
  ~RedisPeek() {
    if (context_ != nullptr) redisFree(context_);
  }
  bool Exists(const std::string& key) {
    if (context_ != nullptr && context_->err != 0) {
      error_ = context_->errstr;
      redisFree(context_);
      context_ = nullptr;
    }
    if (context_ == nullptr) {
      timeval timeout{2, 0};
      context_ = redisConnectWithTimeout("127.0.0.1", port_, timeout);
      if (context_ == nullptr) return false;
      if (context_->err != 0) return false;
      redisSetTimeout(context_, timeout);
    }
    auto* reply = static_cast<redisReply*>(redisCommand(context_, "EXISTS %b", key.data(),
                                                        key.size()));
    bool exists = reply != nullptr && reply->type == REDIS_REPLY_INTEGER && reply->integer > 0;
    if (reply != nullptr && reply->type == REDIS_REPLY_ERROR) error_ = reply->str;
    if (reply != nullptr) freeReplyObject(reply);
    return exists;
  }
  const std::string& error() const { return error_; }

 private:
  const int port_;
  redisContext* context_ = nullptr;
  std::string error_;
};

std::string LeaseKey(absl::string_view tenant, absl::string_view session) {
  return absl::StrCat("helpline:{", tenant, ":", session, "}:lease");
}

class E2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    testutil::StackOptions options;
    options.tenants = {kTenantA, kTenantB};
    // A turn that dies with Redis leaves its lease behind; keep it short so that the
    // session is usable again soon after Redis returns.
    options.gateway_sets = {"store.lease_ttl=4s"};
    absl::StatusOr<std::unique_ptr<Stack>> stack = Stack::Start(options);
    if (stack.ok()) {
      stack_ = std::move(*stack).release();
    } else {
      start_error_ = new std::string(stack.status().ToString());
    }
  }
  static void TearDownTestSuite() {
    delete stack_;
    stack_ = nullptr;
  }

  void SetUp() override {
    ASSERT_EQ(start_error_, nullptr) << *start_error_;
    absl::Status healthy = stack_->EnsureHealthy();
    ASSERT_TRUE(healthy.ok()) << healthy;
    Reconnect();
  }

  void TearDown() override {
    if (HasFailure() && stack_ != nullptr) std::cerr << stack_->Logs(3000);
  }

  // New channel and stubs, e.g. after the gateway restarted on the same ports.
  void Reconnect() {
    channel_ = stack_->NewChannel();
    chat_ = ChatService::NewStub(channel_);
    sessions_ = SessionService::NewStub(channel_);
  }

  static std::string NewSessionId(absl::string_view prefix) {
    return absl::StrCat(prefix, "-", testutil::RandomHex(6));
  }

  static void Prepare(grpc::ClientContext& context, absl::string_view tenant,
                      absl::Duration timeout = absl::Seconds(30)) {
    context.AddMetadata("authorization", stack_->bearer(tenant));
    context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  }

  grpc::Status Converse(absl::string_view tenant, const std::string& session,
                        const std::string& text, ConverseResponse* response) {
    ConverseRequest request;
    request.set_session_id(session);
    request.set_text(text);
    grpc::ClientContext context;
    Prepare(context, tenant);
    return chat_->Converse(&context, request, response);
  }

  grpc::Status GetSession(absl::string_view tenant, const std::string& session,
                          GetSessionResponse* response) {
    GetSessionRequest request;
    request.set_session_id(session);
    grpc::ClientContext context;
    Prepare(context, tenant);
    return sessions_->GetSession(&context, request, response);
  }

  // POST /v1/chat/completions with one user message.
  absl::StatusOr<HttpResponse> HttpChat(absl::string_view tenant, const std::string& session,
                                        const std::string& text) {
    nlohmann::json body = {{"model", "helpline"},
                           {"messages", {{{"role", "user"}, {"content", text}}}}};
    std::map<std::string, std::string> headers = {{"Authorization", stack_->bearer(tenant)}};
    if (!session.empty()) headers["X-Helpline-Session"] = session;
    return testutil::HttpCall(stack_->http_port(), "POST", "/v1/chat/completions",
                              body.dump(), headers);
  }

  // Waits until `keys` all exist in Redis (the gateway holds these sessions' leases).
  static bool WaitForKeys(const std::vector<std::string>& keys, absl::Duration timeout) {
    RedisPeek redis(stack_->redis().port());
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      if (std::all_of(keys.begin(), keys.end(),
                      [&](const std::string& key) { return redis.Exists(key); })) {
        return true;
      }
      absl::SleepFor(absl::Milliseconds(10));
    }
    std::cerr << "WaitForKeys: missing after " << timeout << " on redis port "
              << stack_->redis().port() << ":";
    for (const std::string& key : keys) {
      if (!redis.Exists(key)) std::cerr << " " << key;
    }
    std::cerr << " (last error: " << redis.error() << ")\n";
    return false;
  }

  // A stored session is never half-written: the record's version counts the stored turns
  // (while under the history cap) and the turns are numbered 0..version-1 in order.
  static void ExpectConsistent(const GetSessionResponse& session) {
    ASSERT_EQ(static_cast<uint64_t>(session.turns_size()), session.version());
    for (int i = 0; i < session.turns_size(); ++i) {
      EXPECT_EQ(session.turns(i).index(), static_cast<uint32_t>(i));
    }
    EXPECT_EQ(session.state().turn_count(), session.version());
  }

  static Stack* stack_;
  static std::string* start_error_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<ChatService::Stub> chat_;
  std::unique_ptr<SessionService::Stub> sessions_;
};

Stack* E2eTest::stack_ = nullptr;
std::string* E2eTest::start_error_ = nullptr;

TEST_F(E2eTest, MultiTurnConversationSurvivesGatewayRestart) {
  const std::string session = NewSessionId("restart");
  ConverseResponse first;
  grpc::Status status = Converse(kTenantA, session, "Where is my order?", &first);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(first.session_id(), session);
  EXPECT_EQ(first.turn_index(), 0u);
  EXPECT_FALSE(first.reply().empty());
  EXPECT_FALSE(first.degraded());
  EXPECT_FALSE(first.state().active_intent().empty());

  ConverseResponse second;
  status = Converse(kTenantA, session, "The order number is A-1234567", &second);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(second.turn_index(), 1u);
  const std::string slot = SlotHolding(second.state(), "1234567");
  ASSERT_FALSE(slot.empty()) << second.state().DebugString();
  EXPECT_EQ(second.state().active_intent(), first.state().active_intent());

  // A clean stop: SIGTERM, exit code 0; then the same ports again.
  absl::StatusOr<int> code = stack_->gateway().Terminate();
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0);
  absl::Status restarted = stack_->gateway().Restart();
  ASSERT_TRUE(restarted.ok()) << restarted;
  Reconnect();

  ConverseResponse third;
  status = Converse(kTenantA, session, "Any news about it?", &third);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(third.turn_index(), 2u);
  EXPECT_EQ(SlotHolding(third.state(), "1234567"), slot) << third.state().DebugString();

  GetSessionResponse stored;
  status = GetSession(kTenantA, session, &stored);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(stored.version(), 3u);
  ASSERT_EQ(stored.turns_size(), 3);
  EXPECT_TRUE(absl::StrContains(stored.turns(1).user_text(), "A-1234567"));
  EXPECT_EQ(stored.turns(2).reply(), third.reply());
  ExpectConsistent(stored);

  // The HTTP API sees the same session.
  absl::StatusOr<HttpResponse> http = HttpChat(kTenantA, session, "And when will it arrive?");
  ASSERT_TRUE(http.ok()) << http.status();
  ASSERT_EQ(http->status, 200) << http->body;
  nlohmann::json body = nlohmann::json::parse(http->body, nullptr, false);
  ASSERT_FALSE(body.is_discarded()) << http->body;
  EXPECT_EQ(body["object"], "chat.completion");
  EXPECT_FALSE(body["choices"][0]["message"]["content"].get<std::string>().empty());
  status = GetSession(kTenantA, session, &stored);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(stored.version(), 4u);
}

// A transaction waiting for the customer's yes is asked about in the domain's own words
// (the confirm template repeats the order number), never in the model's: the stack runs the
// model, and a paraphrase could misstate what is about to be done. A "no" is answered by the
// declined template.
TEST_F(E2eTest, ACancellationIsConfirmedInTheDomainsOwnWords) {
  const std::string session = NewSessionId("cancel");
  ConverseResponse ask;
  grpc::Status status = Converse(kTenantA, session, "Please cancel my order A-2468024", &ask);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(ask.state().confirmation(), common::v1::CONFIRMATION_STATUS_PENDING)
      << ask.state().DebugString();
  EXPECT_FALSE(SlotHolding(ask.state(), "2468024").empty()) << ask.state().DebugString();
  EXPECT_TRUE(absl::StrContains(ask.reply(), "2468024")) << ask.reply();
  EXPECT_TRUE(absl::StrContains(ask.reply(), "Please answer yes or no.")) << ask.reply();
  EXPECT_FALSE(ask.degraded());

  ConverseResponse no;
  status = Converse(kTenantA, session, "no", &no);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(no.state().confirmation(), common::v1::CONFIRMATION_STATUS_DECLINED)
      << no.state().DebugString();
  EXPECT_TRUE(absl::StrContains(no.reply(), "nothing has been cancelled")) << no.reply();
}

TEST_F(E2eTest, TwoTurnsSentAtOnceAreBothCommittedInOrder) {
  const std::string session = NewSessionId("concurrent");
  const std::vector<std::string> texts = {"first: where is my order?",
                                          "second: my order number is 87654321"};
  std::vector<grpc::Status> statuses(2);
  std::vector<ConverseResponse> responses(2);
  std::atomic<int> arrived{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i) {
    threads.emplace_back([&, i] {
      arrived.fetch_add(1);
      while (arrived.load() < 2) std::this_thread::yield();
      statuses[i] = Converse(kTenantA, session, texts[i], &responses[i]);
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(statuses[i].ok()) << i << ": " << statuses[i].error_message();
  }
  std::set<uint32_t> indexes = {responses[0].turn_index(), responses[1].turn_index()};
  EXPECT_EQ(indexes, (std::set<uint32_t>{0, 1}));

  GetSessionResponse stored;
  grpc::Status status = GetSession(kTenantA, session, &stored);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(stored.version(), 2u);
  ASSERT_EQ(stored.turns_size(), 2);
  ExpectConsistent(stored);
  // Both turns are stored, in the order they were committed.
  const int first = responses[0].turn_index() == 0 ? 0 : 1;
  EXPECT_TRUE(absl::StrContains(stored.turns(0).user_text(), texts[first].substr(0, 5)));
  EXPECT_TRUE(absl::StrContains(stored.turns(1).user_text(), texts[1 - first].substr(0, 5)));
  EXPECT_EQ(stored.turns(0).reply(), responses[first].reply());
  EXPECT_EQ(stored.turns(1).reply(), responses[1 - first].reply());
  // The later turn saw the earlier one's state.
  EXPECT_EQ(responses[1 - first].state().turn_count(), 2u);
}

TEST_F(E2eTest, TenantsCannotSeeEachOthersSessions) {
  const std::string session = NewSessionId("tenant");
  ConverseResponse response;
  grpc::Status status = Converse(kTenantA, session, "My order A-7654321 is late", &response);
  ASSERT_TRUE(status.ok()) << status.error_message();

  GetSessionResponse stored;
  status = GetSession(kTenantB, session, &stored);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND) << status.error_message();
  {
    chat::v1::DeleteSessionRequest request;
    request.set_session_id(session);
    chat::v1::DeleteSessionResponse deleted;
    grpc::ClientContext context;
    Prepare(context, kTenantB);
    status = sessions_->DeleteSession(&context, request, &deleted);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND) << status.error_message();
  }
  // Over HTTP, tenant B naming the same session id talks in a session of its own.
  absl::StatusOr<HttpResponse> http = HttpChat(kTenantB, session, "Where is my order?");
  ASSERT_TRUE(http.ok()) << http.status();
  ASSERT_EQ(http->status, 200) << http->body;
  nlohmann::json body = nlohmann::json::parse(http->body, nullptr, false);
  ASSERT_FALSE(body.is_discarded()) << http->body;
  EXPECT_EQ(body["helpline"].value("turn_index", -1), 0) << http->body;
  EXPECT_TRUE(body["helpline"]["state"]["slots"].empty() ||
              !absl::StrContains(body["helpline"]["state"]["slots"].dump(), "7654321"))
      << http->body;

  // Tenant A's session is untouched.
  status = GetSession(kTenantA, session, &stored);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(stored.version(), 1u);
  EXPECT_FALSE(SlotHolding(stored.state(), "7654321").empty());
  // And B's own session holds only B's turn.
  status = GetSession(kTenantB, session, &stored);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(stored.version(), 1u);
  EXPECT_TRUE(SlotHolding(stored.state(), "7654321").empty());
}

TEST_F(E2eTest, KilledPreprocessDegradesTheTurn) {
  const std::string session = NewSessionId("nopre");
  ConverseResponse response;
  ASSERT_TRUE(Converse(kTenantA, session, "Where is my order?", &response).ok());
  ASSERT_TRUE(stack_->service("preprocess").Kill().ok());

  grpc::Status status = Converse(kTenantA, session, "It is order 12345678", &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(response.degraded());
  EXPECT_TRUE(Contains(response.degraded_stages(), "preprocess"));
  EXPECT_FALSE(response.reply().empty());
  EXPECT_EQ(response.turn_index(), 1u);

  GetSessionResponse stored;
  status = GetSession(kTenantA, session, &stored);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(stored.version(), 2u);
  ASSERT_EQ(stored.turns_size(), 2);
  EXPECT_TRUE(Contains(stored.turns(1).degraded_stages(), "preprocess"));
  ExpectConsistent(stored);

  // Back on its port, preprocess serves again (stateless turns write nothing).
  ASSERT_TRUE(stack_->service("preprocess").Restart().ok());
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  bool recovered = false;
  while (!recovered && absl::Now() < deadline) {
    ConverseResponse probe;
    status = Converse(kTenantA, "", "hello", &probe);
    recovered = status.ok() && !Contains(probe.degraded_stages(), "preprocess");
    if (!recovered) absl::SleepFor(absl::Milliseconds(200));
  }
  EXPECT_TRUE(recovered);
}

TEST_F(E2eTest, KilledGenerationFallsBackToTemplates) {
  const std::string session = NewSessionId("nogen");
  ASSERT_TRUE(stack_->service("generation").Kill().ok());

  ConverseResponse response;
  grpc::Status status = Converse(kTenantA, session, "Where is my order A-2345678?", &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(response.degraded());
  EXPECT_TRUE(Contains(response.degraded_stages(), "generation"));
  EXPECT_FALSE(response.reply().empty());

  // The state is committed even though the reply came from the fallback.
  GetSessionResponse stored;
  status = GetSession(kTenantA, session, &stored);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(stored.version(), 1u);
  ASSERT_EQ(stored.turns_size(), 1);
  EXPECT_EQ(stored.turns(0).reply(), response.reply());
  EXPECT_FALSE(SlotHolding(stored.state(), "2345678").empty()) << stored.state().DebugString();
}

TEST_F(E2eTest, KilledDstAnswersUnavailableAndLeavesTheSessionUnchanged) {
  const std::string session = NewSessionId("nodst");
  ConverseResponse response;
  ASSERT_TRUE(Converse(kTenantA, session, "Where is my order A-3456789?", &response).ok());
  GetSessionResponse before;
  ASSERT_TRUE(GetSession(kTenantA, session, &before).ok());
  ASSERT_TRUE(stack_->service("dst").Kill().ok());

  grpc::Status status = Converse(kTenantA, session, "I want a refund", &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  absl::StatusOr<HttpResponse> http = HttpChat(kTenantA, session, "I want a refund");
  ASSERT_TRUE(http.ok()) << http.status();
  EXPECT_EQ(http->status, 503) << http->body;
  nlohmann::json body = nlohmann::json::parse(http->body, nullptr, false);
  EXPECT_TRUE(!body.is_discarded() && body.contains("error")) << http->body;

  GetSessionResponse after;
  ASSERT_TRUE(GetSession(kTenantA, session, &after).ok());
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(before, after))
      << "before:\n" << before.DebugString() << "after:\n" << after.DebugString();
}

TEST_F(E2eTest, RedisDownAnswersUnavailableAndNothingIsHalfWritten) {
  const std::string session = NewSessionId("noredis");
  ConverseResponse response;
  ASSERT_TRUE(Converse(kTenantA, session, "Where is my order A-4567890?", &response).ok());
  GetSessionResponse before;
  ASSERT_TRUE(GetSession(kTenantA, session, &before).ok());

  // Hold a second turn inside the pipeline once it holds the lease (dst, the first stage
  // after the lease, stopped), then crash Redis under it: its commit cannot land.
  ASSERT_TRUE(stack_->service("dst").Signal(SIGSTOP).ok());
  grpc::Status held_status;
  std::thread held([&] {
    ConverseResponse ignored;
    held_status = Converse(kTenantA, session, "I want to cancel it", &ignored);
  });
  const bool leased = WaitForKeys({LeaseKey(kTenantA, session)}, absl::Seconds(10));
  ASSERT_TRUE(stack_->redis().Stop().ok());
  ASSERT_TRUE(stack_->service("dst").Signal(SIGCONT).ok());
  held.join();
  EXPECT_TRUE(leased);
  EXPECT_EQ(held_status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << held_status.error_message();

  // New turns fail fast while Redis is down.
  grpc::Status status = Converse(kTenantA, session, "Hello?", &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  absl::StatusOr<HttpResponse> http = HttpChat(kTenantA, session, "Hello?");
  ASSERT_TRUE(http.ok()) << http.status();
  EXPECT_EQ(http->status, 503) << http->body;

  // Back up (with its append-only file): the session is exactly what it was.
  absl::Status restarted = stack_->redis().Restart();
  ASSERT_TRUE(restarted.ok()) << restarted;
  GetSessionResponse after;
  status = GetSession(kTenantA, session, &after);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(before, after))
      << "before:\n" << before.DebugString() << "after:\n" << after.DebugString();
  ExpectConsistent(after);

  // The session takes turns again once the dead turn's lease has expired.
  status = Converse(kTenantA, session, "Is it there now?", &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.turn_index(), 1u);
}

TEST_F(E2eTest, SigtermDrainsInFlightTurns) {
  // Hold every turn inside the pipeline (dst stopped; the turn holds its session's lease by
  // then) so that they are surely in flight when the gateway gets SIGTERM.
  ASSERT_TRUE(stack_->service("dst").Signal(SIGSTOP).ok());
  constexpr int kUnary = 3;
  std::vector<std::string> sessions;
  std::vector<std::string> lease_keys;
  for (int i = 0; i <= kUnary; ++i) {
    sessions.push_back(NewSessionId("drain"));
    lease_keys.push_back(LeaseKey(kTenantA, sessions.back()));
  }
  std::vector<grpc::Status> statuses(kUnary);
  std::vector<ConverseResponse> responses(kUnary);
  std::vector<std::thread> threads;
  for (int i = 0; i < kUnary; ++i) {
    threads.emplace_back([&, i] {
      statuses[i] = Converse(kTenantA, sessions[i], "Where is my order 11223344?", &responses[i]);
    });
  }
  grpc::Status stream_status;
  std::string streamed;
  ConverseResponse stream_final;
  int finals = 0;
  threads.emplace_back([&] {
    ConverseStreamRequest request;
    request.set_session_id(sessions[kUnary]);
    request.set_text("I want to return my shoes");
    grpc::ClientContext context;
    Prepare(context, kTenantA);
    std::unique_ptr<grpc::ClientReader<ConverseStreamResponse>> reader =
        chat_->ConverseStream(&context, request);
    ConverseStreamResponse message;
    while (reader->Read(&message)) {
      if (message.has_final()) {
        ++finals;
        stream_final = message.final();
      } else {
        streamed += message.delta();
      }
    }
    stream_status = reader->Finish();
  });

  const bool in_flight = WaitForKeys(lease_keys, absl::Seconds(15));
  ServiceProcess& gateway = stack_->gateway();
  ASSERT_TRUE(gateway.Signal(SIGTERM).ok());
  // Only once the gateway says it is draining (or its HTTP side is gone) do the turns go on.
  auto is_draining = [&] {
    absl::StatusOr<HttpResponse> ready =
        testutil::HttpCall(gateway.http_port(), "GET", "/readyz", "", {}, absl::Seconds(5));
    return !ready.ok() || (ready->status == 503 && absl::StrContains(ready->body, "draining"));
  };
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  bool draining = is_draining();
  while (!draining && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
    draining = is_draining();
  }
  ASSERT_TRUE(stack_->service("dst").Signal(SIGCONT).ok());
  for (std::thread& thread : threads) thread.join();
  EXPECT_TRUE(in_flight);
  EXPECT_TRUE(draining);

  for (int i = 0; i < kUnary; ++i) {
    EXPECT_TRUE(statuses[i].ok()) << i << ": " << statuses[i].error_message();
    EXPECT_EQ(responses[i].turn_index(), 0u);
    EXPECT_FALSE(responses[i].reply().empty());
  }
  EXPECT_TRUE(stream_status.ok()) << stream_status.error_message();
  EXPECT_EQ(finals, 1);
  EXPECT_EQ(streamed, stream_final.reply());

  absl::StatusOr<int> code = gateway.WaitForExit(absl::Seconds(30));
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0) << gateway.LogTail();

  // Every drained turn was committed.
  ASSERT_TRUE(gateway.Restart().ok());
  Reconnect();
  for (const std::string& session : sessions) {
    GetSessionResponse stored;
    grpc::Status status = GetSession(kTenantA, session, &stored);
    ASSERT_TRUE(status.ok()) << session << ": " << status.error_message();
    EXPECT_EQ(stored.version(), 1u) << session;
  }
}

}  // namespace
}  // namespace helpline::e2e
