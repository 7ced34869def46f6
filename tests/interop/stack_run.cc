// helpline-interop-stack: starts the whole stack (redis-server, four stages, gateway) on free
// loopback ports with testutil::Stack, runs the command given after `--` with the endpoints
// in its environment, tears the stack down and exits with the command's exit code.
//
//   HELPLINE_HTTP=http://127.0.0.1:<port>  HELPLINE_GRPC=127.0.0.1:<port>
//   HELPLINE_API_KEY (tenant "interop"), REDIS_URL, HELPLINE_<STAGE>_GRPC
//
// Exit codes: the command's; 2 for bad usage; 3 when the stack does not come up.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "tests/testing/process_fixture.h"

int main(int argc, char** argv) {
  int split = 1;
  while (split < argc && std::strcmp(argv[split], "--") != 0) ++split;
  if (split + 1 >= argc) {
    std::cerr << "usage: helpline-interop-stack -- COMMAND [ARGS...]\n";
    return 2;
  }
  helpline::testutil::StackOptions options;
  options.tenants = {"interop"};
  absl::StatusOr<std::unique_ptr<helpline::testutil::Stack>> stack =
      helpline::testutil::Stack::Start(options);
  if (!stack.ok()) {
    std::cerr << "stack did not come up: " << stack.status() << "\n";
    return 3;
  }
  helpline::testutil::Stack& s = **stack;
  setenv("HELPLINE_HTTP", absl::StrCat("http://127.0.0.1:", s.http_port()).c_str(), 1);
  setenv("HELPLINE_GRPC", s.grpc_target().c_str(), 1);
  setenv("HELPLINE_API_KEY", s.api_key("interop").c_str(), 1);
  setenv("REDIS_URL", s.redis().url().c_str(), 1);
  for (const std::string& stage : helpline::testutil::StageNames()) {
    setenv(absl::StrCat("HELPLINE_", absl::AsciiStrToUpper(stage), "_GRPC").c_str(),
           s.service(stage).grpc_target().c_str(), 1);
  }
  std::cerr << "stack up in " << s.work_dir() << ": gateway " << s.grpc_target()
            << ", http " << s.http_port() << "\n";

  pid_t child = fork();
  if (child == 0) {
    execvp(argv[split + 1], argv + split + 1);
    std::cerr << "exec " << argv[split + 1] << ": " << std::strerror(errno) << "\n";
    _exit(127);
  }
  int wstatus = 0;
  while (waitpid(child, &wstatus, 0) < 0 && errno == EINTR) {
  }
  int code = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
  if (code != 0) std::cerr << s.Logs(3000);
  return code;
}
