#include "tools/chat/chat_lib.h"

#include <chrono>
#include <fstream>
#include <random>
#include <sstream>
#include <vector>

#include <sys/stat.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "common/status/status.h"

namespace helpline::chat {
namespace {

bool FileExists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string Unquote(absl::string_view value) {
  if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') &&
      value.back() == value.front()) {
    value = value.substr(1, value.size() - 2);
  }
  return std::string(value);
}

}  // namespace

absl::StatusOr<std::map<std::string, std::string>> ReadEnvFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::map<std::string, std::string> values;
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    absl::string_view text = absl::StripAsciiWhitespace(line);
    if (text.empty() || text.front() == '#') continue;
    absl::ConsumePrefix(&text, "export ");
    size_t eq = text.find('=');
    if (eq == absl::string_view::npos || eq == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", number, ": expected KEY=VALUE"));
    }
    values[std::string(absl::StripAsciiWhitespace(text.substr(0, eq)))] =
        Unquote(absl::StripAsciiWhitespace(text.substr(eq + 1)));
  }
  return values;
}

std::string FindStackEnv(const std::string& exe_path) {
  const std::string local = ".run/stack.env";
  if (FileExists(local)) return local;
  // <repo>/build/bin/helpline-chat -> <repo>/.run/stack.env
  std::string dir = exe_path;
  for (int up = 0; up < 3; ++up) {
    size_t slash = dir.find_last_of('/');
    if (slash == std::string::npos) return "";
    dir.resize(slash);
  }
  std::string candidate = absl::StrCat(dir.empty() ? "" : dir, "/.run/stack.env");
  return FileExists(candidate) ? candidate : "";
}

Command ParseCommand(absl::string_view line) {
  absl::string_view text = absl::StripAsciiWhitespace(line);
  if (text.empty()) return {Command::Kind::kEmpty, ""};
  if (text.front() != '/') return {Command::Kind::kText, std::string(text)};
  absl::string_view name = text;
  absl::string_view arg;
  size_t space = text.find_first_of(" \t");
  if (space != absl::string_view::npos) {
    name = text.substr(0, space);
    arg = absl::StripAsciiWhitespace(text.substr(space + 1));
  }
  if (name == "/quit" || name == "/exit") return {Command::Kind::kQuit, ""};
  if (name == "/session") return {Command::Kind::kSession, std::string(arg)};
  if (name == "/state") return {Command::Kind::kState, ""};
  if (name == "/handoff") return {Command::Kind::kHandoff, ""};
  if (name == "/accept") return {Command::Kind::kAccept, std::string(arg)};
  if (name == "/release") return {Command::Kind::kRelease, std::string(arg)};
  if (name == "/help") return {Command::Kind::kHelp, ""};
  return {Command::Kind::kUnknown, std::string(name)};
}

std::string NewSessionId() {
  std::random_device device;
  std::mt19937_64 rng((static_cast<uint64_t>(device()) << 32) ^ device());
  return absl::StrFormat("chat-%012x", rng() & 0xffffffffffffULL);
}

std::string FormatState(const common::v1::DialogueState& state) {
  std::string out;
  if (state.active_intent().empty()) {
    absl::StrAppend(&out, "intent=-");
  } else {
    absl::StrAppend(&out, "intent=", state.active_intent(),
                    absl::StrFormat(" (%.2f)", state.intent_confidence()));
  }
  // Slots sorted by name so that the line is stable.
  std::map<std::string, std::string> slots;
  for (const auto& [name, value] : state.slots()) slots[name] = value.value();
  std::vector<std::string> parts;
  for (const auto& [name, value] : slots) parts.push_back(absl::StrCat(name, "=", value));
  absl::StrAppend(&out, " slots: ", parts.empty() ? "-" : absl::StrJoin(parts, ", "));
  absl::StrAppend(&out, " missing: ",
                  state.missing_slots().empty() ? "-" : absl::StrJoin(state.missing_slots(), ", "));
  absl::StrAppend(&out, " escalate: ", state.escalate() ? "yes" : "no");
  if (state.escalate() && !state.escalation_reason().empty()) {
    absl::StrAppend(&out, " (", state.escalation_reason(), ")");
  }
  return out;
}

