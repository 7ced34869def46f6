#include "tests/testing/redis_fixture.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace helpline::testutil {
namespace {

// A port that was free a moment ago: bind port 0 on loopback and read back what we got.
absl::StatusOr<int> PickFreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", strerror(errno)));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    std::string error = strerror(errno);
    close(fd);
    return absl::InternalError(absl::StrCat("picking a free port: ", error));
  }
  close(fd);
  return ntohs(addr.sin_port);
}

absl::StatusOr<std::string> FindOnPath(const std::string& name) {
  const char* path = getenv("PATH");
  for (absl::string_view dir : absl::StrSplit(path ? path : "/usr/bin:/bin", ':')) {
    if (dir.empty()) continue;
    std::string candidate = absl::StrCat(dir, "/", name);
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return absl::FailedPreconditionError(
      absl::StrCat(name, " not found on PATH; install the Debian package redis-server "
                         "(scripts/setup does). Redis tests do not skip."));
}

std::string TempBase() {
  for (const char* var : {"TEST_TMPDIR", "TMPDIR"}) {
    const char* value = getenv(var);
    if (value != nullptr && value[0] != '\0') return value;
  }
  return "/tmp";
}

}  // namespace

absl::StatusOr<std::unique_ptr<RedisServer>> RedisServer::Start(RedisServerOptions options) {
  auto binary = FindOnPath("redis-server");
  if (!binary.ok()) return binary.status();
  std::unique_ptr<RedisServer> server(new RedisServer());
  server->options_ = std::move(options);
  server->binary_ = *binary;
  std::string pattern = TempBase() + "/helpline-redis-XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) {
    return absl::InternalError(absl::StrCat("mkdtemp ", pattern, ": ", strerror(errno)));
  }
  server->dir_ = pattern;
  server->log_path_ = server->dir_ + "/redis.log";
  absl::Status last;
  // Another process may take the port between PickFreePort and redis binding it: try again.
  for (int attempt = 0; attempt < 5; ++attempt) {
    auto port = PickFreePort();
    if (!port.ok()) return port.status();
    server->port_ = *port;
    last = server->Spawn();
    if (last.ok()) last = server->WaitReady();
    if (last.ok()) return server;
    if (!absl::StrContains(server->Log(), "Address already in use")) break;
  }
  return last;
}

RedisServer::~RedisServer() {
  if (running()) Stop().IgnoreError();
  if (!dir_.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
}

std::string RedisServer::url() const { return absl::StrCat("redis://", host_, ":", port_); }

absl::Status RedisServer::Spawn() {
  std::vector<std::string> args = {binary_,  "--save", "",           "--appendonly", "no",
                                   "--port", absl::StrCat(port_),   "--bind",       host_,
                                   "--dir",  dir_};
  args.insert(args.end(), options_.extra_args.begin(), options_.extra_args.end());
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  int log_fd = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    return absl::InternalError(absl::StrCat("open ", log_path_, ": ", strerror(errno)));
  }
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    close(log_fd);
    return absl::InternalError(absl::StrCat("fork: ", strerror(errno)));
  }
  if (pid == 0) {
    // Child: only async-signal-safe calls until exec.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(1);
    dup2(log_fd, STDOUT_FILENO);
    dup2(log_fd, STDERR_FILENO);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(log_fd);
  pid_ = pid;
  return absl::OkStatus();
}

absl::Status RedisServer::WaitReady() {
  absl::Time deadline = absl::Now() + absl::Milliseconds(options_.startup_timeout_ms);
  while (true) {
    int status = 0;
    pid_t done = waitpid(pid_, &status, WNOHANG);
    if (done == pid_) {
      pid_ = -1;
      return absl::UnavailableError(
          absl::StrCat("redis-server on port ", port_, " exited (status ", status,
                       ") before answering PING; its log:\n", Log()));
    }
    timeval tv{0, 200000};
    redisContext* context = redisConnectWithTimeout(host_.c_str(), port_, tv);
    if (context != nullptr && context->err == 0) {
      redisSetTimeout(context, tv);
      auto* reply = static_cast<redisReply*>(redisCommand(context, "PING"));
      // PONG, or an error such as NOAUTH under --requirepass: the server answers. LOADING
      // (replaying the AOF after Restart) is not ready yet.
      bool pong = reply != nullptr &&
                  ((reply->type == REDIS_REPLY_ERROR &&
                    !absl::StartsWith(absl::string_view(reply->str, reply->len), "LOADING")) ||
                   (reply->type == REDIS_REPLY_STATUS &&
                    std::string(reply->str, reply->len) == "PONG"));
      if (reply != nullptr) freeReplyObject(reply);
      redisFree(context);
      if (pong) return absl::OkStatus();
    } else if (context != nullptr) {
      redisFree(context);
    }
    if (absl::Now() > deadline) {
      Stop().IgnoreError();
      return absl::UnavailableError(absl::StrCat("redis-server on port ", port_,
                                                 " did not answer PING within ",
                                                 options_.startup_timeout_ms, " ms; its log:\n",
                                                 Log()));
    }
    // Polling: redis-server has no readiness signal we could wait on.
    absl::SleepFor(absl::Milliseconds(5));
  }
}

absl::Status RedisServer::Stop() {
  if (!running()) return absl::OkStatus();
  kill(pid_, SIGKILL);
  int status = 0;
  while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
  return absl::OkStatus();
}

absl::Status RedisServer::Restart() {
  if (running()) {
    absl::Status stopped = Stop();
    if (!stopped.ok()) return stopped;
  }
  absl::Status spawned = Spawn();
  if (!spawned.ok()) return spawned;
  return WaitReady();
}

std::string RedisServer::Log() const {
  std::ifstream in(log_path_);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// ---------------------------------------------------------------------------------------------
// RedisTest

std::unique_ptr<RedisServer> RedisTest::server_;
absl::Status RedisTest::start_status_;

void RedisTest::SetUpTestSuite() {
  auto server = RedisServer::Start();
  if (server.ok()) {
    server_ = *std::move(server);
    start_status_ = absl::OkStatus();
  } else {
    start_status_ = server.status();
  }
}

void RedisTest::TearDownTestSuite() { server_.reset(); }

void RedisTest::SetUp() {
  ASSERT_TRUE(start_status_.ok()) << "redis-server did not start: " << start_status_;
  ASSERT_NE(server_, nullptr);
  if (!server_->running()) {
    absl::Status restarted = server_->Restart();
    ASSERT_TRUE(restarted.ok()) << restarted;
  }
  timeval tv{2, 0};
  redisContext* context = redisConnectWithTimeout(server_->host().c_str(), server_->port(), tv);
  ASSERT_TRUE(context != nullptr && context->err == 0) << "cannot connect to " << server_->url();
  auto* reply = static_cast<redisReply*>(redisCommand(context, "FLUSHALL"));
  bool ok = reply != nullptr && reply->type == REDIS_REPLY_STATUS;
  if (reply != nullptr) freeReplyObject(reply);
  redisFree(context);
  ASSERT_TRUE(ok) << "FLUSHALL failed on " << server_->url();
}

}  // namespace helpline::testutil
