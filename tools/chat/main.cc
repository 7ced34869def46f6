// helpline-chat: a terminal client of helpline.chat.v1.ChatService. Each line typed is a
// turn; the reply is printed as it streams (ConverseStream), then the dialogue state.
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"
#include "helpline/chat/v1/chat_service.grpc.pb.h"
#include "tools/chat/chat_lib.h"

namespace helpline::chat {
namespace {

constexpr char kHelp[] =
    "Type a message and press Enter. Commands:\n"
    "  /session [ID]  continue in session ID, or a new session without ID\n"
    "  /state         the session's state and stored turns (SessionService.GetSession)\n"
    "  /quit          leave (also Ctrl-D)\n";

const char* CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return "OK";
    case grpc::StatusCode::CANCELLED: return "CANCELLED";
    case grpc::StatusCode::UNKNOWN: return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND: return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS: return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED: return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE: return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED: return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL: return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS: return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED: return "UNAUTHENTICATED";
    default: return "?";
  }
}

void PrintError(const grpc::Status& status) {
  std::cout << "error: " << CodeName(status.error_code()) << ": " << status.error_message()
            << std::endl;
}

class Client {
 public:
  Client(std::shared_ptr<grpc::Channel> channel, std::string key, int timeout_seconds)
      : chat_(v1::ChatService::NewStub(channel)),
        sessions_(v1::SessionService::NewStub(channel)),
        key_(std::move(key)),
        timeout_seconds_(timeout_seconds) {}

  // One turn: prints "helpline: " and the deltas as they arrive, then the state line.
  void Turn(const std::string& session_id, const std::string& text) {
    grpc::ClientContext context;
    Prepare(context);
    v1::ConverseStreamRequest request;
    request.set_session_id(session_id);
    request.set_text(text);
    std::unique_ptr<grpc::ClientReader<v1::ConverseStreamResponse>> reader =
        chat_->ConverseStream(&context, request);
    v1::ConverseStreamResponse message;
    bool started = false;
    bool have_final = false;
    v1::ConverseResponse final_response;
    while (reader->Read(&message)) {
      if (message.has_final()) {
        final_response = message.final();
        have_final = true;
        continue;
      }
      if (!started) {
        std::cout << "helpline: " << std::flush;
        started = true;
      }
      std::cout << message.delta() << std::flush;
    }
    grpc::Status status = reader->Finish();
    if (started) std::cout << "\n";
    if (!status.ok()) {
      PrintError(status);
      return;
    }
    if (!have_final) {
      std::cout << "error: the stream ended without a final message" << std::endl;
      return;
    }
    // A reply that came only in the final message (no deltas) is printed whole.
    if (!started) std::cout << "helpline: " << final_response.reply() << "\n";
    std::cout << "  " << FormatTurnInfo(final_response) << std::endl;
  }

  void ShowState(const std::string& session_id) {
    grpc::ClientContext context;
    Prepare(context);
    v1::GetSessionRequest request;
    request.set_session_id(session_id);
    v1::GetSessionResponse response;
    grpc::Status status = sessions_->GetSession(&context, request, &response);
    if (!status.ok()) {
      PrintError(status);
      return;
    }
    std::cout << "session " << response.session_id() << ", " << response.version()
              << " turns committed, " << response.turns_size() << " stored\n  "
              << FormatState(response.state()) << std::endl;
  }

 private:
  void Prepare(grpc::ClientContext& context) {
    context.AddMetadata("authorization", absl::StrCat("Bearer ", key_));
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(timeout_seconds_));
  }

  std::unique_ptr<v1::ChatService::Stub> chat_;
  std::unique_ptr<v1::SessionService::Stub> sessions_;
  std::string key_;
  int timeout_seconds_;
};

std::string SelfPath(const char* argv0) {
  char buffer[4096];
  ssize_t n = readlink("/proc/self/exe", buffer, sizeof(buffer) - 1);
  if (n <= 0) return argv0;
  return std::string(buffer, static_cast<size_t>(n));
}

int Main(int argc, char** argv) {
  CLI::App app{"helpline-chat: talk to Helpline's ChatService in the terminal"};
  std::string target;
  std::string key;
  std::string session;
  std::string env_file;
  int timeout_seconds = 60;
  app.add_option("--target", target, "gateway gRPC address (default: $HELPLINE_GRPC)");
  app.add_option("--key", key, "API key (default: $HELPLINE_API_KEY)");
  app.add_option("--session", session, "session id (default: a new one)");
  app.add_option("--env-file", env_file, "KEY=VALUE file (default: .run/stack.env)");
  app.add_option("--timeout", timeout_seconds, "deadline of each call in seconds")
      ->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);

  // Flags first, then the environment, then stack.env.
  auto from_env = [](const char* name) {
    const char* value = std::getenv(name);
    return std::string(value ? value : "");
  };
  if (target.empty()) target = from_env("HELPLINE_GRPC");
  if (key.empty()) key = from_env("HELPLINE_API_KEY");
  if (target.empty() || key.empty()) {
    if (env_file.empty()) env_file = FindStackEnv(SelfPath(argv[0]));
    if (!env_file.empty()) {
      absl::StatusOr<std::map<std::string, std::string>> values = ReadEnvFile(env_file);
      if (!values.ok()) {
        std::cerr << "helpline-chat: " << values.status().message() << "\n";
        return 2;
      }
      if (target.empty() && values->count("HELPLINE_GRPC")) target = values->at("HELPLINE_GRPC");
      if (key.empty() && values->count("HELPLINE_API_KEY")) key = values->at("HELPLINE_API_KEY");
    }
  }
  if (target.empty()) {
    std::cerr << "helpline-chat: no target; pass --target, set HELPLINE_GRPC, or run "
                 "'scripts/stack up' (writes .run/stack.env)\n";
    return 2;
  }
  if (key.empty()) {
    std::cerr << "helpline-chat: no API key; pass --key or set HELPLINE_API_KEY\n";
    return 2;
  }
  if (session.empty()) session = NewSessionId();

  Client client(grpc::CreateChannel(target, grpc::InsecureChannelCredentials()), key,
                timeout_seconds);
  const bool tty = isatty(STDIN_FILENO);
  std::cout << "helpline-chat: " << target << ", session " << session
            << (tty ? " (/help for commands)" : "") << std::endl;
  std::string line;
  while (true) {
    if (tty) std::cout << "you> " << std::flush;
    if (!std::getline(std::cin, line)) break;
    Command command = ParseCommand(line);
    switch (command.kind) {
      case Command::Kind::kEmpty:
        break;
      case Command::Kind::kQuit:
        return 0;
      case Command::Kind::kHelp:
        std::cout << kHelp;
        break;
      case Command::Kind::kSession:
        session = command.arg.empty() ? NewSessionId() : command.arg;
        std::cout << "session " << session << std::endl;
        break;
      case Command::Kind::kState:
        client.ShowState(session);
        break;
      case Command::Kind::kUnknown:
        std::cout << "unknown command " << command.arg << " (/help)" << std::endl;
        break;
      case Command::Kind::kText:
        if (!tty) std::cout << "customer: " << command.arg << std::endl;
        client.Turn(session, command.arg);
        break;
    }
  }
  if (tty) std::cout << std::endl;
  return 0;
}

}  // namespace
}  // namespace helpline::chat

int main(int argc, char** argv) { return helpline::chat::Main(argc, argv); }
