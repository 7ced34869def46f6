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
#include "tools/chat/chat_lib.h"

namespace helpline::chat {
namespace {

constexpr char kHelp[] =
    "Type a message and press Enter. Commands:\n"
    "  /session [ID]  continue in session ID, or a new session without ID\n"
    "  /state         the session's state and stored turns (SessionService.GetSession)\n"
    "  /handoff       the session's handoff to a human and its summary\n"
    "  /accept [ID]   as the helpdesk: agent ID (default \"console\") takes the conversation\n"
    "  /release [ID]  as the helpdesk: give the conversation back to the bot\n"
    "  /quit          leave (also Ctrl-D)\n";

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

  ChatClient client(grpc::CreateChannel(target, grpc::InsecureChannelCredentials()), key,
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
        client.ShowState(session, std::cout);
        break;
      case Command::Kind::kHandoff:
        client.ShowHandoff(session, std::cout);
        break;
      case Command::Kind::kAccept:
        client.AcceptHandoff(session, command.arg.empty() ? "console" : command.arg, std::cout);
        break;
      case Command::Kind::kRelease:
        client.ReleaseHandoff(session, command.arg, std::cout);
        break;
      case Command::Kind::kUnknown:
        std::cout << "unknown command " << command.arg << " (/help)" << std::endl;
        break;
      case Command::Kind::kText:
        if (!tty) std::cout << "customer: " << command.arg << std::endl;
        client.Turn(session, command.arg, std::cout);
        break;
    }
  }
  if (tty) std::cout << std::endl;
  return 0;
}

}  // namespace
}  // namespace helpline::chat

int main(int argc, char** argv) { return helpline::chat::Main(argc, argv); }
