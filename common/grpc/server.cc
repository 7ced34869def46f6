#include "common/grpc/server.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <thread>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/log/log.h"
#include "common/metrics/metrics.h"
#include "common/status/status.h"
#include "google/protobuf/descriptor.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/impl/server_builder_option.h"
#include "grpcpp/impl/server_builder_plugin.h"
#include "grpcpp/impl/server_initializer.h"
#include "grpcpp/support/server_interceptor.h"

namespace helpline::rpc {
namespace {

constexpr char kRequestIdKey[] = "x-request-id";
constexpr size_t kMaxRequestIdLength = 64;

bool IsUnset(const google::protobuf::Duration& d) { return d.seconds() == 0 && d.nanos() == 0; }

absl::Duration ToAbsl(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

void SetDuration(google::protobuf::Duration* d, int64_t seconds) {
  d->set_seconds(seconds);
  d->set_nanos(0);
}

bool ValidRequestId(absl::string_view id) {
  if (id.empty() || id.size() > kMaxRequestIdLength) return false;
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}


// ---- Per-method metrics and request id ----

struct Instruments {
  explicit Instruments(std::string service_name)
      : service(std::move(service_name)),
        handled(metrics::Registry::Default().AddCounter(
            "helpline_grpc_server_handled_total",
            "RPCs completed on the server, by method and status code.",
            {"service", "method", "code"})),
        handling(metrics::Registry::Default().AddHistogram(
            "helpline_grpc_server_handling_seconds",
            "Time from the start of an RPC on the server to its status being sent.",
            {"service", "method"})) {}
  std::string service;
  metrics::Family<metrics::Counter>& handled;
  metrics::Family<metrics::Histogram>& handling;
};

// "package.Service/Method" for a method this binary knows; "unknown" for anything else, so
// that callers cannot mint label values (one series each) by calling made-up methods.
std::string MethodLabel(const char* path) {
  if (path == nullptr) return "unknown";
  std::string name(path);
  if (!name.empty() && name[0] == '/') name.erase(0, 1);
  // gRPC's built-in health service is not in the protobuf pool (it is upb-generated).
  if (name == "grpc.health.v1.Health/Check" || name == "grpc.health.v1.Health/Watch") {
    return name;
  }
  std::string full_name = name;
  std::replace(full_name.begin(), full_name.end(), '/', '.');
  if (google::protobuf::DescriptorPool::generated_pool()->FindMethodByName(full_name) ==
      nullptr) {
    return "unknown";
  }
  return name;
}

// Records handled_total and handling_seconds once per call (at the status, or CANCELLED if
// the call ends without one), makes sure the call has a valid x-request-id (RequestIdOf
// then sees the same id everywhere) and echoes it in the initial metadata.
class MetricsInterceptor : public grpc::experimental::Interceptor {
 public:
  MetricsInterceptor(grpc::experimental::ServerRpcInfo* info, const Instruments& instruments)
      : instruments_(instruments),
        method_(MethodLabel(info->method())),
        start_(std::chrono::steady_clock::now()) {}

  ~MetricsInterceptor() override {
    if (!recorded_) Record(grpc::StatusCode::CANCELLED);
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    using grpc::experimental::InterceptionHookPoints;
    if (methods->QueryInterceptionHookPoint(
            InterceptionHookPoints::POST_RECV_INITIAL_METADATA)) {
      auto* md = methods->GetRecvInitialMetadata();
      if (md != nullptr) {
        auto it = md->find(kRequestIdKey);
        if (it != md->end() &&
            ValidRequestId(absl::string_view(it->second.data(), it->second.size()))) {
          request_id_.assign(it->second.data(), it->second.size());
        } else {
          if (it != md->end()) md->erase(kRequestIdKey);
          request_id_ = NewRequestId();
          // The string lives in this interceptor, which lives as long as the call's context.
          md->emplace(grpc::string_ref(kRequestIdKey), grpc::string_ref(request_id_));
        }
      }
    }
    // Echo the id in the response headers, except on an error status sent without any
    // message: extra headers would turn a Trailers-Only answer into headers + trailers,
    // which clients treat as committed, and an UNAVAILABLE would then never be retried.
    const bool error_without_response =
        methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS) &&
        !methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_MESSAGE) &&
        !methods->GetSendStatus().ok();
    if (!error_without_response &&
        methods->QueryInterceptionHookPoint(
            InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      auto* md = methods->GetSendInitialMetadata();
      if (md != nullptr && !request_id_.empty() && md->find(kRequestIdKey) == md->end()) {
        md->emplace(kRequestIdKey, request_id_);
      }
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      Record(methods->GetSendStatus().error_code());
    }
    methods->Proceed();
  }

 private:
  void Record(grpc::StatusCode code) {
    if (recorded_) return;
    recorded_ = true;
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    instruments_.handled.Get({instruments_.service, method_, GrpcCodeName(code)}).Increment();
    instruments_.handling.Get({instruments_.service, method_}).Observe(seconds);
  }

  const Instruments& instruments_;
  std::string method_;
  std::chrono::steady_clock::time_point start_;
  std::string request_id_;
  bool recorded_ = false;
};

class MetricsInterceptorFactory
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit MetricsInterceptorFactory(std::shared_ptr<const Instruments> instruments)
      : instruments_(std::move(instruments)) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new MetricsInterceptor(info, *instruments_);
  }

