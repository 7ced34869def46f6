#include "services/gateway/app.h"

#include <signal.h>
#include <time.h>

#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/config/config.h"
#include "common/grpc/channel.h"
#include "common/log/log.h"
#include "common/status/status.h"
#include "google/protobuf/util/time_util.h"
#include "grpcpp/generic/generic_stub.h"

namespace helpline::gateway {
namespace {

using google::protobuf::util::TimeUtil;

absl::Duration ToAbsl(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

void SetIfZero(google::protobuf::Duration* d, int64_t seconds) {
  if (d->seconds() == 0 && d->nanos() == 0) *d = TimeUtil::SecondsToDuration(seconds);
}

// grpc.health.v1.Health/Check with an empty service name, without the health proto: the
// request is empty and the response's field 1 (a varint) is the status, SERVING = 1.
absl::Status CheckHealth(grpc::Channel& channel, absl::string_view name) {
  grpc::GenericStub stub(std::shared_ptr<grpc::Channel>(&channel, [](grpc::Channel*) {}));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(800));
  grpc::Slice empty("");
  grpc::ByteBuffer request(&empty, 1);
  grpc::ByteBuffer response;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  grpc::Status status;
  stub.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request,
                 &response, [&](grpc::Status s) {
                   std::lock_guard lock(mu);
                   status = std::move(s);
                   done = true;
                   cv.notify_all();
                 });
  {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return done; });
  }
  if (!status.ok()) {
    return absl::UnavailableError(absl::StrCat(name, ": ", status.error_message()));
  }
  std::vector<grpc::Slice> slices;
  std::string bytes;
  if (response.Dump(&slices).ok()) {
    for (const grpc::Slice& slice : slices) {
      bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
    }
  }
  if (bytes.size() >= 2 && bytes[0] == 0x08 && bytes[1] == 0x01) return absl::OkStatus();
  return absl::UnavailableError(absl::StrCat(name, ": NOT_SERVING"));
}

}  // namespace

// /readyz: Redis answers PING and every stage's health says SERVING. The answer is cached
// for a second so that probes do not hammer the dependencies.
class Readiness {
 public:
  // `failures` counts dependency failures seen by turns; when it moves, the cached answer
  // is not trusted (a stage that just failed must not look ready for another second).
  Readiness(session::SessionStore& store,
            std::vector<std::pair<std::string, std::shared_ptr<grpc::Channel>>> stages,
            std::function<uint64_t()> failures)
      : store_(store), stages_(std::move(stages)), failures_(std::move(failures)) {}

  absl::Status Check() {
    std::lock_guard lock(mu_);
    const absl::Time now = absl::Now();
    const uint64_t failures = failures_();
    if (now - checked_ < absl::Seconds(1) && failures == failures_seen_) return last_;
    failures_seen_ = failures;
    std::vector<std::string> problems;
    if (absl::Status s = store_.Ping(); !s.ok()) {
      problems.push_back(absl::StrCat("redis: ", s.message()));
    }
    for (const auto& [name, channel] : stages_) {
      if (absl::Status s = CheckHealth(*channel, name); !s.ok()) {
        problems.push_back(std::string(s.message()));
      }
    }
    last_ = problems.empty() ? absl::OkStatus()
                             : absl::UnavailableError(absl::StrJoin(problems, "; "));
    checked_ = absl::Now();
    return last_;
  }

 private:
  session::SessionStore& store_;
  const std::vector<std::pair<std::string, std::shared_ptr<grpc::Channel>>> stages_;
  std::function<uint64_t()> failures_;
  std::mutex mu_;
  uint64_t failures_seen_ = 0;
  absl::Time checked_ = absl::InfinitePast();
  absl::Status last_;
};

void SetGatewayDefaults(v1::GatewayConfig& config) {
  config.mutable_server()->set_grpc_port(50051);
  config.mutable_server()->set_metrics_port(0);
  config.set_http_port(8080);
  config.mutable_preprocess()->set_target("127.0.0.1:50061");
  config.mutable_fusion()->set_target("127.0.0.1:50062");
  config.mutable_dst()->set_target("127.0.0.1:50063");
  config.mutable_generation()->set_target("127.0.0.1:50064");
  config.mutable_store()->set_redis_url("redis://127.0.0.1:6379");
  config.set_model_name("helpline");
  config.set_domain_file("domains/shop.yaml");
}

