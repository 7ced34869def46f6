// Pieces of helpline-chat that do not need a server: reading .run/stack.env, parsing the
// commands typed at the prompt, formatting the dialogue state.
#pragma once

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "helpline/chat/v1/chat_service.pb.h"
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
  enum class Kind { kText, kQuit, kSession, kState, kHelp, kEmpty, kUnknown };
  Kind kind = Kind::kEmpty;
  // kText: the text; kSession: the new session id (empty: make one); kUnknown: the command.
  std::string arg;
};

// "/quit" or "/exit", "/session [ID]", "/state", "/help"; anything else not starting with
// '/' is text for the next turn. Leading and trailing whitespace is ignored.
Command ParseCommand(absl::string_view line);

// A new random session id, "chat-" followed by 12 hex digits.
std::string NewSessionId();

// One line about the state after a turn, e.g.
// "intent=track_order (0.91) slots: order_id=A-1234567 missing: - escalate: no".
std::string FormatState(const common::v1::DialogueState& state);

// The state line plus turn index, degraded stages and finish reason of a response.
std::string FormatTurnInfo(const v1::ConverseResponse& response);

}  // namespace helpline::chat