 private:
  std::shared_ptr<const Instruments> instruments_;
};

// ---- Capturing the list of served services (grpc::Service does not expose its name) ----

class ServiceListPlugin : public grpc::ServerBuilderPlugin {
 public:
  explicit ServiceListPlugin(std::shared_ptr<std::vector<std::string>> out)
      : out_(std::move(out)) {}
  std::string name() override { return "helpline_service_list"; }
  void InitServer(grpc::ServerInitializer*) override {}
  void Finish(grpc::ServerInitializer* si) override {
    const std::vector<std::string>* list = si->GetServiceList();
    if (list != nullptr) *out_ = *list;
  }
  void ChangeArguments(const std::string&, void*) override {}

 private:
  std::shared_ptr<std::vector<std::string>> out_;
};

class ServiceListOption : public grpc::ServerBuilderOption {
 public:
  explicit ServiceListOption(std::shared_ptr<std::vector<std::string>> out)
      : out_(std::move(out)) {}
  void UpdateArguments(grpc::ChannelArguments*) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>* plugins) override {
    plugins->push_back(std::make_unique<ServiceListPlugin>(out_));
  }

 private:
  std::shared_ptr<std::vector<std::string>> out_;
};

std::string HostPort(const std::string& host, uint32_t port) {
  if (absl::StrContains(host, ':') && !absl::StartsWith(host, "[")) {
    return absl::StrCat("[", host, "]:", port);  // IPv6 literal.
  }
  return absl::StrCat(host, ":", port);
}

}  // namespace

void BlockTerminationSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  // Debian's abseil is built without NDEBUG, so every absl::Mutex (gRPC's core uses them)
  // keeps a lock-order graph for deadlock detection: measurable CPU on every call (seen in
  // perf on the gateway). Services are not the place to debug lock order.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
}

void ApplyServerDefaults(common::v1::ServerConfig& config) {
  if (config.host().empty()) config.set_host("127.0.0.1");
  if (config.max_message_bytes() == 0) config.set_max_message_bytes(32u << 20);
  if (IsUnset(config.shutdown_grace())) SetDuration(config.mutable_shutdown_grace(), 10);
  if (IsUnset(config.keepalive_time())) SetDuration(config.mutable_keepalive_time(), 30);
  if (config.worker_threads() == 0) {
    config.set_worker_threads(std::max(2u, std::thread::hardware_concurrency()));
  }
  if (config.max_queued_requests() == 0) config.set_max_queued_requests(256);
  if (config.log_level().empty()) config.set_log_level("info");
}