void ApplyGatewayDefaults(v1::GatewayConfig& config) {
  common::v1::ServerConfig& server = *config.mutable_server();
  if (server.worker_threads() == 0) server.set_worker_threads(128);
  rpc::ApplyServerDefaults(server);
  if (config.http_max_connections() == 0) config.set_http_max_connections(256);
  rpc::ApplyUpstreamDefaults(*config.mutable_preprocess(), "127.0.0.1:50061");
  rpc::ApplyUpstreamDefaults(*config.mutable_fusion(), "127.0.0.1:50062");
  rpc::ApplyUpstreamDefaults(*config.mutable_dst(), "127.0.0.1:50063");
  rpc::ApplyUpstreamDefaults(*config.mutable_generation(), "127.0.0.1:50064");
  v1::SessionStoreConfig& store = *config.mutable_store();
  if (store.redis_url().empty()) store.set_redis_url("redis://127.0.0.1:6379");
  if (store.pool_size() == 0) store.set_pool_size(16);
  SetIfZero(store.mutable_connect_timeout(), 1);
  SetIfZero(store.mutable_command_timeout(), 1);
  if (store.max_turns() == 0) store.set_max_turns(50);
  SetIfZero(store.mutable_idle_ttl(), 24 * 3600);
  SetIfZero(store.mutable_lease_ttl(), 30);
  if (store.key_prefix().empty()) store.set_key_prefix("helpline");
  ApplyLimitDefaults(*config.mutable_limits());
  SetIfZero(config.mutable_turn_timeout(), 20);
  if (config.model_name().empty()) config.set_model_name("helpline");
  if (config.context_turns() == 0) config.set_context_turns(8);
  if (config.handoff().summary_lines() == 0) config.mutable_handoff()->set_summary_lines(6);
}

App::App() = default;

absl::StatusOr<std::unique_ptr<App>> App::Create(v1::GatewayConfig config) {
  ApplyGatewayDefaults(config);
  std::unique_ptr<App> app(new App());
  app->config_ = std::move(config);
  const v1::GatewayConfig& c = app->config_;

  // Session store.
  absl::StatusOr<redis::RedisOptions> redis_options = redis::ParseRedisUrl(c.store().redis_url());
  if (!redis_options.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("store.redis_url: ", redis_options.status().message()));
  }
  redis_options->connect_timeout = ToAbsl(c.store().connect_timeout());
  redis_options->command_timeout = ToAbsl(c.store().command_timeout());
  redis_options->pool_size = c.store().pool_size();
  app->pool_ = std::make_unique<redis::Pool>(*redis_options);
  session::RedisSessionStoreOptions store_options;
  store_options.key_prefix = c.store().key_prefix();
  store_options.max_turns = c.store().max_turns();
  store_options.idle_ttl = ToAbsl(c.store().idle_ttl());
  store_options.lease_ttl = ToAbsl(c.store().lease_ttl());
  app->store_ = std::make_unique<session::RedisSessionStore>(*app->pool_, store_options);

  // Domain, for the fallback reply when generation is down.
  if (c.domain_file().empty()) return absl::InvalidArgumentError("domain_file: required");
  absl::StatusOr<domain::Domain> domain = domain::LoadDomainFile(c.domain_file());
  if (!domain.ok()) {
    return absl::Status(absl::StatusCode::kInvalidArgument,
                        absl::StrCat("domain_file: ", domain.status().message()));
  }
  app->domain_ = std::make_unique<domain::Domain>(*std::move(domain));

  // Stages.
  const int max_message = static_cast<int>(c.server().max_message_bytes());
  auto channel = [&](const common::v1::UpstreamConfig& upstream, const char* service) {
    auto ch = rpc::MakeChannel(upstream, service, max_message);
    app->channels_.push_back(ch);
    return ch;
  };
  auto preprocess_channel = channel(c.preprocess(), "helpline.preprocess.v1.PreprocessService");
  auto fusion_channel = channel(c.fusion(), "helpline.fusion.v1.FusionService");
  auto dst_channel = channel(c.dst(), "helpline.dst.v1.DialogueStateService");
  auto generation_channel = channel(c.generation(), "helpline.generation.v1.GenerationService");
  app->preprocess_ = preprocess::v1::PreprocessService::NewStub(preprocess_channel);
  app->fusion_ = fusion::v1::FusionService::NewStub(fusion_channel);
  app->dst_ = dst::v1::DialogueStateService::NewStub(dst_channel);
  app->generation_ = generation::v1::GenerationService::NewStub(generation_channel);

  // Auth and limits.
  HELPLINE_ASSIGN_OR_RETURN(app->auth_, Authenticator::Create(c.api_keys()));
  if (app->auth_->key_count() == 0) {
    log::Warn("no api_keys configured: every request will be refused (UNAUTHENTICATED)");
  }
  app->limiter_ = std::make_unique<TenantRateLimiter>(c.limits().tenant_turns_per_second(),
                                                      c.limits().tenant_burst());

  // Turns.
  StageClients clients;
  clients.preprocess = app->preprocess_.get();
  clients.fusion = app->fusion_.get();
  clients.dst = app->dst_.get();
  clients.generation = app->generation_.get();
  clients.preprocess_config = c.preprocess();
  clients.fusion_config = c.fusion();
  clients.dst_config = c.dst();
  clients.generation_config = c.generation();
  TurnOptions turn_options;
  turn_options.limits = c.limits();
  turn_options.context_turns = c.context_turns();
  turn_options.handoff_summary_lines = c.handoff().summary_lines();
  // Blocking store calls of asynchronous turns: one thread per pooled Redis connection; the
  // queue holds one task of every turn the gateway admits.
  turn_options.store_threads = c.store().pool_size();
  turn_options.store_queue = c.server().worker_threads() + c.server().max_queued_requests();
  // Streaming generations (gRPC ConverseStream and HTTP SSE): a thread per stream being
  // relayed, apart from the store pool so that long streams never hold up Redis calls.
  turn_options.stream_threads = c.server().worker_threads();
  turn_options.stream_queue = c.server().worker_threads() + c.server().max_queued_requests();
  app->runner_ = std::make_unique<TurnRunner>(*app->store_, std::move(clients),
                                              app->domain_.get(), turn_options);
  app->handoffs_ = std::make_unique<HandoffDesk>(*app->store_, app->domain_.get());
  app->readiness_ = std::make_unique<Readiness>(
      *app->store_, std::vector<std::pair<std::string, std::shared_ptr<grpc::Channel>>>{
                        {"preprocess", preprocess_channel},
                        {"fusion", fusion_channel},
                        {"dst", dst_channel},
                        {"generation", generation_channel}},
      [runner = app->runner_.get()] { return runner->dependency_failures(); });

  // gRPC services.
  app->executor_ = std::make_unique<rpc::Executor>(c.server().worker_threads(),
                                                   c.server().max_queued_requests(), "turn");
  ChatDeps deps;
  deps.auth = app->auth_.get();
  deps.limiter = app->limiter_.get();
  deps.runner = app->runner_.get();
  deps.store = app->store_.get();
  deps.handoffs = app->handoffs_.get();
  deps.executor = app->executor_.get();
  deps.turn_timeout = ToAbsl(c.turn_timeout());
  deps.max_turns = c.store().max_turns();
  deps.max_turns_in_flight = c.server().worker_threads() + c.server().max_queued_requests();
  app->chat_service_ = std::make_unique<ChatService>(deps);
  app->session_service_ = std::make_unique<SessionService>(deps);
  app->handoff_service_ = std::make_unique<HandoffService>(deps);

  // HTTP API.
  OpenAiApiOptions api_options;
  api_options.model_name = c.model_name();
  api_options.turn_timeout = ToAbsl(c.turn_timeout());
  Readiness* readiness = app->readiness_.get();
  app->api_ = std::make_unique<OpenAiApi>(api_options, *app->auth_, *app->limiter_,
                                          *app->runner_, *app->handoffs_,
                                          [readiness] { return readiness->Check(); });
  http::ServerOptions http_options;
  http_options.host = c.server().host();
  http_options.port = static_cast<uint16_t>(c.http_port());
  http_options.max_connections = c.http_max_connections();
  http_options.max_body_bytes = c.limits().max_http_body_bytes();
  OpenAiApi* api = app->api_.get();
  HELPLINE_ASSIGN_OR_RETURN(
      app->http_, http::Server::Start(http_options, [api](const http::Request& request,
                                                          http::ResponseWriter& writer) {
        api->Handle(request, writer);
      }));

  rpc::ServerOptions server_options;
  server_options.config = c.server();
  server_options.name = "helpline-gateway";
  server_options.services = {app->chat_service_.get(), app->session_service_.get(),
                             app->handoff_service_.get()};
  server_options.serve_metrics_http = false;
  HELPLINE_ASSIGN_OR_RETURN(app->server_, rpc::Server::Start(std::move(server_options)));

  HELPLINE_RETURN_IF_ERROR(rpc::WritePortsFile(c.server().ports_file(),
                                               {{"GRPC_PORT", app->grpc_port()},
                                                {"HTTP_PORT", app->http_port()},
                                                {"METRICS_PORT", app->http_port()}}));
  log::Info("gateway started", {{"grpc_port", app->grpc_port()},
                                {"http_port", app->http_port()},
                                {"api_keys", app->auth_->key_count()},
                                {"domain", app->domain_->name}});
  return app;
}

