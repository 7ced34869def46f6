// Bootstrap of every Helpline gRPC server: health (grpc.health.v1), reflection, keepalive,
// message size limits, an interceptor that records per-method metrics and carries the
// request id, Prometheus /metrics on its own HTTP port, and graceful shutdown on SIGTERM:
// health NOT_SERVING, stop accepting, drain in-flight RPCs within the grace period.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/http/http_server.h"
#include "grpcpp/grpcpp.h"
#include "helpline/common/v1/server_config.pb.h"

namespace helpline::rpc {

// Blocks SIGTERM, SIGINT and SIGPIPE in the calling thread and every thread it creates later,
// and turns off absl::Mutex deadlock detection (debug bookkeeping on every lock in Debian's
// abseil build). Call first thing in main(), before any library starts threads; Run() then
// waits for the signals.
void BlockTerminationSignals();

// Fills unset fields of `config` (zero / empty) with defaults, except ports, which the
// caller's defaults decide (0 means "pick a free port").
void ApplyServerDefaults(common::v1::ServerConfig& config);

struct ServerOptions {
  common::v1::ServerConfig config;
  // "helpline-dst" etc.: the `service` label of metrics and the log's service name.
  std::string name;
  // Services to register; not owned, must outlive the server.
  std::vector<grpc::Service*> services;
  // Extra HTTP routes on the metrics port, e.g. the gateway's API. May be empty; then the
  // metrics port answers /metrics, /healthz and /readyz only.
  http::Handler http_handler;
  // Serve the HTTP endpoint (metrics) at all. The gateway serves its own on http_port.
  bool serve_metrics_http = true;
};

class Server {
 public:
  // Builds and starts the server, bound to config.host:config.grpc_port. The health status
  // starts NOT_SERVING; call SetReady(true) once models and dependencies are loaded.
  // UNAVAILABLE when a port cannot be bound.
  static absl::StatusOr<std::unique_ptr<Server>> Start(ServerOptions options);
  ~Server();

  int grpc_port() const { return grpc_port_; }
  int metrics_port() const;

  // Start(), then WritePortsFile() and SetReady(true): for services whose dependencies are all
  // loaded before the server starts (the stage services).
  static absl::StatusOr<std::unique_ptr<Server>> StartReady(ServerOptions options);

  // Writes GRPC_PORT and METRICS_PORT to config.ports_file (no-op when unset), so that a
  // script or test that started the server on port 0 finds it. See rpc::WritePortsFile.
  absl::Status WritePortsFile() const;

  // Sets health for "" and every registered service. Thread-safe.
  void SetReady(bool ready);
  bool ready() const { return ready_; }

  // Blocks until SIGTERM/SIGINT (see BlockTerminationSignals) or RequestShutdown(), then
  // drains: NOT_SERVING, Shutdown(now + shutdown_grace), stop HTTP. Returns the exit code 0.
  int Run();
  // Makes Run() return after draining. Thread-safe; safe to call before Run().
  void RequestShutdown();
  // Drains right away (for tests that do not call Run()). Idempotent.
  void Shutdown();

  grpc::Server& grpc_server() { return *server_; }

 private:
  Server() = default;
  ServerOptions options_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<http::Server> http_;
  // Names of every service the gRPC server serves (health is set for each), filled at start.
  std::vector<std::string> service_names_;
  int grpc_port_ = 0;
  std::atomic<bool> ready_{false};
  std::atomic<bool> shutdown_requested_{false};
  std::atomic<bool> shut_down_{false};
  int wake_fd_[2] = {-1, -1};  // RequestShutdown() writes to [1]; Run() polls [0].
};

// The request id of an incoming call: the `x-request-id` metadata, or a new random id
// when the caller sent none or an invalid one (at most 64 chars of [A-Za-z0-9._-]).
std::string RequestIdOf(const grpc::ServerContextBase& context);

// A new random request id (32 hex characters).
std::string NewRequestId();

// Writes KEY=VALUE lines (e.g. GRPC_PORT=50061) to `path` atomically (temp file + rename),
// so that a test or script polling for the file never reads half of it. No-op if path is "".
absl::Status WritePortsFile(const std::string& path,
                            const std::vector<std::pair<std::string, int>>& ports);

}  // namespace helpline::rpc
