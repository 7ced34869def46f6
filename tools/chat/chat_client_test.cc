// ChatClient against an in-process fake ChatService/SessionService/HandoffService on a free
// loopback port.
#include <memory>
#include <mutex>
#include <sstream>
#include <string>

#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tools/chat/chat_lib.h"

namespace helpline::chat {
namespace {

constexpr char kKey[] = "k-123";

std::string AuthOf(const grpc::ServerContext& context) {
  auto it = context.client_metadata().find("authorization");
  if (it == context.client_metadata().end()) return "";
  return std::string(it->second.data(), it->second.size());
}

class FakeChat final : public v1::ChatService::Service {
 public:
  grpc::Status ConverseStream(grpc::ServerContext* context,
                              const v1::ConverseStreamRequest* request,
                              grpc::ServerWriter<v1::ConverseStreamResponse>* writer) override {
    {
      std::lock_guard lock(mu);
      last_session = request->session_id();
      last_text = request->text();
      last_auth = AuthOf(*context);
      had_deadline = context->deadline() != std::chrono::system_clock::time_point::max();
    }
    if (AuthOf(*context) != std::string("Bearer ") + kKey) {
      return {grpc::StatusCode::UNAUTHENTICATED, "unknown API key"};
    }
    if (request->text() == "break") return {grpc::StatusCode::UNAVAILABLE, "store down"};
    if (request->text() == "while accepted") {
      // A human owns the session: no deltas, an empty reply and the handoff.
      v1::ConverseStreamResponse only;
      v1::ConverseResponse* final_response = only.mutable_final();
      final_response->set_turn_index(4);
      final_response->set_finish_reason("handoff");
      final_response->mutable_handoff()->set_status(common::v1::HANDOFF_STATUS_ACCEPTED);
      final_response->mutable_handoff()->set_agent_id("alice");
      writer->Write(only);
      return grpc::Status::OK;
    }
    v1::ConverseStreamResponse message;
    for (const char* piece : {"Your order ", "ships ", "today."}) {
      message.set_delta(piece);
      writer->Write(message);
    }
    if (request->text() == "no final") return grpc::Status::OK;
    v1::ConverseResponse* final_response = message.mutable_final();
    final_response->set_reply("Your order ships today.");
    final_response->set_turn_index(2);
    final_response->mutable_state()->set_active_intent("track_order");
    final_response->mutable_state()->set_intent_confidence(0.5f);
    (*final_response->mutable_state()->mutable_slots())["order_id"].set_value("A-1234567");
    writer->Write(message);
    return grpc::Status::OK;
  }

  std::mutex mu;
  std::string last_session, last_text, last_auth;
  bool had_deadline = false;
};

class FakeSessions final : public v1::SessionService::Service {
 public:
  grpc::Status GetSession(grpc::ServerContext* context, const v1::GetSessionRequest* request,
                          v1::GetSessionResponse* response) override {
    if (request->session_id() != "s-1") return {grpc::StatusCode::NOT_FOUND, "no such session"};
    response->set_session_id("s-1");
    response->set_version(3);
    response->add_turns();
    response->add_turns();
    response->mutable_state()->set_escalate(true);
    response->mutable_state()->set_escalation_reason("customer_request");
    return grpc::Status::OK;
  }
};

class FakeHandoffs final : public v1::HandoffService::Service {
 public:
  grpc::Status GetHandoff(grpc::ServerContext*, const v1::GetHandoffRequest* request,
                          v1::GetHandoffResponse* response) override {
    if (request->session_id() != "s-1") {
      return {grpc::StatusCode::FAILED_PRECONDITION, "session 'x' has no handoff"};
    }
    response->mutable_handoff()->set_status(common::v1::HANDOFF_STATUS_INITIATED);
    response->mutable_handoff()->set_sequence(1);
    response->mutable_handoff()->set_reason("customer_request");
    response->mutable_handoff()->mutable_summary()->set_text("Known: order_id=1.");
    return grpc::Status::OK;
  }
  grpc::Status AcceptHandoff(grpc::ServerContext*, const v1::AcceptHandoffRequest* request,
                             v1::AcceptHandoffResponse* response) override {
    response->mutable_handoff()->set_status(common::v1::HANDOFF_STATUS_ACCEPTED);
    response->mutable_handoff()->set_agent_id(request->agent_id());
    response->mutable_handoff()->set_sequence(1);
    response->mutable_handoff()->set_reason("customer_request");
    response->mutable_handoff()->mutable_summary()->set_text("not shown after an accept");
    return grpc::Status::OK;
  }
  grpc::Status ReleaseHandoff(grpc::ServerContext*, const v1::ReleaseHandoffRequest*,
                              v1::ReleaseHandoffResponse*) override {
    return {grpc::StatusCode::FAILED_PRECONDITION, "no handoff to release"};
  }
};

class ChatClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&chat_);
    builder.RegisterService(&sessions_);
    builder.RegisterService(&handoffs_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port_, 0);
    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(port_),
                                   grpc::InsecureChannelCredentials());
  }
  void TearDown() override { server_->Shutdown(); }

  FakeChat chat_;
  FakeSessions sessions_;
  FakeHandoffs handoffs_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(ChatClientTest, StreamsDeltasThenState) {
  ChatClient client(channel_, kKey, 10);
  std::ostringstream out;
  grpc::Status status = client.Turn("s-1", "where is my order?", out);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(out.str(),
            "helpline: Your order ships today.\n"
            "  [turn 2] intent=track_order (0.50) slots: order_id=A-1234567 missing: - "
            "escalate: no\n");
  std::lock_guard lock(chat_.mu);
  EXPECT_EQ(chat_.last_session, "s-1");
  EXPECT_EQ(chat_.last_text, "where is my order?");
  EXPECT_EQ(chat_.last_auth, "Bearer k-123");
  EXPECT_TRUE(chat_.had_deadline);
}