std::string FormatTurnInfo(const v1::ConverseResponse& response) {
  std::string out = absl::StrCat("[turn ", response.turn_index(), "] ",
                                 FormatState(response.state()));
  if (response.degraded()) {
    absl::StrAppend(&out, " degraded: ", absl::StrJoin(response.degraded_stages(), ", "));
  }
  if (!response.finish_reason().empty() && response.finish_reason() != "stop" &&
      response.finish_reason() != "eos") {
    absl::StrAppend(&out, " finish: ", response.finish_reason());
  }
  return out;
}

namespace {

const char* HandoffStatusWord(common::v1::HandoffStatus status) {
  switch (status) {
    case common::v1::HANDOFF_STATUS_INITIATED: return "initiated";
    case common::v1::HANDOFF_STATUS_ACCEPTED: return "accepted";
    case common::v1::HANDOFF_STATUS_RELEASED: return "released";
    default: return "none";
  }
}

}  // namespace

std::string FormatHandoff(const common::v1::Handoff& handoff, bool with_summary) {
  std::string out = absl::StrCat("  [handoff #", handoff.sequence(), " ",
                                 HandoffStatusWord(handoff.status()));
  if (handoff.status() == common::v1::HANDOFF_STATUS_ACCEPTED) {
    absl::StrAppend(&out, " by ", handoff.agent_id());
  }
  if (handoff.status() == common::v1::HANDOFF_STATUS_RELEASED &&
      !handoff.released_by().empty()) {
    absl::StrAppend(&out, " by ", handoff.released_by());
  }
  absl::StrAppend(&out, " (", handoff.reason().empty() ? "no reason" : handoff.reason(), ")]\n");
  if (with_summary && !handoff.summary().text().empty()) {
    absl::StrAppend(&out, "  summary: ", handoff.summary().text(), "\n");
  }
  return out;
}

std::string FormatTurnHandoff(const v1::ConverseResponse& response) {
  if (!response.has_handoff()) return "";
  const common::v1::Handoff& handoff = response.handoff();
  if (response.finish_reason() == "handoff") {
    if (handoff.status() == common::v1::HANDOFF_STATUS_ACCEPTED) {
      return absl::StrCat("  (no bot reply: agent ", handoff.agent_id(),
                          " has this conversation; your message is in the transcript)\n");
    }
    return "  (no bot reply: waiting for a human agent to accept the handoff; your message is "
           "in the transcript)\n";
  }
  return FormatHandoff(handoff);
}

namespace {

void WriteError(const grpc::Status& status, std::ostream& out) {
  out << "error: " << GrpcCodeName(status.error_code()) << ": " << status.error_message()
      << std::endl;
}

}  // namespace

ChatClient::ChatClient(std::shared_ptr<grpc::Channel> channel, std::string api_key,
                       int timeout_seconds)
    : chat_(v1::ChatService::NewStub(channel)),
      sessions_(v1::SessionService::NewStub(channel)),
      handoffs_(v1::HandoffService::NewStub(channel)),
      api_key_(std::move(api_key)),
      timeout_seconds_(timeout_seconds) {}

void ChatClient::Prepare(grpc::ClientContext& context) const {
  context.AddMetadata("authorization", absl::StrCat("Bearer ", api_key_));
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(timeout_seconds_));
}