App::~App() { Shutdown(); }

int App::grpc_port() const { return server_ ? server_->grpc_port() : 0; }
int App::http_port() const { return http_ ? http_->port() : 0; }

void App::SetReady(bool ready) {
  if (server_) server_->SetReady(ready);
}

int App::Run() {
  SetReady(true);
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  // The signals are blocked in every thread (main called BlockTerminationSignals), so
  // sigtimedwait takes them; the timeout lets RequestShutdown() end the wait too.
  while (!shutdown_requested_) {
    timespec timeout{0, 200 * 1000 * 1000};
    const int signal = sigtimedwait(&signals, nullptr, &timeout);
    if (signal == SIGTERM || signal == SIGINT) {
      log::Info("signal received, draining", {{"signal", signal}});
      break;
    }
  }
  Shutdown();
  return 0;
}

void App::Shutdown() {
  if (shut_down_.exchange(true)) return;
  if (server_ == nullptr && http_ == nullptr) return;  // Create() failed before serving.
  if (api_) api_->SetDraining();
  SetReady(false);
  const double grace = absl::ToDoubleSeconds(ToAbsl(config_.server().shutdown_grace()));
  // HTTP and gRPC drain at the same time, each within the grace period.
  std::thread http_drain([this, grace] {
    if (http_) http_->Shutdown(grace);
  });
  if (server_) server_->Shutdown();
  http_drain.join();
  if (executor_) executor_->Drain();
  log::Info("gateway drained");
}

}  // namespace helpline::gateway
