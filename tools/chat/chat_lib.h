// Pieces of helpline-chat that do not need a server: reading .run/stack.env, parsing the
// commands typed at the prompt, formatting the dialogue state.
#pragma once

#include <map>
#include <memory>
#include <ostream>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "grpcpp/grpcpp.h"
#include "helpline/chat/v1/chat_service.grpc.pb.h"
#include "helpline/common/v1/types.pb.h"

namespace helpline::chat {

// Reads KEY=VALUE lines (blank lines and lines starting with '#' are skipped; an optional
// "export " prefix and surrounding quotes are removed). NOT_FOUND when the file cannot be
// read; INVALID_ARGUMENT naming the line when a line has no '='.
absl::StatusOr<std::map<std::string, std::string>> ReadEnvFile(const std::string& path);

// The stack.env to use: ./.run/stack.env if it exists, else <repo>/.run/stack.env where the
// repo is two levels above the folder of `exe_path` (build/bin/helpline-chat). Empty if
// neither exists.
std::string FindStackEnv(const std::string& exe_path);

// What a line typed at the prompt asks for.
struct Command {
  enum class Kind {
    kText, kQuit, kSession, kState, kHandoff, kAccept, kRelease, kHelp, kEmpty, kUnknown
  };
  Kind kind = Kind::kEmpty;
  // kText: the text; kSession: the new session id (empty: make one); kAccept / kRelease:
  // the agent id (kAccept: empty means the default); kUnknown: the command.
  std::string arg;
};

// "/quit" or "/exit", "/session [ID]", "/state", "/handoff", "/accept [AGENT]",
// "/release [AGENT]", "/help"; anything else not starting with '/' is text for the next turn.
// Leading and trailing whitespace is ignored.
Command ParseCommand(absl::string_view line);

// A new random session id, "chat-" followed by 12 hex digits.
std::string NewSessionId();

// One line about the state after a turn, e.g.
// "intent=track_order (0.91) slots: order_id=A-1234567 missing: - escalate: no".
std::string FormatState(const common::v1::DialogueState& state);

// The state line plus turn index, degraded stages and finish reason of a response.
std::string FormatTurnInfo(const v1::ConverseResponse& response);

// Lines about a handoff, each starting with two spaces, e.g.
// "  [handoff #1 accepted by alice (customer_request)]\n  summary: Handed over ...\n"
// (the summary line only when `with_summary` and the handoff has one).
std::string FormatHandoff(const common::v1::Handoff& handoff, bool with_summary = true);

// What a turn's response says about the handoff: nothing without one; for a turn that got
// no bot reply because a human owns the session, a line saying so; for the turn that handed
// over, the handoff and its summary.
std::string FormatTurnHandoff(const v1::ConverseResponse& response);

// The name of a gRPC status code, e.g. "UNAUTHENTICATED".
const char* StatusCodeName(grpc::StatusCode code);

// Calls ChatService.ConverseStream, SessionService.GetSession and HandoffService with the API
// key in the `authorization` metadata and a deadline on every call; writes what it gets to `out`.
class ChatClient {
 public:
  ChatClient(std::shared_ptr<grpc::Channel> channel, std::string api_key, int timeout_seconds);

  // One turn: writes "helpline: " and each delta as it arrives (flushed), then a line
  // "  [turn N] intent=..." from the final message; "error: CODE: message" on failure.
  // Returns the call's status.
  grpc::Status Turn(const std::string& session_id, const std::string& text, std::ostream& out);

  // Writes the session's version, stored turns and state, or "error: CODE: message".
  grpc::Status ShowState(const std::string& session_id, std::ostream& out);

  // The helpdesk's side (HandoffService), for demos: writes the handoff after the call (with
  // its summary for ShowHandoff), or "error: CODE: message".
  grpc::Status ShowHandoff(const std::string& session_id, std::ostream& out);
  grpc::Status AcceptHandoff(const std::string& session_id, const std::string& agent_id,
                             std::ostream& out);
  grpc::Status ReleaseHandoff(const std::string& session_id, const std::string& agent_id,
                              std::ostream& out);

 private:
  void Prepare(grpc::ClientContext& context) const;

  std::unique_ptr<v1::ChatService::Stub> chat_;
  std::unique_ptr<v1::SessionService::Stub> sessions_;
  std::unique_ptr<v1::HandoffService::Stub> handoffs_;
  std::string api_key_;
  int timeout_seconds_;
};

}  // namespace helpline::chat
