// Real gRPC on loopback (port 0): server bootstrap (health, reflection, metrics HTTP,
// interceptor, request id, drain), executor, channel retry policy and client contexts.
#include <signal.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "boost/asio/connect.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "common/grpc/channel.h"
#include "common/grpc/executor.h"
#include "common/grpc/server.h"
#include "common/metrics/metrics.h"
#include "gmock/gmock.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "helpline/preprocess/v1/preprocess_service.grpc.pb.h"

namespace helpline::rpc {
namespace {

using ::helpline::preprocess::v1::PreprocessRequest;
using ::helpline::preprocess::v1::PreprocessResponse;
using ::helpline::preprocess::v1::PreprocessService;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;

// Termination signals are blocked before main() (and so before gRPC starts any thread),
// as a service's main() does first thing; the SIGTERM test relies on it.
const bool kSignalsBlocked = [] {
  BlockTerminationSignals();
  return true;
}();

constexpr char kService[] = "helpline.preprocess.v1.PreprocessService";
constexpr char kMethod[] = "helpline.preprocess.v1.PreprocessService/Preprocess";

// A test-local service: echoes the text; "slow" waits for release(); "flaky" fails with
// UNAVAILABLE on every odd call.
class TestService final : public PreprocessService::CallbackService {
 public:
  ~TestService() override {
    if (!release_.HasBeenNotified()) release_.Notify();
    for (auto& t : threads_) t.join();
  }

  grpc::ServerUnaryReactor* Preprocess(grpc::CallbackServerContext* context,
                                       const PreprocessRequest* request,
                                       PreprocessResponse* response) override {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    {
      std::lock_guard lock(mu_);
      request_ids_.push_back(RequestIdOf(*context));
      request_ids_.push_back(RequestIdOf(*context));
    }
    if (request->text() == "slow") {
      std::lock_guard lock(mu_);
      threads_.emplace_back([this, reactor, response] {
        entered_.Notify();
        release_.WaitForNotificationWithTimeout(absl::Seconds(20));
        response->mutable_result()->set_normalized_text("slow done");
        reactor->Finish(grpc::Status::OK);
      });
      return reactor;
    }
    if (request->text() == "flaky" && flaky_calls_++ % 2 == 0) {
      reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "flaky: try again"));
      return reactor;
    }
    response->mutable_result()->set_normalized_text(request->text());
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  absl::Notification& entered() { return entered_; }
  absl::Notification& release() { return release_; }
  int flaky_calls() const { return flaky_calls_.load(); }
  std::vector<std::string> request_ids() {
    std::lock_guard lock(mu_);
    return request_ids_;
  }

 private:
  std::mutex mu_;
  std::vector<std::thread> threads_;
  std::vector<std::string> request_ids_;
  absl::Notification entered_;
  absl::Notification release_;
  std::atomic<int> flaky_calls_{0};
};

ServerOptions TestOptions(TestService* service) {
  ServerOptions options;
  options.name = "helpline-test";
  options.config.set_grpc_port(0);
  options.config.set_metrics_port(0);
  options.config.mutable_shutdown_grace()->set_seconds(10);
  options.services = {service};
  return options;
}

std::unique_ptr<Server> StartOrDie(ServerOptions options) {
  auto server = Server::Start(std::move(options));
  if (!server.ok()) {
    ADD_FAILURE() << server.status();
    std::abort();
  }
  return std::move(*server);
}

std::shared_ptr<grpc::Channel> Channel(int port) {
  return grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                             grpc::InsecureChannelCredentials());
}

struct HttpResult {
  int status = 0;
  std::string content_type;
  std::string body;
};

HttpResult HttpGet(int port, const std::string& path) {
  namespace beast = boost::beast;
  namespace http = beast::http;
  boost::asio::io_context ioc;
  boost::asio::ip::tcp::socket socket(ioc);
  beast::error_code ec;
  socket.connect({boost::asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(port)}, ec);
  if (ec) return {-1, "", ec.message()};
  http::request<http::empty_body> req{http::verb::get, path, 11};
  req.set(http::field::host, "127.0.0.1");
  req.keep_alive(false);
  http::write(socket, req, ec);
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  http::read(socket, buffer, res, ec);
  if (ec) return {-1, "", ec.message()};
  return {static_cast<int>(res.result_int()), std::string(res[http::field::content_type]),
          res.body()};
}

