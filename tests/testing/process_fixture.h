// Test fixtures that run the real Helpline binaries (build/bin/helpline-*) on loopback:
// ServiceProcess starts one binary on free ports, waits until it is ready, and can signal,
// stop, kill and restart it; Stack starts redis-server, the four stage services and the
// gateway with generated API keys, wired together.
//
// Binaries are looked up in $HELPLINE_BINARY_DIR/bin, domain files in
// $HELPLINE_SOURCE_DIR/domains (both set by helpline_add_test).
//
// Children get PR_SET_PDEATHSIG(SIGKILL): they die with the thread that started them, so
// start and restart processes from the test's main thread. Not thread-safe: one thread
// drives a ServiceProcess or a Stack.
#pragma once

#include <sys/types.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "tests/testing/redis_fixture.h"

namespace helpline::testutil {

// ---------------------------------------------------------------------------------------
// Small helpers.

// $HELPLINE_BINARY_DIR/bin (FAILED_PRECONDITION-free: falls back to "./bin").
std::string BinaryDir();
// $HELPLINE_SOURCE_DIR, or "." when unset.
std::string SourceDir();
// A new empty directory under $TMPDIR (or /tmp) named <prefix>XXXXXX. INTERNAL on failure.
absl::StatusOr<std::string> MakeTempDir(absl::string_view prefix);
// `bytes` random bytes as lower-case hex (from /dev/urandom).
std::string RandomHex(size_t bytes);
// Lower-case hex SHA-256 of `data`.
std::string Sha256Hex(absl::string_view data);
// Reads a KEY=VALUE file. NOT_FOUND when it does not exist.
absl::StatusOr<std::map<std::string, std::string>> ReadKeyValueFile(const std::string& path);

// A plain HTTP/1.1 client over loopback (Boost.Beast), one connection per request. A
// chunked body (SSE) is returned whole once the server ends it.
struct HttpResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // Lower-case names.
  std::string body;
};
// UNAVAILABLE when the connection fails, DEADLINE_EXCEEDED after `timeout`.
absl::StatusOr<HttpResponse> HttpCall(int port, absl::string_view method,
                                      absl::string_view target, absl::string_view body = "",
                                      const std::map<std::string, std::string>& headers = {},
                                      absl::Duration timeout = absl::Seconds(30));

// ---------------------------------------------------------------------------------------
// One binary.

struct ProcessOptions {
  // File name in BinaryDir(), e.g. "helpline-dst".
  std::string binary;
  // Short name for the ports and log files, e.g. "dst".
  std::string name;
  // Where the ports file (<name>.ports) and the log (<name>.log) go. Must exist.
  std::string work_dir;
  // Extra arguments (e.g. {"--set", "domain_file=..."}), after the port flags.
  std::vector<std::string> args;
  // The gateway: also passes `--set http_port=0`, reads HTTP_PORT, and is ready when its
  // HTTP /readyz answers 200 (stage services: /readyz on METRICS_PORT).
  bool gateway = false;
  // How long Start/Restart wait for the ports file and readiness.
  absl::Duration ready_timeout = absl::Seconds(60);
};

class ServiceProcess {
 public:
  // Launches the binary with ports 0 and waits until it is ready. On failure the child is
  // killed and the status carries the tail of its log.
  static absl::StatusOr<std::unique_ptr<ServiceProcess>> Start(ProcessOptions options);
  // Launches without waiting; call WaitReady() afterwards (to start several in parallel).
  static absl::StatusOr<std::unique_ptr<ServiceProcess>> Launch(ProcessOptions options);
  // Kills the child (SIGKILL) if it still runs.
  ~ServiceProcess();
  ServiceProcess(const ServiceProcess&) = delete;
  ServiceProcess& operator=(const ServiceProcess&) = delete;

  // Waits for the ports file, then for readiness. DEADLINE_EXCEEDED, or FAILED_PRECONDITION
  // when the process exited (both with the log's tail).
  absl::Status WaitReady(absl::Duration timeout);
  absl::Status WaitReady() { return WaitReady(options_.ready_timeout); }
  // True when /readyz answers 200 right now.
  bool IsReady() const;

  // Sends `signal` (SIGSTOP, SIGCONT, SIGTERM...). FAILED_PRECONDITION when not running.
  // SIGSTOP returns once every thread of the child is stopped: the kernel wakes one thread
  // to start the stop, and until it runs (late on a busy machine) the others keep serving.
  // DEADLINE_EXCEEDED when that takes over 10 s.
  absl::Status Signal(int signal);
  // SIGTERM, then waits up to `grace` for the exit; after that SIGKILL. Returns the exit
  // code (128 + signal number when killed by a signal). FAILED_PRECONDITION if not running.
  absl::StatusOr<int> Terminate(absl::Duration grace = absl::Seconds(30));
  // SIGKILL and reap. OK when already gone.
  absl::Status Kill();
  // Waits for the child to exit; exit code as in Terminate. DEADLINE_EXCEEDED.
  absl::StatusOr<int> WaitForExit(absl::Duration timeout);
  // Stops the process if it runs (SIGKILL when `kill`, else SIGTERM) and starts it again on
  // the same ports (so that peers configured with them reach it again), waiting until ready.
  absl::Status Restart(bool kill = false);