grpc::Status ChatClient::Turn(const std::string& session_id, const std::string& text,
                              std::ostream& out) {
  grpc::ClientContext context;
  Prepare(context);
  v1::ConverseStreamRequest request;
  request.set_session_id(session_id);
  request.set_text(text);
  std::unique_ptr<grpc::ClientReader<v1::ConverseStreamResponse>> reader =
      chat_->ConverseStream(&context, request);
  v1::ConverseStreamResponse message;
  v1::ConverseResponse final_response;
  bool started = false;
  bool have_final = false;
  while (reader->Read(&message)) {
    if (message.has_final()) {
      final_response = message.final();
      have_final = true;
      continue;
    }
    if (!started) {
      out << "helpline: ";
      started = true;
    }
    out << message.delta() << std::flush;
  }
  grpc::Status status = reader->Finish();
  if (started) out << "\n";
  if (!status.ok()) {
    WriteError(status, out);
    return status;
  }
  if (!have_final) {
    grpc::Status missing(grpc::StatusCode::INTERNAL, "the stream ended without a final message");
    WriteError(missing, out);
    return missing;
  }
  // A reply that came only in the final message (no deltas) is written whole; a turn kept
  // for a human agent has none.
  if (!started && !final_response.reply().empty()) {
    out << "helpline: " << final_response.reply() << "\n";
  }
  out << "  " << FormatTurnInfo(final_response) << "\n"
      << FormatTurnHandoff(final_response) << std::flush;
  return status;
}

grpc::Status ChatClient::ShowState(const std::string& session_id, std::ostream& out) {
  grpc::ClientContext context;
  Prepare(context);
  v1::GetSessionRequest request;
  request.set_session_id(session_id);
  v1::GetSessionResponse response;
  grpc::Status status = sessions_->GetSession(&context, request, &response);
  if (!status.ok()) {
    WriteError(status, out);
    return status;
  }
  out << "session " << response.session_id() << ", " << response.version()
      << " turns committed, " << response.turns_size() << " stored\n  "
      << FormatState(response.state()) << std::endl;
  return status;
}

namespace {

// Runs one HandoffService call and writes the handoff it returns.
template <typename Request, typename Response, typename Method>
grpc::Status HandoffCall(v1::HandoffService::Stub& stub, Method method,
                         grpc::ClientContext& context, const Request& request,
                         bool with_summary, std::ostream& out) {
  Response response;
  grpc::Status status = (stub.*method)(&context, request, &response);
  if (!status.ok()) {
    WriteError(status, out);
    return status;
  }
  out << FormatHandoff(response.handoff(), with_summary) << std::flush;
  return status;
}

}  // namespace

grpc::Status ChatClient::ShowHandoff(const std::string& session_id, std::ostream& out) {
  grpc::ClientContext context;
  Prepare(context);
  v1::GetHandoffRequest request;
  request.set_session_id(session_id);
  return HandoffCall<v1::GetHandoffRequest, v1::GetHandoffResponse>(
      *handoffs_, &v1::HandoffService::Stub::GetHandoff, context, request, true, out);
}

grpc::Status ChatClient::AcceptHandoff(const std::string& session_id, const std::string& agent_id,
                                       std::ostream& out) {
  grpc::ClientContext context;
  Prepare(context);
  v1::AcceptHandoffRequest request;
  request.set_session_id(session_id);
  request.set_agent_id(agent_id);
  return HandoffCall<v1::AcceptHandoffRequest, v1::AcceptHandoffResponse>(
      *handoffs_, &v1::HandoffService::Stub::AcceptHandoff, context, request, false, out);
}

grpc::Status ChatClient::ReleaseHandoff(const std::string& session_id,
                                        const std::string& agent_id, std::ostream& out) {
  grpc::ClientContext context;
  Prepare(context);
  v1::ReleaseHandoffRequest request;
  request.set_session_id(session_id);
  request.set_agent_id(agent_id);
  return HandoffCall<v1::ReleaseHandoffRequest, v1::ReleaseHandoffResponse>(
      *handoffs_, &v1::HandoffService::Stub::ReleaseHandoff, context, request, false, out);
}

}  // namespace helpline::chat
