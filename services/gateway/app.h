// Composition root of helpline-gateway: builds the Redis pool and session store, the domain
// (for fallback replies), channels and stubs to the four stages, auth and rate limits, the
// turn runner, the handoff desk, the gRPC services (ChatService, SessionService,
// HandoffService) and the HTTP API, in that
// order; members are declared in that order so that destruction runs in reverse.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/domain/domain.h"
#include "common/grpc/executor.h"
#include "common/grpc/server.h"
#include "common/http/http_server.h"
#include "common/redis/redis_client.h"
#include "common/redis/session_store.h"
#include "helpline/gateway/v1/gateway_config.pb.h"
#include "services/gateway/auth.h"
#include "services/gateway/chat_service.h"
#include "services/gateway/handoff.h"
#include "services/gateway/openai_api.h"
#include "services/gateway/turn.h"

namespace helpline::gateway {

// The defaults a config starts from before the YAML file, environment and flags (ports,
// upstream targets, store URL, model name, domain file).
void SetGatewayDefaults(v1::GatewayConfig& config);

// Fills what is still unset (zero) after loading: limits, store settings, timeouts,
// server settings (worker_threads 128: the executor is sized for ~128 concurrent turns).
void ApplyGatewayDefaults(v1::GatewayConfig& config);

class Readiness;

class App {
 public:
  // Builds everything and starts serving gRPC and HTTP (health NOT_SERVING until Run() or
  // SetReady). Fails fast: INVALID_ARGUMENT for a bad config (api keys, redis_url, domain
  // file), UNAVAILABLE when a port cannot be bound. Redis and the stages need not be up
  // (/readyz reports them).
  static absl::StatusOr<std::unique_ptr<App>> Create(v1::GatewayConfig config);
  // Drains (Shutdown()) if not done yet.
  ~App();
  App(const App&) = delete;
  App& operator=(const App&) = delete;

  int grpc_port() const;
  int http_port() const;

  // Marks the gRPC health SERVING and blocks until SIGTERM/SIGINT (blocked in main by
  // rpc::BlockTerminationSignals) or RequestShutdown(); then Shutdown(). Returns 0.
  int Run();
  // Makes Run() return (after draining). Thread-safe.
  void RequestShutdown() { shutdown_requested_ = true; }
  // Health NOT_SERVING, /readyz 503, HTTP stops accepting, in-flight turns (gRPC and HTTP)
  // get up to server.shutdown_grace to finish, the executor drains. Idempotent; blocks.
  void Shutdown();
  // gRPC health SERVING / NOT_SERVING (tests that do not call Run()).
  void SetReady(bool ready);

  session::SessionStore& store() { return *store_; }
  TurnRunner& runner() { return *runner_; }
  const v1::GatewayConfig& config() const { return config_; }

 private:
  App();

  v1::GatewayConfig config_;
  std::unique_ptr<redis::Pool> pool_;
  std::unique_ptr<session::RedisSessionStore> store_;
  std::unique_ptr<domain::Domain> domain_;
  std::vector<std::shared_ptr<grpc::Channel>> channels_;  // preprocess, fusion, dst, generation
  std::unique_ptr<preprocess::v1::PreprocessService::Stub> preprocess_;
  std::unique_ptr<fusion::v1::FusionService::Stub> fusion_;
  std::unique_ptr<dst::v1::DialogueStateService::Stub> dst_;
  std::unique_ptr<generation::v1::GenerationService::Stub> generation_;
  std::unique_ptr<Authenticator> auth_;
  std::unique_ptr<TenantRateLimiter> limiter_;
  std::unique_ptr<TurnRunner> runner_;
  std::unique_ptr<HandoffDesk> handoffs_;
  std::unique_ptr<Readiness> readiness_;
  std::unique_ptr<rpc::Executor> executor_;
  std::unique_ptr<ChatService> chat_service_;
  std::unique_ptr<SessionService> session_service_;
  std::unique_ptr<HandoffService> handoff_service_;
  std::unique_ptr<OpenAiApi> api_;
  std::unique_ptr<http::Server> http_;
  std::unique_ptr<rpc::Server> server_;
  std::atomic<bool> shutdown_requested_{false};
  std::atomic<bool> shut_down_{false};
};

}  // namespace helpline::gateway
