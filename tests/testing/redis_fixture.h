// A real redis-server for tests: started from PATH on a free loopback port, with its own
// temporary directory, no persistence unless asked for, killed when the object dies.
//
// There is no skip: when redis-server is missing or does not come up, Start() fails with a
// message that says so, and the test fails (CI installs the Debian package redis-server).
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gtest/gtest.h"

namespace helpline::testutil {

struct RedisServerOptions {
  // Appended after the defaults (`--save "" --appendonly no --port P --bind 127.0.0.1
  // --dir <tmp>`); a later option wins, e.g. {"--appendonly", "yes", "--appendfsync",
  // "always"} makes data survive Stop() + Restart().
  std::vector<std::string> extra_args;
  // How long Start() and Restart() wait for PING to answer.
  int startup_timeout_ms = 10000;
};

// Owns one redis-server process. Not thread-safe: drive it from the test's main thread (the
// server is also killed by the kernel if the thread that started it exits, so that a crashed
// test leaves no server behind).
class RedisServer {
 public:
  // Starts the server and waits until it answers PING. FAILED_PRECONDITION when redis-server
  // is not on PATH, UNAVAILABLE when it does not come up (its log is in the message).
  static absl::StatusOr<std::unique_ptr<RedisServer>> Start(RedisServerOptions options = {});
  ~RedisServer();  // Kills the server, removes its directory.
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  const std::string& host() const { return host_; }
  int port() const { return port_; }
  std::string url() const;  // "redis://127.0.0.1:<port>"
  bool running() const { return pid_ > 0; }
  const std::string& dir() const { return dir_; }

  // Kills the server with SIGKILL (a crash, as far as clients can tell) and waits for it.
  absl::Status Stop();
  // Starts it again on the same port and directory (stopping it first if running).
  absl::Status Restart();
  // The server's log so far (stdout + stderr), for failure messages.
  std::string Log() const;

 private:
  RedisServer() = default;
  absl::Status Spawn();
  absl::Status WaitReady();

  RedisServerOptions options_;
  std::string host_ = "127.0.0.1";
  int port_ = 0;
  std::string dir_;
  std::string log_path_;
  std::string binary_;
  pid_t pid_ = -1;
};

// A gtest fixture sharing one RedisServer per test suite. SetUp fails the test when the
// server did not start, restarts it when a test stopped it, and runs FLUSHALL so that every
// test starts from an empty database.
class RedisTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite();
  static void TearDownTestSuite();
  void SetUp() override;

  static RedisServer& server() { return *server_; }

 private:
  static std::unique_ptr<RedisServer> server_;
  static absl::Status start_status_;
};

}  // namespace helpline::testutil