TEST_F(ChatClientTest, WrongKeyPrintsTheCode) {
  ChatClient client(channel_, "wrong", 10);
  std::ostringstream out;
  grpc::Status status = client.Turn("s-1", "hi", out);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(out.str(), "error: UNAUTHENTICATED: unknown API key\n");
}

TEST_F(ChatClientTest, ServerErrorAndMissingFinal) {
  ChatClient client(channel_, kKey, 10);
  std::ostringstream out;
  EXPECT_EQ(client.Turn("s-1", "break", out).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(out.str(), "error: UNAVAILABLE: store down\n");
  std::ostringstream out2;
  EXPECT_EQ(client.Turn("s-1", "no final", out2).error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_NE(out2.str().find("without a final message"), std::string::npos) << out2.str();
}

TEST_F(ChatClientTest, ShowState) {
  ChatClient client(channel_, kKey, 10);
  std::ostringstream out;
  ASSERT_TRUE(client.ShowState("s-1", out).ok());
  EXPECT_EQ(out.str(),
            "session s-1, 3 turns committed, 2 stored\n"
            "  intent=- slots: - missing: - escalate: yes (customer_request)\n");
  std::ostringstream missing;
  EXPECT_EQ(client.ShowState("nope", missing).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(missing.str(), "error: NOT_FOUND: no such session\n");
}

TEST_F(ChatClientTest, TurnWhileAHumanOwnsTheSessionAndHandoffCommands) {
  ChatClient client(channel_, kKey, 10);
  std::ostringstream out;
  ASSERT_TRUE(client.Turn("s-1", "while accepted", out).ok());
  EXPECT_EQ(out.str(),
            "  [turn 4] intent=- slots: - missing: - escalate: no finish: handoff\n"
            "  (no bot reply: agent alice has this conversation; your message is in the "
            "transcript)\n");
  std::ostringstream shown;
  ASSERT_TRUE(client.ShowHandoff("s-1", shown).ok());
  EXPECT_EQ(shown.str(),
            "  [handoff #1 initiated (customer_request)]\n  summary: Known: order_id=1.\n");
  std::ostringstream accepted;
  ASSERT_TRUE(client.AcceptHandoff("s-1", "bob", accepted).ok());
  EXPECT_EQ(accepted.str(), "  [handoff #1 accepted by bob (customer_request)]\n");
  std::ostringstream refused;
  EXPECT_EQ(client.ReleaseHandoff("s-1", "", refused).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(refused.str(), "error: FAILED_PRECONDITION: no handoff to release\n");
}

}  // namespace
}  // namespace helpline::chat
