#include "tools/chat/chat_lib.h"

#include <cstdio>
#include <fstream>
#include <string>

#include "gtest/gtest.h"

namespace helpline::chat {
namespace {

std::string WriteTemp(const std::string& text) {
  char path[] = "/tmp/helpline-chat-envXXXXXX";
  int fd = mkstemp(path);
  EXPECT_GE(fd, 0);
  close(fd);
  std::ofstream(path) << text;
  return path;
}

TEST(ReadEnvFileTest, ReadsKeyValueLines) {
  std::string path = WriteTemp(
      "# comment\n\nHELPLINE_GRPC=127.0.0.1:50051\nexport HELPLINE_API_KEY=\"abc\"\n"
      "EMPTY=\nURL=redis://h:1/0?a=b\n");
  auto values = ReadEnvFile(path);
  ASSERT_TRUE(values.ok()) << values.status();
  EXPECT_EQ(values->at("HELPLINE_GRPC"), "127.0.0.1:50051");
  EXPECT_EQ(values->at("HELPLINE_API_KEY"), "abc");
  EXPECT_EQ(values->at("EMPTY"), "");
  EXPECT_EQ(values->at("URL"), "redis://h:1/0?a=b");
  EXPECT_EQ(values->size(), 4u);
  std::remove(path.c_str());
}

TEST(ReadEnvFileTest, NamesTheBadLine) {
  std::string path = WriteTemp("A=1\nnot a pair\n");
  auto values = ReadEnvFile(path);
  ASSERT_FALSE(values.ok());
  EXPECT_EQ(values.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(values.status().message().find(":2:"), std::string::npos) << values.status();
  std::remove(path.c_str());
}

TEST(ReadEnvFileTest, MissingFileIsNotFound) {
  EXPECT_EQ(ReadEnvFile("/nonexistent/stack.env").status().code(),
            absl::StatusCode::kNotFound);
}

TEST(ParseCommandTest, Commands) {
  EXPECT_EQ(ParseCommand("  hello there ").kind, Command::Kind::kText);
  EXPECT_EQ(ParseCommand("  hello there ").arg, "hello there");
  EXPECT_EQ(ParseCommand("").kind, Command::Kind::kEmpty);
  EXPECT_EQ(ParseCommand("   ").kind, Command::Kind::kEmpty);
  EXPECT_EQ(ParseCommand("/quit").kind, Command::Kind::kQuit);
  EXPECT_EQ(ParseCommand("/exit").kind, Command::Kind::kQuit);
  EXPECT_EQ(ParseCommand("/state").kind, Command::Kind::kState);
  EXPECT_EQ(ParseCommand("/help").kind, Command::Kind::kHelp);
  Command session = ParseCommand("/session  s-42 ");
  EXPECT_EQ(session.kind, Command::Kind::kSession);
  EXPECT_EQ(session.arg, "s-42");
  EXPECT_EQ(ParseCommand("/session").arg, "");
  Command unknown = ParseCommand("/frobnicate x");
  EXPECT_EQ(unknown.kind, Command::Kind::kUnknown);
  EXPECT_EQ(unknown.arg, "/frobnicate");
}

TEST(NewSessionIdTest, FormatAndDistinct) {
  std::string a = NewSessionId();
  std::string b = NewSessionId();
  EXPECT_EQ(a.size(), 17u);
  EXPECT_EQ(a.rfind("chat-", 0), 0u);
  EXPECT_NE(a, b);
}

TEST(FormatStateTest, IntentSlotsEscalation) {
  common::v1::DialogueState state;
  EXPECT_EQ(FormatState(state), "intent=- slots: - missing: - escalate: no");
  state.set_active_intent("track_order");
  state.set_intent_confidence(0.914f);
  (*state.mutable_slots())["order_id"].set_value("A-1234567");
  (*state.mutable_slots())["email"].set_value("a@b.c");
  state.add_missing_slots("postcode");
  state.set_escalate(true);
  state.set_escalation_reason("customer_request");
  EXPECT_EQ(FormatState(state),
            "intent=track_order (0.91) slots: email=a@b.c, order_id=A-1234567 "
            "missing: postcode escalate: yes (customer_request)");
}

TEST(FormatTurnInfoTest, DegradedAndFinish) {
  v1::ConverseResponse response;
  response.set_turn_index(3);
  response.set_degraded(true);
  response.add_degraded_stages("generation");
  response.set_finish_reason("length");
  EXPECT_EQ(FormatTurnInfo(response),
            "[turn 3] intent=- slots: - missing: - escalate: no degraded: generation "
            "finish: length");
}

TEST(ParseCommandTest, HandoffCommands) {
  EXPECT_EQ(ParseCommand("/handoff").kind, Command::Kind::kHandoff);
  Command accept = ParseCommand("/accept  alice ");
  EXPECT_EQ(accept.kind, Command::Kind::kAccept);
  EXPECT_EQ(accept.arg, "alice");
  EXPECT_EQ(ParseCommand("/accept").arg, "");
  EXPECT_EQ(ParseCommand("/release").kind, Command::Kind::kRelease);
}

TEST(FormatHandoffTest, StatusAgentAndSummary) {
  common::v1::Handoff handoff;
  handoff.set_sequence(2);
  handoff.set_status(common::v1::HANDOFF_STATUS_ACCEPTED);
  handoff.set_agent_id("alice");
  handoff.set_reason("customer_request");
  handoff.mutable_summary()->set_text("Intent: refund.");
  EXPECT_EQ(FormatHandoff(handoff),
            "  [handoff #2 accepted by alice (customer_request)]\n  summary: Intent: refund.\n");

  v1::ConverseResponse response;
  EXPECT_EQ(FormatTurnHandoff(response), "");
  *response.mutable_handoff() = handoff;
  response.set_finish_reason("handoff");
  EXPECT_EQ(FormatTurnHandoff(response),
            "  (no bot reply: agent alice has this conversation; your message is in the "
            "transcript)\n");
  response.mutable_handoff()->set_status(common::v1::HANDOFF_STATUS_INITIATED);
  EXPECT_NE(FormatTurnHandoff(response).find("waiting for a human agent"), std::string::npos);
  // The turn that handed over shows the handoff and its summary.
  response.set_finish_reason("stop");
  response.mutable_handoff()->set_sequence(1);
  EXPECT_EQ(FormatTurnHandoff(response),
            "  [handoff #1 initiated (customer_request)]\n  summary: Intent: refund.\n");
}

}  // namespace
}  // namespace helpline::chat