// grpc.health.v1.Health/Check through a generic stub (request: field 1 = service name;
// response: field 1 = status enum). Returns the status (1 SERVING, 2 NOT_SERVING) or -code.
int HealthCheck(const std::shared_ptr<grpc::Channel>& channel, const std::string& service) {
  std::string request;
  if (!service.empty()) {
    request.push_back(0x0a);
    request.push_back(static_cast<char>(service.size()));
    request += service;
  }
  grpc::Slice slice(request);
  grpc::ByteBuffer request_buffer(&slice, 1);
  grpc::ByteBuffer response_buffer;
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  absl::Notification done;
  grpc::Status status;
  stub.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request_buffer,
                 &response_buffer, [&](grpc::Status s) {
                   status = std::move(s);
                   done.Notify();
                 });
  done.WaitForNotification();
  if (!status.ok()) return -static_cast<int>(status.error_code());
  std::vector<grpc::Slice> slices;
  if (!response_buffer.Dump(&slices).ok()) return -100;
  std::string bytes;
  for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  if (bytes.empty()) return 0;  // UNKNOWN (default value omitted).
  if (bytes.size() != 2 || bytes[0] != 0x08) return -101;
  return bytes[1];
}

// grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo with list_services
// (field 7); returns the raw response bytes (service names appear in them).
std::string ReflectionListServices(const std::shared_ptr<grpc::Channel>& channel,
                                   grpc::Status* final_status) {
  grpc::GenericStub stub(channel);
  grpc::CompletionQueue cq;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  auto call = stub.PrepareCall(&context,
                               "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                               &cq);
  void* tag;
  bool ok;
  auto next = [&](intptr_t expected) {
    return cq.Next(&tag, &ok) && reinterpret_cast<intptr_t>(tag) == expected && ok;
  };
  call->StartCall(reinterpret_cast<void*>(1));
  if (!next(1)) return "";
  const std::string request = std::string("\x3a\x01*", 3);  // list_services: "*"
  grpc::Slice slice(request);
  grpc::ByteBuffer request_buffer(&slice, 1);
  call->Write(request_buffer, reinterpret_cast<void*>(2));
  if (!next(2)) return "";
  grpc::ByteBuffer response_buffer;
  call->Read(&response_buffer, reinterpret_cast<void*>(3));
  if (!next(3)) return "";
  call->WritesDone(reinterpret_cast<void*>(4));
  next(4);
  call->Finish(final_status, reinterpret_cast<void*>(5));
  next(5);
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  std::vector<grpc::Slice> slices;
  std::string bytes;
  if (response_buffer.Dump(&slices).ok()) {
    for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  return bytes;
}

grpc::Status CallPreprocess(const std::shared_ptr<grpc::Channel>& channel,
                            const std::string& text, PreprocessResponse* response,
                            const std::string& request_id = "",
                            std::string* echoed_request_id = nullptr) {
  auto stub = PreprocessService::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  if (!request_id.empty()) context.AddMetadata("x-request-id", request_id);
  PreprocessRequest request;
  request.set_text(text);
  grpc::Status status = stub->Preprocess(&context, request, response);
  if (echoed_request_id != nullptr) {
    const auto& md = context.GetServerInitialMetadata();
    auto it = md.find("x-request-id");
    *echoed_request_id = it == md.end() ? "" : std::string(it->second.data(), it->second.size());
  }
  return status;
}

TEST(ServerTest, HealthStartsNotServingAndFollowsSetReady) {
  TestService service;
  auto server = StartOrDie(TestOptions(&service));
  auto channel = Channel(server->grpc_port());
  EXPECT_EQ(HealthCheck(channel, ""), 2);
  EXPECT_EQ(HealthCheck(channel, kService), 2);
  EXPECT_EQ(HttpGet(server->metrics_port(), "/readyz").status, 503);
  EXPECT_FALSE(server->ready());

  server->SetReady(true);
  EXPECT_TRUE(server->ready());
  EXPECT_EQ(HealthCheck(channel, ""), 1);
  EXPECT_EQ(HealthCheck(channel, kService), 1);
  EXPECT_EQ(HttpGet(server->metrics_port(), "/readyz").status, 200);
  // A service that is not served is NOT_FOUND.
  EXPECT_EQ(HealthCheck(channel, "no.such.Service"),
            -static_cast<int>(grpc::StatusCode::NOT_FOUND));

  server->SetReady(false);
  EXPECT_EQ(HealthCheck(channel, kService), 2);
  server->Shutdown();
}

TEST(ServerTest, ReflectionListsServices) {
  TestService service;
  auto server = StartOrDie(TestOptions(&service));
  grpc::Status status;
  const std::string bytes = ReflectionListServices(Channel(server->grpc_port()), &status);
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_THAT(bytes, HasSubstr(kService));
  EXPECT_THAT(bytes, HasSubstr("grpc.health.v1.Health"));
  // The interceptor also records bidi-streaming calls.
  auto& handled = metrics::Registry::Default().AddCounter("helpline_grpc_server_handled_total",
                                                          "", {"service", "method", "code"});
  const std::string method = "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo";
  EXPECT_EQ(handled.Get({"helpline-test", method, "OK"}).Value(), 1);
}

TEST(ServerTest, MetricsPortServesMetricsHealthzAndDelegates) {
  TestService service;
  ServerOptions options = TestOptions(&service);
  options.http_handler = [](const http::Request& req, http::ResponseWriter& w) {
    if (req.path == "/extra") return w.Send(200, "text/plain", "extra route");
    w.Send(404, "text/plain", "nope");
  };
  auto server = StartOrDie(std::move(options));
  PreprocessResponse response;
  ASSERT_TRUE(CallPreprocess(Channel(server->grpc_port()), "hello", &response).ok());
  EXPECT_EQ(response.result().normalized_text(), "hello");

  const HttpResult metrics = HttpGet(server->metrics_port(), "/metrics");
  EXPECT_EQ(metrics.status, 200);
  EXPECT_EQ(metrics.content_type, metrics::kContentType);
  EXPECT_THAT(metrics.body,
              HasSubstr(absl::StrCat("helpline_grpc_server_handled_total{service=\"helpline-test\","
                                     "method=\"",
                                     kMethod, "\",code=\"OK\"} ")));
  EXPECT_THAT(metrics.body,
              HasSubstr(absl::StrCat("helpline_grpc_server_handling_seconds_count{service="
                                     "\"helpline-test\",method=\"",
                                     kMethod, "\"} ")));
  const HttpResult healthz = HttpGet(server->metrics_port(), "/healthz");
  EXPECT_EQ(healthz.status, 200);
  EXPECT_EQ(healthz.body, "ok\n");
  EXPECT_EQ(HttpGet(server->metrics_port(), "/extra").body, "extra route");
  EXPECT_EQ(HttpGet(server->metrics_port(), "/missing").status, 404);

  // The live exposition passes promtool too.
  if (std::system("command -v promtool >/dev/null") == 0) {
    const std::string path = (std::filesystem::temp_directory_path() /
                              absl::StrCat("grpc_metrics_", getpid(), ".prom"))
                                 .string();
    std::ofstream(path) << metrics.body;
    FILE* pipe = popen(absl::StrCat("promtool check metrics < ", path, " 2>&1").c_str(), "r");
    ASSERT_NE(pipe, nullptr);
    std::string output;
    std::array<char, 256> buf;
    size_t n;
    while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) output.append(buf.data(), n);
    const int rc = pclose(pipe);
    std::filesystem::remove(path);
    EXPECT_EQ(rc, 0) << output;
    EXPECT_EQ(output, "");
  }
}

TEST(ServerTest, MetricsRecordErrorCodes) {
  TestService service;
  auto server = StartOrDie(TestOptions(&service));
  auto& handled = metrics::Registry::Default().AddCounter("helpline_grpc_server_handled_total",
                                                          "", {"service", "method", "code"});
  const double before = handled.Get({"helpline-test", kMethod, "UNAVAILABLE"}).Value();
  PreprocessResponse response;
  // A plain channel (no retry policy): the first "flaky" call fails.
  EXPECT_EQ(CallPreprocess(Channel(server->grpc_port()), "flaky", &response).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(handled.Get({"helpline-test", kMethod, "UNAVAILABLE"}).Value(), before + 1);
}

TEST(ServerTest, UnknownMethodsShareOneMetricLabel) {
  TestService service;
  auto server = StartOrDie(TestOptions(&service));
  auto& handled = metrics::Registry::Default().AddCounter("helpline_grpc_server_handled_total",
                                                          "", {"service", "method", "code"});
  const double before = handled.Get({"helpline-test", "unknown", "UNIMPLEMENTED"}).Value();
  grpc::GenericStub stub(Channel(server->grpc_port()));
  for (int i = 0; i < 3; ++i) {
    grpc::ClientContext context;
    grpc::Slice empty("");
    grpc::ByteBuffer request(&empty, 1);
    grpc::ByteBuffer reply;
    grpc::Status status;
    absl::Notification done;
    stub.UnaryCall(&context, absl::StrCat("/made.Up/Method", i), grpc::StubOptions(), &request,
                   &reply, [&](grpc::Status s) {
                     status = std::move(s);
                     done.Notify();
                   });
    done.WaitForNotification();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  }
  EXPECT_EQ(handled.Get({"helpline-test", "unknown", "UNIMPLEMENTED"}).Value(), before + 3);
  const std::string text = metrics::Registry::Default().Serialize();
  EXPECT_EQ(text.find("made.Up"), std::string::npos);
}

TEST(ServerTest, RequestIdRoundTrips) {
  TestService service;
  auto server = StartOrDie(TestOptions(&service));
  auto channel = Channel(server->grpc_port());
  PreprocessResponse response;
  std::string echoed;
  ASSERT_TRUE(CallPreprocess(channel, "a", &response, "req-123.abc_X", &echoed).ok());
  EXPECT_EQ(echoed, "req-123.abc_X");
  ASSERT_TRUE(CallPreprocess(channel, "b", &response, "", &echoed).ok());
  EXPECT_THAT(echoed, MatchesRegex("[0-9a-f]{32}"));
  const std::string generated = echoed;
  ASSERT_TRUE(CallPreprocess(channel, "c", &response, "bad id with spaces", &echoed).ok());
  EXPECT_THAT(echoed, MatchesRegex("[0-9a-f]{32}"));

  const std::vector<std::string> ids = service.request_ids();  // Two per call.
  ASSERT_EQ(ids.size(), 6u);
  EXPECT_EQ(ids[0], "req-123.abc_X");
  EXPECT_EQ(ids[1], "req-123.abc_X");
  // A generated id is the same for every RequestIdOf of the call and the one echoed.
  EXPECT_EQ(ids[2], generated);
  EXPECT_EQ(ids[3], generated);
  EXPECT_EQ(ids[4], echoed);
  EXPECT_EQ(ids[5], echoed);
}

TEST(ServerTest, PrepareClientContextCarriesRequestId) {
  TestService service;
  auto server = StartOrDie(TestOptions(&service));
  common::v1::UpstreamConfig config;
  ApplyUpstreamDefaults(config, absl::StrCat("127.0.0.1:", server->grpc_port()));
  auto stub = PreprocessService::NewStub(MakeChannel(config, kService, 1 << 20));
  grpc::ClientContext context;
  PrepareClientContext(context, config, absl::Now() + absl::Seconds(10), "turn-42");
  PreprocessRequest request;
  request.set_text("x");
  PreprocessResponse response;
  ASSERT_TRUE(stub->Preprocess(&context, request, &response).ok());
  EXPECT_EQ(service.request_ids().front(), "turn-42");
}

TEST(ServerTest, RequestShutdownDrainsInFlightRpcAndRunReturnsZero) {
  TestService service;
  auto server = StartOrDie(TestOptions(&service));
  server->SetReady(true);
  auto channel = Channel(server->grpc_port());
  int run_result = -1;
  std::thread runner([&] { run_result = server->Run(); });

  grpc::Status slow_status;
  PreprocessResponse slow_response;
  std::thread caller([&] { slow_status = CallPreprocess(channel, "slow", &slow_response); });
  ASSERT_TRUE(service.entered().WaitForNotificationWithTimeout(absl::Seconds(10)));

  server->RequestShutdown();
  // Draining has begun once readiness drops; the slow RPC is still running.
  for (int i = 0; i < 2000 && server->ready(); ++i) absl::SleepFor(absl::Milliseconds(1));
  EXPECT_FALSE(server->ready());
  service.release().Notify();
  caller.join();
  runner.join();
  EXPECT_TRUE(slow_status.ok()) << slow_status.error_message();
  EXPECT_EQ(slow_response.result().normalized_text(), "slow done");
  EXPECT_EQ(run_result, 0);
  // The server is gone: new calls fail.
  PreprocessResponse response;
  EXPECT_FALSE(CallPreprocess(Channel(server->grpc_port()), "late", &response).ok());
}

TEST(ServerTest, SigtermMakesRunReturnZero) {
  ASSERT_TRUE(kSignalsBlocked);
  TestService service;
  auto server = StartOrDie(TestOptions(&service));
  int run_result = -1;
  std::thread runner([&] { run_result = server->Run(); });
  ASSERT_EQ(::kill(::getpid(), SIGTERM), 0);  // Blocked everywhere: Run's signalfd takes it.
  runner.join();
  EXPECT_EQ(run_result, 0);
}

TEST(ServerTest, RequestShutdownBeforeRunReturnsImmediately) {
  TestService service;
  auto server = StartOrDie(TestOptions(&service));
  server->RequestShutdown();
  EXPECT_EQ(server->Run(), 0);
}

TEST(ServerTest, TakenPortIsUnavailable) {
  TestService service;
  auto first = StartOrDie(TestOptions(&service));
  TestService other;
  ServerOptions options = TestOptions(&other);
  options.config.set_grpc_port(first->grpc_port());
  auto second = Server::Start(std::move(options));
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable) << second.status();
}

TEST(ServerTest, ApplyServerDefaultsFillsOnlyUnsetFields) {
  common::v1::ServerConfig config;
  config.set_grpc_port(50063);
  config.set_max_queued_requests(7);
  ApplyServerDefaults(config);
  EXPECT_EQ(config.host(), "127.0.0.1");
  EXPECT_EQ(config.grpc_port(), 50063u);
  EXPECT_EQ(config.metrics_port(), 0u);
  EXPECT_EQ(config.max_message_bytes(), 32u << 20);
  EXPECT_EQ(config.shutdown_grace().seconds(), 10);
  EXPECT_EQ(config.keepalive_time().seconds(), 30);
  EXPECT_GE(config.worker_threads(), 2u);
  EXPECT_EQ(config.max_queued_requests(), 7u);
  EXPECT_EQ(config.log_level(), "info");
}

TEST(ServerTest, WritePortsFileIsComplete) {
  const std::string path =
      (std::filesystem::temp_directory_path() / absl::StrCat("ports_", getpid(), ".env")).string();
  ASSERT_TRUE(WritePortsFile(path, {{"GRPC_PORT", 50061}, {"METRICS_PORT", 9161}}).ok());
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str(), "GRPC_PORT=50061\nMETRICS_PORT=9161\n");
  std::filesystem::remove(path);
  EXPECT_TRUE(WritePortsFile("", {{"X", 1}}).ok());
  EXPECT_FALSE(WritePortsFile("/nonexistent-dir/ports.env", {{"X", 1}}).ok());
}