absl::StatusOr<std::unique_ptr<Server>> Server::Start(ServerOptions options) {
  ApplyServerDefaults(options.config);
  const common::v1::ServerConfig& config = options.config;
  std::unique_ptr<Server> server(new Server());
  if (::pipe2(server->wake_fd_, O_CLOEXEC | O_NONBLOCK) != 0) {
    return absl::InternalError(absl::StrCat("pipe: ", std::strerror(errno)));
  }

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();

  grpc::ServerBuilder builder;
  const std::string address = HostPort(config.host(), config.grpc_port());
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &server->grpc_port_);
  const int max_bytes = static_cast<int>(std::min<uint32_t>(config.max_message_bytes(), INT32_MAX));
  builder.SetMaxReceiveMessageSize(max_bytes);
  builder.SetMaxSendMessageSize(max_bytes);
  const int64_t keepalive_ms = absl::ToInt64Milliseconds(ToAbsl(config.keepalive_time()));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS,
                             static_cast<int>(std::min<int64_t>(keepalive_ms, INT32_MAX)));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
                             static_cast<int>(std::min<int64_t>(keepalive_ms, 20000)));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // Let clients ping every 10 s or more without being sent GOAWAY(too_many_pings).
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  // A taken port must fail instead of silently sharing it (gRPC sets SO_REUSEPORT).
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  for (grpc::Service* service : options.services) {
    if (service != nullptr) builder.RegisterService(service);
  }

  auto names = std::make_shared<std::vector<std::string>>();
  builder.SetOption(std::make_unique<ServiceListOption>(names));
  auto instruments = std::make_shared<const Instruments>(options.name);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> creators;
  creators.push_back(std::make_unique<MetricsInterceptorFactory>(instruments));
  builder.experimental().SetInterceptorCreators(std::move(creators));

  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->grpc_port_ == 0) {
    return absl::UnavailableError(absl::StrCat("grpc: cannot listen on ", address));
  }
  server->service_names_ = *names;
  server->SetReady(false);

  if (options.serve_metrics_http) {
    http::ServerOptions http_options;
    http_options.host = config.host();
    http_options.port = static_cast<uint16_t>(config.metrics_port());
    http_options.max_connections = 64;
    Server* raw = server.get();
    http::Handler extra = options.http_handler;
    auto http = http::Server::Start(
        http_options, [raw, extra](const http::Request& req, http::ResponseWriter& w) {
          if (req.path == "/metrics") {
            w.Send(200, metrics::kContentType, metrics::Registry::Default().Serialize());
          } else if (req.path == "/healthz") {
            w.Send(200, "text/plain; charset=utf-8", "ok\n");
          } else if (req.path == "/readyz") {
            if (raw->ready()) {
              w.Send(200, "text/plain; charset=utf-8", "ready\n");
            } else {
              w.Send(503, "text/plain; charset=utf-8", "not ready\n");
            }
          } else if (extra) {
            extra(req, w);
          } else {
            w.Send(404, "text/plain; charset=utf-8", "not found\n");
          }
        });
    if (!http.ok()) {
      server->server_->Shutdown(std::chrono::system_clock::now());
      return absl::Status(http.status().code(),
                          absl::StrCat("metrics http: ", http.status().message()));
    }
    server->http_ = std::move(*http);
  }
  server->options_ = std::move(options);
  log::Info("grpc server started",
            {{"grpc_port", server->grpc_port_}, {"metrics_port", server->metrics_port()},
             {"services", server->service_names_}});
  return server;
}