  // True while the child has not been reaped (a stopped child is running).
  bool running();
  pid_t pid() const { return pid_; }
  // The ports of the current (or last) run.
  int grpc_port() const { return grpc_port_; }
  int metrics_port() const { return metrics_port_; }
  int http_port() const { return http_port_; }
  // "127.0.0.1:<grpc_port>".
  std::string grpc_target() const;
  // The exit code of the last exited run, -1 when none.
  int last_exit_code() const { return last_exit_code_; }
  const std::string& name() const { return options_.name; }
  const std::string& log_path() const { return log_path_; }
  // The last `bytes` of the log.
  std::string LogTail(size_t bytes = 4000) const;

 private:
  explicit ServiceProcess(ProcessOptions options);
  // fork/exec with the given port flags. Truncates nothing: the log is appended to.
  absl::Status Spawn(bool same_ports);
  // Non-blocking reap; records the exit code.
  bool Reap(bool block);
  absl::Status WithLog(absl::Status status) const;

  ProcessOptions options_;
  std::string ports_path_;
  std::string log_path_;
  pid_t pid_ = -1;
  int grpc_port_ = 0;
  int metrics_port_ = 0;
  int http_port_ = 0;
  int last_exit_code_ = -1;
};

// ---------------------------------------------------------------------------------------
// The whole system.

struct StackOptions {
  // One API key is generated per tenant.
  std::vector<std::string> tenants = {"tenant-a", "tenant-b"};
  // Domain file of dst, generation and the gateway.
  std::string domain_file;  // Empty: $HELPLINE_SOURCE_DIR/domains/shop.yaml.
  // Model folder of the generation service. Empty: the shipped default
  // $HELPLINE_SOURCE_DIR/models/helpline-small when it exists; "none": templates only.
  std::string generation_model_dir;
  // Extra "--set a.b=value" pairs for the gateway (appended last, so they win).
  std::vector<std::string> gateway_sets;
  // Extra "--set" pairs per stage service name ("preprocess", ...).
  std::map<std::string, std::vector<std::string>> stage_sets;
  absl::Duration ready_timeout = absl::Seconds(90);
};

class Stack {
 public:
  // Starts redis-server, the four stages (in parallel) and then the gateway. Logs and the
  // gateway config live in a fresh temp dir (kept, for post-mortems).
  static absl::StatusOr<std::unique_ptr<Stack>> Start(StackOptions options = {});
  // Kills every process.
  ~Stack();

  // Stage services: "preprocess", "fusion", "dst", "generation"; and "gateway".
  ServiceProcess& service(absl::string_view name);
  ServiceProcess& gateway() { return *gateway_; }
  RedisServer& redis() { return *redis_; }

  // The plain API key of `tenant` (one of options.tenants).
  const std::string& api_key(absl::string_view tenant) const;
  // "Bearer <key>".
  std::string bearer(absl::string_view tenant) const;
  // Gateway gRPC "127.0.0.1:<port>" and HTTP port.
  std::string grpc_target() const { return gateway_->grpc_target(); }
  int http_port() const { return gateway_->http_port(); }
  // A new channel to the gateway.
  std::shared_ptr<grpc::Channel> NewChannel() const;
  const std::string& work_dir() const { return work_dir_; }
  const std::string& domain_file() const { return options_.domain_file; }

  // Restarts whatever is not running (redis first, then stages, then gateway), resumes any
  // process left stopped (SIGCONT), and waits until the gateway is ready and serving full
  // turns (WaitGatewayServing). For test SetUp.
  absl::Status EnsureHealthy();
  // Waits until the gateway's /readyz answers 200.
  absl::Status WaitGatewayReady(absl::Duration timeout = absl::Seconds(60));
  // Waits until a stateless turn (first tenant's key) succeeds with no degraded stage: the
  // gateway's channels reach every stage again. /readyz alone can be a second stale.
  absl::Status WaitGatewayServing(absl::Duration timeout = absl::Seconds(60));
  // The last lines of every log, for failure messages.
  std::string Logs(size_t bytes_per_log = 2000) const;

 private:
  Stack() = default;
  absl::Status StartGateway();

  StackOptions options_;
  std::string work_dir_;
  std::map<std::string, std::string> keys_;  // tenant -> key
  std::unique_ptr<RedisServer> redis_;
  std::map<std::string, std::unique_ptr<ServiceProcess>> stages_;
  std::unique_ptr<ServiceProcess> gateway_;
};

// Names of the stage services in pipeline order.
const std::vector<std::string>& StageNames();

}  // namespace helpline::testutil