TEST(RequestIdTest, NewRequestIdIsRandomHex) {
  const std::string a = NewRequestId();
  EXPECT_THAT(a, MatchesRegex("[0-9a-f]{32}"));
  EXPECT_NE(a, NewRequestId());
}

// ---- Executor ----

TEST(ExecutorTest, FullQueueIsResourceExhaustedAndDrainRunsEverything) {
  Executor executor(1, 2, "test");
  absl::Notification started;
  absl::Notification release;
  std::atomic<int> ran{0};
  ASSERT_TRUE(executor
                  .TrySchedule([&] {
                    started.Notify();
                    release.WaitForNotification();
                    ++ran;
                  })
                  .ok());
  started.WaitForNotification();  // The worker is busy; the queue is empty.
  EXPECT_TRUE(executor.TrySchedule([&] { ++ran; }).ok());
  EXPECT_TRUE(executor.TrySchedule([&] { ++ran; }).ok());
  EXPECT_EQ(executor.queued(), 2u);
  const absl::Status full = executor.TrySchedule([&] { ++ran; });
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted) << full;

  std::thread drainer([&] { executor.Drain(); });
  release.Notify();
  drainer.join();
  EXPECT_EQ(ran.load(), 3);
  EXPECT_EQ(executor.queued(), 0u);
  EXPECT_EQ(executor.TrySchedule([] {}).code(), absl::StatusCode::kUnavailable);
  executor.Drain();  // Idempotent.
}