Server::~Server() {
  Shutdown();
  for (int& fd : wake_fd_) {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
}

int Server::metrics_port() const { return http_ ? http_->port() : 0; }

absl::StatusOr<std::unique_ptr<Server>> Server::StartReady(ServerOptions options) {
  absl::StatusOr<std::unique_ptr<Server>> server = Start(std::move(options));
  if (!server.ok()) return server;
  if (absl::Status written = (*server)->WritePortsFile(); !written.ok()) return written;
  (*server)->SetReady(true);
  return server;
}

absl::Status Server::WritePortsFile() const {
  return rpc::WritePortsFile(options_.config.ports_file(),
                             {{"GRPC_PORT", grpc_port_}, {"METRICS_PORT", metrics_port()}});
}

void Server::SetReady(bool ready) {
  ready_ = ready;
  if (server_ == nullptr) return;
  grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService();
  if (health == nullptr) return;
  health->SetServingStatus("", ready);
  for (const std::string& name : service_names_) health->SetServingStatus(name, ready);
}

int Server::Run() {
  // Termination signals arrive through a signalfd (they must be blocked in every thread,
  // see BlockTerminationSignals); RequestShutdown() arrives through the wake pipe.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  const int sfd = ::signalfd(-1, &set, SFD_CLOEXEC);
  while (!shutdown_requested_.load()) {
    pollfd fds[2] = {{wake_fd_[0], POLLIN, 0}, {sfd, POLLIN, 0}};
    const int ready = ::poll(fds, sfd >= 0 ? 2 : 1, -1);
    if (ready < 0 && errno != EINTR) break;
    if (ready > 0 && sfd >= 0 && (fds[1].revents & POLLIN) != 0) {
      signalfd_siginfo info;
      if (::read(sfd, &info, sizeof(info)) == static_cast<ssize_t>(sizeof(info))) {
        log::Info("termination signal received", {{"signal", static_cast<int>(info.ssi_signo)}});
      }
      shutdown_requested_ = true;
    }
  }
  if (sfd >= 0) ::close(sfd);
  Shutdown();
  return 0;
}

void Server::RequestShutdown() {
  shutdown_requested_ = true;
  if (wake_fd_[1] >= 0) {
    const char byte = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_fd_[1], &byte, 1);
  }
}

void Server::Shutdown() {
  if (shut_down_.exchange(true)) return;
  const absl::Duration grace = ToAbsl(options_.config.shutdown_grace());
  log::Info("draining", {{"grace_seconds", absl::ToDoubleSeconds(grace)}});
  SetReady(false);
  if (server_ != nullptr) {
    server_->Shutdown(absl::ToChronoTime(absl::Now() + grace));
    server_->Wait();
  }
  if (http_ != nullptr) http_->Shutdown(std::min(1.0, absl::ToDoubleSeconds(grace)));
  log::Info("stopped");
}

std::string RequestIdOf(const grpc::ServerContextBase& context) {
  const auto& md = context.client_metadata();
  auto it = md.find(kRequestIdKey);
  if (it != md.end()) {
    absl::string_view id(it->second.data(), it->second.size());
    if (ValidRequestId(id)) return std::string(id);
  }
  return NewRequestId();
}

std::string NewRequestId() {
  thread_local absl::BitGen gen;
  const uint64_t hi = absl::Uniform<uint64_t>(gen);
  const uint64_t lo = absl::Uniform<uint64_t>(gen);
  char buf[33];
  std::snprintf(buf, sizeof(buf), "%016llx%016llx", static_cast<unsigned long long>(hi),
                static_cast<unsigned long long>(lo));
  return std::string(buf, 32);
}

absl::Status WritePortsFile(const std::string& path,
                            const std::vector<std::pair<std::string, int>>& ports) {
  if (path.empty()) return absl::OkStatus();
  const std::string tmp = absl::StrCat(path, ".tmp.", ::getpid());
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!out) {
      return absl::PermissionDeniedError(
          absl::StrCat("ports_file '", path, "': cannot write ", tmp, ": ", std::strerror(errno)));
    }
    for (const auto& [key, value] : ports) out << key << "=" << value << "\n";
    out.flush();
    if (!out) {
      std::remove(tmp.c_str());
      return absl::DataLossError(absl::StrCat("ports_file '", path, "': write failed"));
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string error = std::strerror(errno);
    std::remove(tmp.c_str());
    return absl::FailedPreconditionError(
        absl::StrCat("ports_file '", path, "': rename failed: ", error));
  }
  return absl::OkStatus();
}

}  // namespace helpline::rpc