TEST(ExecutorTest, RunsTasksOnSeveralThreads) {
  std::atomic<int> ran{0};
  {
    Executor executor(3, 100, "pool");
    for (int i = 0; i < 50; ++i) ASSERT_TRUE(executor.TrySchedule([&] { ++ran; }).ok());
  }  // The destructor drains.
  EXPECT_EQ(ran.load(), 50);
}

// ---- Channel ----

TEST(ChannelTest, RetryPolicyRetriesUnavailable) {
  TestService service;
  auto server = StartOrDie(TestOptions(&service));
  common::v1::UpstreamConfig config;
  config.set_target(absl::StrCat("127.0.0.1:", server->grpc_port()));
  config.set_max_attempts(2);
  PreprocessResponse response;
  grpc::Status status = CallPreprocess(MakeChannel(config, kService, 1 << 20), "flaky", &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.result().normalized_text(), "flaky");
  EXPECT_EQ(service.flaky_calls(), 2);

  // With one attempt there is no retry: the (odd) call fails.
  config.set_max_attempts(1);
  status = CallPreprocess(MakeChannel(config, kService, 1 << 20), "flaky", &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(service.flaky_calls(), 3);

  // A retry policy for another service does not apply to this one.
  status = CallPreprocess(MakeChannel(config, "helpline.other.v1.Other", 1 << 20), "flaky",
                          &response);
  EXPECT_TRUE(status.ok());  // The 4th call (even) succeeds by itself.
  config.set_max_attempts(2);
  status = CallPreprocess(MakeChannel(config, "helpline.other.v1.Other", 1 << 20), "flaky",
                          &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST(ChannelTest, ApplyUpstreamDefaults) {
  common::v1::UpstreamConfig config;
  ApplyUpstreamDefaults(config, "127.0.0.1:50063");
  EXPECT_EQ(config.target(), "127.0.0.1:50063");
  EXPECT_EQ(config.timeout().seconds(), 5);
  EXPECT_EQ(config.max_attempts(), 2u);
  EXPECT_FLOAT_EQ(config.deadline_fraction(), 1.0f);
  config.set_target("dns:///dst:1");
  config.set_max_attempts(1);
  config.set_deadline_fraction(0.5f);
  ApplyUpstreamDefaults(config, "ignored:1");
  EXPECT_EQ(config.target(), "dns:///dst:1");
  EXPECT_EQ(config.max_attempts(), 1u);
  EXPECT_FLOAT_EQ(config.deadline_fraction(), 0.5f);
}

TEST(ChannelTest, PrepareClientContextDeadline) {
  common::v1::UpstreamConfig config;
  ApplyUpstreamDefaults(config, "x:1");
  config.set_deadline_fraction(0.25f);
  const auto seconds_left = [](const grpc::ClientContext& c) {
    return std::chrono::duration<double>(c.deadline() - std::chrono::system_clock::now())
        .count();
  };
  {
    grpc::ClientContext context;  // 25% of 8 s = 2 s < timeout 5 s.
    PrepareClientContext(context, config, absl::Now() + absl::Seconds(8), "id");
    EXPECT_NEAR(seconds_left(context), 2.0, 0.5);
  }
  {
    grpc::ClientContext context;  // 25% of 100 s = 25 s, capped by the 5 s timeout.
    PrepareClientContext(context, config, absl::Now() + absl::Seconds(100), "id");
    EXPECT_NEAR(seconds_left(context), 5.0, 0.5);
  }
  {
    grpc::ClientContext context;  // No turn deadline: the timeout.
    PrepareClientContext(context, config, absl::InfiniteFuture(), "");
    EXPECT_NEAR(seconds_left(context), 5.0, 0.5);
  }
  {
    grpc::ClientContext context;  // A turn already late: the deadline is not in the future.
    PrepareClientContext(context, config, absl::Now() - absl::Seconds(1), "id");
    EXPECT_LE(seconds_left(context), 0.0);
  }
}

}  // namespace
}  // namespace helpline::rpc
