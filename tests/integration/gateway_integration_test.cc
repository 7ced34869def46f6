// The gateway App in-process (gRPC and HTTP on free ports) against a real redis-server and
// the four real stage binaries: conversations over HTTP and gRPC, bad input that writes
// nothing, sessions scoped by tenant, the failure policy of DESIGN §6 (generation down,
// Redis down, deadline passed), and handoffs to a human (initiate, accept, turns while a
// human owns the session, release, bad calls, a gateway restart).
//
// One set of processes serves the suite; SetUp repairs whatever a previous test stopped.
#include <signal.h>

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/redis/redis_client.h"
#include "google/protobuf/util/time_util.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "helpline/chat/v1/chat_service.grpc.pb.h"
#include "nlohmann/json.hpp"
#include "services/gateway/app.h"
#include "services/gateway/auth.h"
#include "tests/testing/process_fixture.h"
#include "tests/testing/redis_fixture.h"
#include "tests/testing/shop_domain.h"

namespace helpline::gateway {
namespace {

using nlohmann::json;
using testutil::HttpCall;
using testutil::HttpResponse;
using testutil::ProcessOptions;
using testutil::RedisServer;
using testutil::RedisServerOptions;
using testutil::ServiceProcess;

constexpr char kTenantA[] = "tenant-a";
constexpr char kTenantB[] = "tenant-b";
const char* const kStages[] = {"preprocess", "fusion", "dst", "generation"};

std::string Be32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
          static_cast<char>(v)};
}

// A PNG header (signature + IHDR) claiming width x height, followed by `tail`.
std::string PngHeader(uint32_t width, uint32_t height, const std::string& tail = "") {
  std::string b("\x89PNG\r\n\x1a\n", 8);
  b += Be32(13) + "IHDR" + Be32(width) + Be32(height);
  b += std::string("\x08\x02\x00\x00\x00", 5) + Be32(0);
  return b + tail;
}

std::string DataUrl(absl::string_view mime, absl::string_view bytes) {
  return absl::StrCat("data:", mime, ";base64,", absl::Base64Escape(bytes));
}

json UserMessage(const std::string& text, const std::vector<std::string>& image_urls = {}) {
  if (image_urls.empty()) return {{"role", "user"}, {"content", text}};
  json content = json::array({{{"type", "text"}, {"text", text}}});
  for (const std::string& url : image_urls) {
    content.push_back({{"type", "image_url"}, {"image_url", {{"url", url}}}});
  }
  return {{"role", "user"}, {"content", content}};
}

class GatewayIntegrationTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    RedisServerOptions redis_options;
    // Data must survive a Stop() + Restart() for the "nothing half-written" test.
    redis_options.extra_args = {"--appendonly", "yes", "--appendfsync", "always"};
    auto redis = RedisServer::Start(redis_options);
    ASSERT_TRUE(redis.ok()) << redis.status();
    redis_ = std::move(*redis).release();

    auto dir = testutil::MakeTempDir("gateway-it-");
    ASSERT_TRUE(dir.ok()) << dir.status();
    work_dir_ = new std::string(*dir);
    domain_file_ = new std::string(testutil::SourceDir() + "/domains/shop.yaml");

    stages_ = new std::map<std::string, std::unique_ptr<ServiceProcess>>();
    for (const char* stage : kStages) {
      ProcessOptions options;
      options.binary = absl::StrCat("helpline-", stage);
      options.name = stage;
      options.work_dir = *work_dir_;
      if (std::string(stage) == "dst" || std::string(stage) == "generation") {
        options.args = {"--set", "domain_file=" + *domain_file_};
      }
      auto process = ServiceProcess::Launch(options);
      ASSERT_TRUE(process.ok()) << process.status();
      (*stages_)[stage] = std::move(*process);
    }
    for (auto& [name, process] : *stages_) {
      absl::Status ready = process->WaitReady(absl::Seconds(90));
      ASSERT_TRUE(ready.ok()) << ready;
    }

    keys_ = new std::map<std::string, std::string>{{kTenantA, "hlk-a-" + testutil::RandomHex(12)},
                                                   {kTenantB, "hlk-b-" + testutil::RandomHex(12)}};
    auto app = App::Create(Config());
    ASSERT_TRUE(app.ok()) << app.status();
    app_ = std::move(*app).release();
    app_->SetReady(true);
    channel_ = new std::shared_ptr<grpc::Channel>(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", app_->grpc_port()), grpc::InsecureChannelCredentials()));
  }

  static void TearDownTestSuite() {
    delete channel_;
    delete app_;
    delete stages_;
    delete redis_;
    delete keys_;
    delete work_dir_;
    delete domain_file_;
  }

  static v1::GatewayConfig Config() {
    v1::GatewayConfig config;
    config.mutable_server()->set_host("127.0.0.1");
    config.mutable_server()->mutable_shutdown_grace()->set_seconds(2);
    config.mutable_server()->set_worker_threads(16);
    config.set_http_port(0);
    config.mutable_preprocess()->set_target((*stages_)["preprocess"]->grpc_target());
    config.mutable_fusion()->set_target((*stages_)["fusion"]->grpc_target());
    config.mutable_dst()->set_target((*stages_)["dst"]->grpc_target());
    config.mutable_generation()->set_target((*stages_)["generation"]->grpc_target());
    config.mutable_generation()->mutable_timeout()->set_seconds(2);
    config.mutable_store()->set_redis_url(redis_->url());
    config.set_domain_file(*domain_file_);
    config.mutable_turn_timeout()->set_seconds(15);
    for (const auto& [tenant, key] : *keys_) {
      v1::ApiKey* api_key = config.add_api_keys();
      api_key->set_tenant(tenant);
      api_key->set_salt(testutil::RandomHex(8));
      api_key->set_sha256(SaltedKeyHash(api_key->salt(), key));
      api_key->set_name(tenant + "-test");
    }
    return config;
  }

  void SetUp() override {
    ASSERT_NE(app_, nullptr) << "suite setup failed";
    if (!redis_->running()) {
      ASSERT_TRUE(redis_->Restart().ok());
    }
    for (auto& [name, process] : *stages_) {
      if (process->running()) {
        (void)process->Signal(SIGCONT);
      } else {
        absl::Status restarted = process->Restart();
        ASSERT_TRUE(restarted.ok()) << restarted;
      }
    }
    ASSERT_TRUE(WaitReady(absl::Seconds(30))) << "gateway not ready";
  }

  // Polls /readyz (cached for 1s by the gateway).
  static bool WaitReady(absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      auto r = HttpCall(app_->http_port(), "GET", "/readyz");
      if (r.ok() && r->status == 200) return true;
      absl::SleepFor(absl::Milliseconds(200));
    }
    return false;
  }

  static std::string Bearer(const std::string& tenant) {
    return absl::StrCat("Bearer ", keys_->at(tenant));
  }

  static std::string NewSession(absl::string_view prefix) {
    return absl::StrCat(prefix, "-", testutil::RandomHex(6));
  }

  // POST /v1/chat/completions.
  static HttpResponse Chat(const std::string& tenant, const std::string& session,
                           const json& body, std::map<std::string, std::string> headers = {}) {
    if (!tenant.empty()) headers["Authorization"] = Bearer(tenant);
    if (!session.empty()) headers["X-Helpline-Session"] = session;
    headers["Content-Type"] = "application/json";
    auto r = HttpCall(app_->http_port(), "POST", "/v1/chat/completions", body.dump(), headers);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : HttpResponse{};
  }

  static HttpResponse ChatRaw(const std::string& tenant, const std::string& session,
                              const std::string& body) {
    std::map<std::string, std::string> headers{{"Content-Type", "application/json"}};
    if (!tenant.empty()) headers["Authorization"] = Bearer(tenant);
    if (!session.empty()) headers["X-Helpline-Session"] = session;
    auto r = HttpCall(app_->http_port(), "POST", "/v1/chat/completions", body, headers);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : HttpResponse{};
  }

  static HttpResponse Say(const std::string& tenant, const std::string& session,
                          const std::string& text) {
    return Chat(tenant, session, {{"model", "helpline"}, {"messages", {UserMessage(text)}}});
  }

  static json Parse(const HttpResponse& response) {
    json parsed = json::parse(response.body, nullptr, false);
    EXPECT_FALSE(parsed.is_discarded()) << response.body;
    return parsed;
  }

  // Every key in Redis with its DUMP, to prove that nothing was written.
  static std::map<std::string, std::string> Snapshot() {
    redis::RedisOptions options;
    options.port = redis_->port();
    auto connection = redis::Connection::Connect(options);
    EXPECT_TRUE(connection.ok()) << connection.status();
    std::map<std::string, std::string> out;
    if (!connection.ok()) return out;
    auto keys = (*connection)->Command({"KEYS", "*"});
    EXPECT_TRUE(keys.ok()) << keys.status();
    if (!keys.ok()) return out;
    for (const redis::Reply& key : keys->elements) {
      // A hash's DUMP lists its fields in the order of redis' dict, which is seeded at
      // random per process: compare hashes by their sorted fields, so that a restart does
      // not look like a change.
      auto type = (*connection)->Command({"TYPE", key.str});
      if (type.ok() && type->str == "hash") {
        auto fields = (*connection)->Command({"HGETALL", key.str});
        std::map<std::string, std::string> sorted;
        if (fields.ok()) {
          for (size_t i = 0; i + 1 < fields->elements.size(); i += 2) {
            sorted[fields->elements[i].str] = fields->elements[i + 1].str;
          }
        }
        std::string flat = fields.ok() ? "hash:" : "?";
        for (const auto& [field, value] : sorted) absl::StrAppend(&flat, field, "=", value, ";");
        out[key.str] = flat;
        continue;
      }
      auto dump = (*connection)->Command({"DUMP", key.str});
      out[key.str] = dump.ok() ? dump->str : "?";
    }
    return out;
  }

  static bool HasKeysOf(const std::string& tenant, const std::string& session) {
    const std::string tag = absl::StrCat("{", tenant, ":", session, "}");
    for (const auto& [key, value] : Snapshot()) {
      if (absl::StrContains(key, tag)) return true;
    }
    return false;
  }

  template <typename Stub>
  static std::unique_ptr<Stub> NewStub() {
    return std::make_unique<Stub>(*channel_);
  }

  static void Authorize(grpc::ClientContext& context, const std::string& tenant,
                        absl::Duration timeout = absl::Seconds(20)) {
    if (!tenant.empty()) context.AddMetadata("authorization", Bearer(tenant));
    context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  }

  static grpc::Status GetSession(const std::string& tenant, const std::string& session,
                                 chat::v1::GetSessionResponse* response) {
    chat::v1::SessionService::Stub stub(*channel_);
    grpc::ClientContext context;
    Authorize(context, tenant);
    chat::v1::GetSessionRequest request;
    request.set_session_id(session);
    return stub.GetSession(&context, request, response);
  }

  static grpc::Status Converse(const std::string& tenant, const std::string& session,
                               const std::string& text, chat::v1::ConverseResponse* response,
                               absl::Duration timeout = absl::Seconds(20)) {
    chat::v1::ChatService::Stub stub(*channel_);
    grpc::ClientContext context;
    Authorize(context, tenant, timeout);
    chat::v1::ConverseRequest request;
    request.set_session_id(session);
    request.set_text(text);
    return stub.Converse(&context, request, response);
  }

  // A handoff route of the HTTP API: GET .../handoff, POST .../handoff/accept|release.
  static HttpResponse HandoffHttp(const std::string& tenant, const std::string& session,
                                  const std::string& action, const std::string& body = "",
                                  int port = 0) {
    std::map<std::string, std::string> headers{{"Content-Type", "application/json"}};
    if (!tenant.empty()) headers["Authorization"] = Bearer(tenant);
    const std::string path = absl::StrCat("/v1/sessions/", session, "/handoff",
                                          action.empty() ? "" : "/", action);
    auto r = HttpCall(port == 0 ? app_->http_port() : port, action.empty() ? "GET" : "POST",
                      path, body, headers);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : HttpResponse{};
  }

  // HandoffService calls; `channel` defaults to the suite's gateway.
  static grpc::Status AcceptHandoff(const std::string& tenant, const std::string& session,
                                    const std::string& agent, common::v1::Handoff* handoff,
                                    std::shared_ptr<grpc::Channel> channel = nullptr) {
    chat::v1::HandoffService::Stub stub(channel ? channel : *channel_);
    grpc::ClientContext context;
    Authorize(context, tenant);
    chat::v1::AcceptHandoffRequest request;
    request.set_session_id(session);
    request.set_agent_id(agent);
    chat::v1::AcceptHandoffResponse response;
    grpc::Status status = stub.AcceptHandoff(&context, request, &response);
    if (handoff != nullptr) *handoff = response.handoff();
    return status;
  }

  static grpc::Status ReleaseHandoff(const std::string& tenant, const std::string& session,
                                     common::v1::Handoff* handoff) {
    chat::v1::HandoffService::Stub stub(*channel_);
    grpc::ClientContext context;
    Authorize(context, tenant);
    chat::v1::ReleaseHandoffRequest request;
    request.set_session_id(session);
    chat::v1::ReleaseHandoffResponse response;
    grpc::Status status = stub.ReleaseHandoff(&context, request, &response);
    if (handoff != nullptr) *handoff = response.handoff();
    return status;
  }

  static grpc::Status GetHandoff(const std::string& tenant, const std::string& session,
                                 common::v1::Handoff* handoff,
                                 std::shared_ptr<grpc::Channel> channel = nullptr) {
    chat::v1::HandoffService::Stub stub(channel ? channel : *channel_);
    grpc::ClientContext context;
    Authorize(context, tenant);
    chat::v1::GetHandoffRequest request;
    request.set_session_id(session);
    chat::v1::GetHandoffResponse response;
    grpc::Status status = stub.GetHandoff(&context, request, &response);
    if (handoff != nullptr) *handoff = response.handoff();
    return status;
  }

  // ConverseStream: the concatenated deltas, their count and the final message.
  static grpc::Status ConverseStream(const std::string& tenant, const std::string& session,
                                     const std::string& text, std::string* streamed, int* deltas,
                                     chat::v1::ConverseResponse* final_response) {
    chat::v1::ChatService::Stub stub(*channel_);
    grpc::ClientContext context;
    Authorize(context, tenant);
    chat::v1::ConverseStreamRequest request;
    request.set_session_id(session);
    request.set_text(text);
    auto reader = stub.ConverseStream(&context, request);
    chat::v1::ConverseStreamResponse message;
    *deltas = 0;
    while (reader->Read(&message)) {
      if (message.has_final()) {
        *final_response = message.final();
      } else {
        *streamed += message.delta();
        ++*deltas;
      }
    }
    return reader->Finish();
  }

  // The SSE events of a streamed HTTP turn: the concatenated content and the final chunk.
  static void ParseStream(const HttpResponse& r, std::string* content, json* final_chunk) {
    for (absl::string_view line : absl::StrSplit(r.body, '\n')) {
      if (!absl::StartsWith(line, "data: ") || line == "data: [DONE]") continue;
      json chunk = json::parse(line.substr(6), nullptr, false);
      ASSERT_FALSE(chunk.is_discarded()) << line;
      if (chunk["choices"].empty()) continue;
      const json& choice = chunk["choices"][0];
      if (choice["delta"].contains("content")) {
        *content += choice["delta"]["content"].get<std::string>();
      }
      if (!choice["finish_reason"].is_null()) *final_chunk = chunk;
    }
  }

  // The variants of the shop domain's "escalate" template in `language`.
  static std::vector<std::string> EscalateTemplates(const std::string& language) {
    const auto& shop = testutil::ShopDomain();
    EXPECT_TRUE(shop.ok()) << shop.status();
    if (!shop.ok()) return {};
    const std::vector<std::string>* variants = (*shop)->FindTemplate("escalate", language);
    EXPECT_NE(variants, nullptr) << language;
    return variants != nullptr ? *variants : std::vector<std::string>{};
  }

  static bool IsEscalateTemplate(const std::string& text, const std::string& language) {
    const std::vector<std::string> variants = EscalateTemplates(language);
    return std::find(variants.begin(), variants.end(), text) != variants.end();
  }

  // The value of a handoff counter on /metrics (0 when absent).
  static double HandoffCount(const std::string& reason, const std::string& status) {
    auto r = HttpCall(app_->http_port(), "GET", "/metrics");
    if (!r.ok()) return -1;
    const std::string needle = absl::StrCat("helpline_gateway_handoffs_total{reason=\"", reason,
                                            "\",status=\"", status, "\"} ");
    const size_t at = r->body.find(needle);
    if (at == std::string::npos) return 0;
    return std::stod(r->body.substr(at + needle.size()));
  }

  static RedisServer* redis_;
  static std::string* work_dir_;
  static std::string* domain_file_;
  static std::map<std::string, std::unique_ptr<ServiceProcess>>* stages_;
  static std::map<std::string, std::string>* keys_;
  static App* app_;
  static std::shared_ptr<grpc::Channel>* channel_;
};

RedisServer* GatewayIntegrationTest::redis_ = nullptr;
std::string* GatewayIntegrationTest::work_dir_ = nullptr;
std::string* GatewayIntegrationTest::domain_file_ = nullptr;
std::map<std::string, std::unique_ptr<ServiceProcess>>* GatewayIntegrationTest::stages_ = nullptr;
std::map<std::string, std::string>* GatewayIntegrationTest::keys_ = nullptr;
App* GatewayIntegrationTest::app_ = nullptr;
std::shared_ptr<grpc::Channel>* GatewayIntegrationTest::channel_ = nullptr;

TEST_F(GatewayIntegrationTest, ThreeTurnConversationOverHttpIsStoredInRedis) {
  const std::string session = NewSession("conv");

  HttpResponse first = Chat(kTenantA, session,
                            {{"model", "helpline"}, {"messages", {UserMessage("Where is my order?")}}},
                            {{"X-Request-Id", "it-req-1"}});
  ASSERT_EQ(first.status, 200) << first.body;
  EXPECT_EQ(first.headers["x-request-id"], "it-req-1");
  json one = Parse(first);
  EXPECT_EQ(one["object"], "chat.completion");
  EXPECT_TRUE(absl::StartsWith(one["id"].get<std::string>(), "chatcmpl-"));
  EXPECT_EQ(one["choices"][0]["message"]["role"], "assistant");
  EXPECT_FALSE(one["choices"][0]["message"]["content"].get<std::string>().empty());
  EXPECT_EQ(one["helpline"]["session_id"], session);
  EXPECT_EQ(one["helpline"]["request_id"], "it-req-1");
  EXPECT_EQ(one["helpline"]["turn_index"], 0);
  EXPECT_EQ(one["helpline"]["state"]["active_intent"], "track_order") << one.dump(2);
  EXPECT_EQ(one["helpline"]["degraded"], false) << one.dump(2);
  EXPECT_EQ(one["usage"]["total_tokens"].get<int>(),
            one["usage"]["prompt_tokens"].get<int>() + one["usage"]["completion_tokens"].get<int>());

  HttpResponse second = Say(kTenantA, session, "It's order 12345678");
  ASSERT_EQ(second.status, 200) << second.body;
  json two = Parse(second);
  EXPECT_EQ(two["helpline"]["turn_index"], 1);
  EXPECT_EQ(two["helpline"]["state"]["active_intent"], "track_order") << two.dump(2);
  EXPECT_EQ(two["helpline"]["state"]["slots"]["order_id"]["value"], "12345678") << two.dump(2);

  HttpResponse third = Say(kTenantA, session, "I want to talk to a human");
  ASSERT_EQ(third.status, 200) << third.body;
  json three = Parse(third);
  EXPECT_EQ(three["helpline"]["turn_index"], 2);
  EXPECT_EQ(three["helpline"]["escalate"], true) << three.dump(2);
  EXPECT_EQ(three["helpline"]["handoff"]["status"], "initiated");
  EXPECT_TRUE(absl::StrContains(three["helpline"]["handoff"]["summary"]["text"].get<std::string>(),
                                "order_id=12345678"))
      << three["helpline"]["handoff"].dump();
  // The handover turn is answered by the domain's "escalate" template, not by generation.
  std::vector<std::string> stages;
  for (const json& t : three["helpline"]["timings"]) stages.push_back(t["stage"]);
  EXPECT_EQ(std::find(stages.begin(), stages.end(), "generation"), stages.end());
  for (const char* stage : {"session_load", "preprocess", "dst", "session_commit"}) {
    EXPECT_NE(std::find(stages.begin(), stages.end(), stage), stages.end()) << stage;
  }

  // The state is in Redis.
  EXPECT_TRUE(HasKeysOf(kTenantA, session));
  chat::v1::GetSessionResponse stored;
  grpc::Status status = GetSession(kTenantA, session, &stored);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(stored.version(), 3u);
  ASSERT_EQ(stored.turns_size(), 3);
  EXPECT_TRUE(absl::StrContains(stored.turns(1).user_text(), "12345678"));
  EXPECT_EQ(stored.turns(2).index(), 2u);
  EXPECT_EQ(stored.turns(0).request_id(), "it-req-1");
  EXPECT_TRUE(stored.state().escalate());
  EXPECT_EQ(stored.state().slots().at("order_id").value(), "12345678");
}

TEST_F(GatewayIntegrationTest, BadInputGetsAClearErrorAndWritesNothing) {
  const std::string png_ok = PngHeader(8, 8);
  struct Case {
    std::string name;
    std::string body;
    int status;
    std::string param;  // "" for none.
    std::string tenant = kTenantA;
    std::map<std::string, std::string> headers = {};
  };
  auto body = [](json message) {
    return json{{"model", "helpline"}, {"messages", {std::move(message)}}}.dump();
  };
  std::string bad_utf8 = body(UserMessage("PLACEHOLDER"));
  bad_utf8.replace(bad_utf8.find("PLACEHOLDER"), 11, "caf\xE9 ok");
  const std::string image_field = "messages[0].content[1].image_url";
  std::vector<Case> cases = {
      {"invalid UTF-8", bad_utf8, 400, "messages[0].content"},
      {"empty text", body(UserMessage("")), 400, "messages[0].content"},
      {"blank text", body(UserMessage("   ")), 400, "messages[0].content"},
      {"text over the limit", body(UserMessage(std::string(8193, 'a'))), 400,
       "messages[0].content"},
      {"too many attachments",
       body(UserMessage("look", std::vector<std::string>(5, DataUrl("image/png", png_ok)))), 400,
       "messages[0].content"},
      {"attachment too large",
       body(UserMessage("look", {DataUrl("image/png", PngHeader(8, 8, std::string(8 << 20, 'x')))})),
       400, image_field},
      {"undecodable image",
       body(UserMessage("look", {DataUrl("image/png", PngHeader(64, 64, "garbage, not IDAT"))})),
       400, image_field, kTenantA, {}},
      {"oversized image", body(UserMessage("look", {DataUrl("image/png", PngHeader(50000, 50000))})),
       400, image_field},
      {"unknown MIME type", body(UserMessage("look", {DataUrl("image/gif", "GIF89a;")})), 400,
       image_field},
      {"non-data URL", body(UserMessage("look", {"https://example.com/x.png"})), 400,
       image_field + ".url"},
      {"malformed JSON", "{\"messages\": [", 400, ""},
      {"known field of the wrong type", json{{"messages", {{{"role", "user"}, {"content", 42}}}}}.dump(),
       400, "messages[0].content"},
      {"wrong type of max_tokens",
       json{{"messages", {UserMessage("hi")}}, {"max_tokens", "many"}}.dump(), 400, "max_tokens"},
      {"n > 1", json{{"messages", {UserMessage("hi")}}, {"n", 3}}.dump(), 400, "n"},
      {"last message not the user's",
       json{{"messages", {UserMessage("hi"), {{"role", "assistant"}, {"content", "x"}}}}}.dump(),
       400, "messages[1].role"},
      {"bad session id", body(UserMessage("hi")), 400, "X-Helpline-Session", kTenantA,
       {{"X-Helpline-Session", "no spaces allowed"}}},
      {"missing API key", body(UserMessage("hi")), 401, "", ""},
      {"wrong API key", body(UserMessage("hi")), 401, "", "",
       {{"Authorization", "Bearer not-a-key"}}},
  };
  auto before = Snapshot();
  for (const Case& c : cases) {
    std::map<std::string, std::string> headers = {{"Content-Type", "application/json"},
                                                  {"X-Helpline-Session", NewSession("bad")}};
    if (!c.tenant.empty()) headers["Authorization"] = Bearer(c.tenant);
    for (const auto& [k, v] : c.headers) headers[k] = v;
    auto r = HttpCall(app_->http_port(), "POST", "/v1/chat/completions", c.body, headers);
    ASSERT_TRUE(r.ok()) << c.name << ": " << r.status();
    EXPECT_EQ(r->status, c.status) << c.name << ": " << r->body;
    json error = json::parse(r->body, nullptr, false);
    ASSERT_FALSE(error.is_discarded()) << c.name << ": " << r->body;
    ASSERT_TRUE(error.contains("error")) << c.name << ": " << r->body;
    EXPECT_FALSE(error["error"]["message"].get<std::string>().empty()) << c.name;
    if (c.param.empty()) {
      EXPECT_TRUE(error["error"]["param"].is_null()) << c.name << ": " << r->body;
    } else {
      EXPECT_EQ(error["error"]["param"], c.param) << c.name << ": " << r->body;
      EXPECT_TRUE(absl::StrContains(error["error"]["message"].get<std::string>(), c.param))
          << c.name;
    }
    EXPECT_EQ(error["error"]["type"], c.status == 401 ? "authentication_error"
                                                      : "invalid_request_error")
        << c.name;
    EXPECT_EQ(Snapshot(), before) << c.name << " wrote to Redis";
    before = Snapshot();
  }

  // The same over gRPC.
  chat::v1::ChatService::Stub stub(*channel_);
  struct GrpcCase {
    std::string name;
    chat::v1::ConverseRequest request;
    grpc::StatusCode code;
    std::string field;
    std::string tenant = kTenantA;
  };
  std::vector<GrpcCase> grpc_cases;
  auto request = [](const std::string& text) {
    chat::v1::ConverseRequest r;
    r.set_session_id(NewSession("bad-grpc"));
    r.set_text(text);
    return r;
  };
  grpc_cases.push_back({"empty", request(""), grpc::StatusCode::INVALID_ARGUMENT, "text"});
  grpc_cases.push_back({"too long", request(std::string(9000, 'b')),
                        grpc::StatusCode::INVALID_ARGUMENT, "text"});
  {
    auto r = request("see attached");
    auto* a = r.add_attachments();
    a->set_mime_type("application/pdf");
    a->set_data("%PDF-1.4");
    grpc_cases.push_back({"mime", r, grpc::StatusCode::INVALID_ARGUMENT, "attachments[0]"});
  }
  {
    auto r = request("see attached");
    r.set_session_id("bad id");
    grpc_cases.push_back({"session id", r, grpc::StatusCode::INVALID_ARGUMENT, "session_id"});
  }
  {
    auto r = request("hi");  // With a session id: the options are checked all the same.
    r.mutable_options()->set_temperature(5);
    grpc_cases.push_back(
        {"temperature", r, grpc::StatusCode::INVALID_ARGUMENT, "options.temperature"});
  }
  grpc_cases.push_back({"no key", request("hi"), grpc::StatusCode::UNAUTHENTICATED, "", ""});
  // Invalid UTF-8 in a proto3 string never reaches the handler: gRPC 1.51's callback server
  // fails to parse the request and answers UNIMPLEMENTED itself (docs/api.md says so).
  // Refused, nothing stored.
  grpc_cases.push_back(
      {"invalid UTF-8", request("caf\xE9 ok"), grpc::StatusCode::UNIMPLEMENTED, ""});
  for (const GrpcCase& c : grpc_cases) {
    grpc::ClientContext context;
    Authorize(context, c.tenant);
    chat::v1::ConverseResponse response;
    grpc::Status status = stub.Converse(&context, c.request, &response);
    EXPECT_EQ(status.error_code(), c.code) << c.name << ": " << status.error_message();
    if (!c.field.empty()) {
      EXPECT_TRUE(absl::StartsWith(status.error_message(), c.field))
          << c.name << ": " << status.error_message();
    }
    EXPECT_EQ(Snapshot(), before) << c.name << " wrote to Redis";
  }
}

TEST_F(GatewayIntegrationTest, UnknownSessionGetAndDeleteAreNotFound) {
  chat::v1::GetSessionResponse got;
  EXPECT_EQ(GetSession(kTenantA, NewSession("nobody"), &got).error_code(),
            grpc::StatusCode::NOT_FOUND);
  chat::v1::SessionService::Stub stub(*channel_);
  grpc::ClientContext context;
  Authorize(context, kTenantA);
  chat::v1::DeleteSessionRequest request;
  request.set_session_id(NewSession("nobody"));
  chat::v1::DeleteSessionResponse deleted;
  EXPECT_EQ(stub.DeleteSession(&context, request, &deleted).error_code(),
            grpc::StatusCode::NOT_FOUND);
  // Without a key: UNAUTHENTICATED, not NOT_FOUND.
  EXPECT_EQ(GetSession("", NewSession("nobody"), &got).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(GatewayIntegrationTest, TenantBCannotReadOrEraseTenantAsSession) {
  const std::string session = NewSession("iso");
  chat::v1::ConverseResponse response;
  grpc::Status status = Converse(kTenantA, session, "Where is my order?", &response);
  ASSERT_TRUE(status.ok()) << status.error_message();

  chat::v1::GetSessionResponse got;
  EXPECT_EQ(GetSession(kTenantB, session, &got).error_code(), grpc::StatusCode::NOT_FOUND);
  {
    chat::v1::SessionService::Stub stub(*channel_);
    grpc::ClientContext context;
    Authorize(context, kTenantB);
    chat::v1::DeleteSessionRequest request;
    request.set_session_id(session);
    chat::v1::DeleteSessionResponse deleted;
    EXPECT_EQ(stub.DeleteSession(&context, request, &deleted).error_code(),
              grpc::StatusCode::NOT_FOUND);
  }
  // B's turn on the same id is a different session.
  HttpResponse b_turn = Say(kTenantB, session, "hello");
  EXPECT_EQ(b_turn.status, 200) << b_turn.body;
  EXPECT_EQ(Parse(b_turn)["helpline"]["turn_index"], 0);

  ASSERT_TRUE(GetSession(kTenantA, session, &got).ok());
  EXPECT_EQ(got.version(), 1u);

  // A erases its session: every key goes, B's stays.
  chat::v1::SessionService::Stub stub(*channel_);
  grpc::ClientContext context;
  Authorize(context, kTenantA);
  chat::v1::DeleteSessionRequest request;
  request.set_session_id(session);
  chat::v1::DeleteSessionResponse deleted;
  ASSERT_TRUE(stub.DeleteSession(&context, request, &deleted).ok());
  EXPECT_GE(deleted.deleted_keys(), 2u);
  EXPECT_FALSE(HasKeysOf(kTenantA, session));
  EXPECT_TRUE(HasKeysOf(kTenantB, session));
  EXPECT_EQ(GetSession(kTenantA, session, &got).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(GatewayIntegrationTest, GrpcConverseAndStream) {
  const std::string session = NewSession("grpc");
  chat::v1::ChatService::Stub stub(*channel_);
  {
    grpc::ClientContext context;
    Authorize(context, kTenantA);
    context.AddMetadata("x-request-id", "grpc-req-1");
    chat::v1::ConverseRequest request;
    request.set_session_id(session);
    request.set_text("Where is my order A-1234567?");
    chat::v1::ConverseResponse response;
    grpc::Status status = stub.Converse(&context, request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.request_id(), "grpc-req-1");
    auto md = context.GetServerInitialMetadata().find("x-request-id");
    ASSERT_NE(md, context.GetServerInitialMetadata().end());
    EXPECT_EQ(std::string(md->second.data(), md->second.size()), "grpc-req-1");
    EXPECT_EQ(response.state().active_intent(), "track_order");
    EXPECT_FALSE(response.reply().empty());
    EXPECT_EQ(response.turn_index(), 0u);
  }
  {
    grpc::ClientContext context;
    Authorize(context, kTenantA);
    chat::v1::ConverseStreamRequest request;
    request.set_session_id(session);
    request.set_text("Thanks, and when will it arrive?");
    auto reader = stub.ConverseStream(&context, request);
    chat::v1::ConverseStreamResponse message;
    std::string streamed;
    int deltas = 0;
    bool have_final = false;
    chat::v1::ConverseResponse final_response;
    while (reader->Read(&message)) {
      ASSERT_FALSE(have_final) << "a message after the final one";
      if (message.has_final()) {
        final_response = message.final();
        have_final = true;
      } else {
        streamed += message.delta();
        ++deltas;
      }
    }
    grpc::Status status = reader->Finish();
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_TRUE(have_final);
    EXPECT_GE(deltas, 1);
    EXPECT_EQ(streamed, final_response.reply());
    EXPECT_EQ(final_response.turn_index(), 1u);
  }
  chat::v1::GetSessionResponse got;
  ASSERT_TRUE(GetSession(kTenantA, session, &got).ok());
  EXPECT_EQ(got.version(), 2u);
}

TEST_F(GatewayIntegrationTest, HttpStreamingChunksThenDone) {
  const std::string session = NewSession("sse");
  HttpResponse r = Chat(kTenantA, session,
                        {{"model", "helpline"},
                         {"stream", true},
                         {"stream_options", {{"include_usage", true}}},
                         {"messages", {UserMessage("Where is my order 87654321?")}}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(absl::StartsWith(r.headers["content-type"], "text/event-stream"));
  std::vector<std::string> events;
  for (absl::string_view line : absl::StrSplit(r.body, '\n')) {
    if (absl::StartsWith(line, "data: ")) events.emplace_back(line.substr(6));
  }
  ASSERT_GE(events.size(), 4u) << r.body;
  EXPECT_EQ(events.back(), "[DONE]");
  json first = json::parse(events[0]);
  EXPECT_EQ(first["object"], "chat.completion.chunk");
  EXPECT_EQ(first["choices"][0]["delta"]["role"], "assistant");
  std::string content;
  json final_chunk;
  json usage_chunk;
  for (size_t i = 1; i + 1 < events.size(); ++i) {
    json chunk = json::parse(events[i]);
    EXPECT_EQ(chunk["id"], first["id"]);
    if (chunk.contains("usage")) {
      usage_chunk = chunk;
      continue;
    }
    const json& choice = chunk["choices"][0];
    if (choice["delta"].contains("content")) content += choice["delta"]["content"].get<std::string>();
    if (!choice["finish_reason"].is_null()) final_chunk = chunk;
  }
  EXPECT_FALSE(content.empty());
  ASSERT_TRUE(final_chunk.is_object()) << r.body;
  EXPECT_EQ(final_chunk["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(final_chunk["helpline"]["session_id"], session);
  EXPECT_EQ(final_chunk["helpline"]["state"]["slots"]["order_id"]["value"], "87654321");
  ASSERT_TRUE(usage_chunk.is_object()) << r.body;
  EXPECT_TRUE(usage_chunk["choices"].empty());
  EXPECT_GT(usage_chunk["usage"]["completion_tokens"].get<int>(), 0);

  chat::v1::GetSessionResponse got;
  ASSERT_TRUE(GetSession(kTenantA, session, &got).ok());
  ASSERT_EQ(got.turns_size(), 1);
  EXPECT_EQ(got.turns(0).reply(), content);
}

TEST_F(GatewayIntegrationTest, StatelessTurnUsesHistoryAndWritesNothing) {
  const auto before = Snapshot();
  HttpResponse r = Chat(kTenantA, "",
                        {{"model", "helpline"},
                         {"messages",
                          {{{"role", "system"}, {"content", "You are a helpdesk."}},
                           UserMessage("Where is my order?"),
                           {{"role", "assistant"}, {"content", "What is your order number?"}},
                           UserMessage("It is 12345678")}}});
  ASSERT_EQ(r.status, 200) << r.body;
  json body = Parse(r);
  EXPECT_TRUE(body["helpline"]["session_id"].is_null());
  EXPECT_EQ(body["helpline"]["turn_index"], 1);
  EXPECT_EQ(body["helpline"]["state"]["slots"]["order_id"]["value"], "12345678") << body.dump(2);
  EXPECT_EQ(Snapshot(), before);
}

TEST_F(GatewayIntegrationTest, GenerationDownGivesDegradedReplyAndCommitsState) {
  const std::string session = NewSession("gen-down");
  ServiceProcess& generation = *(*stages_)["generation"];
  ASSERT_TRUE(generation.Kill().ok());
  HttpResponse r = Say(kTenantA, session, "Where is my order 12345678?");
  ASSERT_EQ(r.status, 200) << r.body;
  json body = Parse(r);
  EXPECT_EQ(body["helpline"]["degraded"], true);
  EXPECT_EQ(body["helpline"]["degraded_stages"], json::array({"generation"}));
  EXPECT_FALSE(body["choices"][0]["message"]["content"].get<std::string>().empty());
  chat::v1::GetSessionResponse got;
  ASSERT_TRUE(GetSession(kTenantA, session, &got).ok());
  EXPECT_EQ(got.version(), 1u);
  ASSERT_EQ(got.turns_size(), 1);
  EXPECT_EQ(got.turns(0).degraded_stages_size(), 1);
  EXPECT_EQ(got.state().slots().at("order_id").value(), "12345678");

  // Late rather than down: a stopped process answers nothing; the fallback still answers
  // within the generation timeout (2s here).
  ASSERT_TRUE(generation.Restart().ok());
  // The gateway's channel reconnects after its backoff; wait for an undegraded turn.
  bool back = false;
  for (int i = 0; i < 100 && !back; ++i) {
    HttpResponse probe = Say(kTenantA, "", "hello");
    back = probe.status == 200 && Parse(probe)["helpline"]["degraded"] == false;
    if (!back) absl::SleepFor(absl::Milliseconds(200));
  }
  ASSERT_TRUE(back) << "generation did not come back";
  ASSERT_TRUE(generation.Signal(SIGSTOP).ok());
  const absl::Time start = absl::Now();
  HttpResponse late = Say(kTenantA, session, "When will it arrive?");
  const absl::Duration took = absl::Now() - start;
  ASSERT_TRUE(generation.Signal(SIGCONT).ok());
  ASSERT_EQ(late.status, 200) << late.body;
  EXPECT_EQ(Parse(late)["helpline"]["degraded_stages"], json::array({"generation"}));
  EXPECT_LT(took, absl::Seconds(8));
  ASSERT_TRUE(GetSession(kTenantA, session, &got).ok());
  EXPECT_EQ(got.version(), 2u);
}

TEST_F(GatewayIntegrationTest, RedisDownAnswers503AndNothingIsHalfWritten) {
  const std::string session = NewSession("redis-down");
  ASSERT_EQ(Say(kTenantA, session, "Where is my order?").status, 200);
  const auto before = Snapshot();

  ASSERT_TRUE(redis_->Stop().ok());
  HttpResponse r = Say(kTenantA, session, "It is 12345678");
  EXPECT_EQ(r.status, 503) << r.body;
  json error = Parse(r);
  EXPECT_EQ(error["error"]["type"], "server_error");
  EXPECT_EQ(error["error"]["code"], "unavailable");
  chat::v1::ConverseResponse response;
  EXPECT_EQ(Converse(kTenantA, session, "It is 12345678", &response).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  chat::v1::GetSessionResponse got;
  EXPECT_EQ(GetSession(kTenantA, session, &got).error_code(), grpc::StatusCode::UNAVAILABLE);
  absl::SleepFor(absl::Milliseconds(1100));  // Past the /readyz cache.
  auto ready = HttpCall(app_->http_port(), "GET", "/readyz");
  ASSERT_TRUE(ready.ok());
  EXPECT_EQ(ready->status, 503);
  EXPECT_TRUE(absl::StrContains(ready->body, "redis")) << ready->body;

  ASSERT_TRUE(redis_->Restart().ok());
  EXPECT_EQ(Snapshot(), before);
  ASSERT_TRUE(GetSession(kTenantA, session, &got).ok());
  EXPECT_EQ(got.version(), 1u);
  EXPECT_EQ(got.turns_size(), 1);
  HttpResponse again = Say(kTenantA, session, "It is 12345678");
  ASSERT_EQ(again.status, 200) << again.body;
  ASSERT_TRUE(GetSession(kTenantA, session, &got).ok());
  EXPECT_EQ(got.version(), 2u);
}

TEST_F(GatewayIntegrationTest, DeadlinePassedLeavesTheSessionUnchanged) {
  const std::string session = NewSession("deadline");
  chat::v1::ConverseResponse response;
  ASSERT_TRUE(Converse(kTenantA, session, "Where is my order?", &response).ok());
  ServiceProcess& dst = *(*stages_)["dst"];
  ASSERT_TRUE(dst.Signal(SIGSTOP).ok());
  grpc::Status status =
      Converse(kTenantA, session, "It is 12345678", &response, absl::Milliseconds(1500));
  ASSERT_TRUE(dst.Signal(SIGCONT).ok());
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << status.error_message();
  // The lease was released: the next turn goes through at once, as turn 1.
  status = Converse(kTenantA, session, "It is 12345678", &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.turn_index(), 1u);
  chat::v1::GetSessionResponse got;
  ASSERT_TRUE(GetSession(kTenantA, session, &got).ok());
  EXPECT_EQ(got.version(), 2u);
}

TEST_F(GatewayIntegrationTest, ModelsHealthAndMetrics) {
  auto models = HttpCall(app_->http_port(), "GET", "/v1/models", "",
                         {{"Authorization", Bearer(kTenantA)}});
  ASSERT_TRUE(models.ok());
  ASSERT_EQ(models->status, 200) << models->body;
  json list = json::parse(models->body);
  EXPECT_EQ(list["object"], "list");
  EXPECT_EQ(list["data"][0]["id"], "helpline");
  EXPECT_EQ(list["data"][0]["object"], "model");
  auto unauthorized = HttpCall(app_->http_port(), "GET", "/v1/models");
  ASSERT_TRUE(unauthorized.ok());
  EXPECT_EQ(unauthorized->status, 401);

  auto health = HttpCall(app_->http_port(), "GET", "/healthz");
  ASSERT_TRUE(health.ok());
  EXPECT_EQ(health->status, 200);

  ASSERT_EQ(Say(kTenantA, NewSession("metrics"), "hello").status, 200);
  auto metrics = HttpCall(app_->http_port(), "GET", "/metrics");
  ASSERT_TRUE(metrics.ok());
  ASSERT_EQ(metrics->status, 200);
  for (const char* needle :
       {"helpline_turns_total{outcome=\"ok\"}", "helpline_turn_stage_seconds_bucket{stage=\"dst\"",
        "helpline_active_sessions ", "helpline_degraded_turns_total{stage=\"generation\"}",
        "helpline_turns_total{outcome=\"invalid_argument\"}",
        "helpline_grpc_server_handled_total"}) {
    EXPECT_TRUE(absl::StrContains(metrics->body, needle)) << needle;
  }
  auto missing = HttpCall(app_->http_port(), "GET", "/nope");
  ASSERT_TRUE(missing.ok());
  EXPECT_EQ(missing->status, 404);
}

TEST_F(GatewayIntegrationTest, TenantRateLimitAnswers429WithRetryAfter) {
  v1::GatewayConfig config = Config();
  config.mutable_limits()->set_tenant_turns_per_second(0.01f);
  config.mutable_limits()->set_tenant_burst(1);
  config.mutable_server()->set_grpc_port(0);
  // Same keys as the suite's gateway.
  config.clear_api_keys();
  for (const auto& [tenant, key] : *keys_) {
    v1::ApiKey* api_key = config.add_api_keys();
    api_key->set_tenant(tenant);
    api_key->set_salt("ab");
    api_key->set_sha256(SaltedKeyHash("ab", key));
  }
  auto limited = App::Create(config);
  ASSERT_TRUE(limited.ok()) << limited.status();
  const json body = {{"messages", {UserMessage("hello")}}};
  auto call = [&](const std::string& tenant) {
    auto r = HttpCall((*limited)->http_port(), "POST", "/v1/chat/completions", body.dump(),
                      {{"Authorization", Bearer(tenant)}});
    EXPECT_TRUE(r.ok());
    return r.ok() ? *r : HttpResponse{};
  };
  EXPECT_EQ(call(kTenantA).status, 200);
  HttpResponse refused = call(kTenantA);
  EXPECT_EQ(refused.status, 429) << refused.body;
  EXPECT_FALSE(refused.headers["retry-after"].empty());
  EXPECT_EQ(Parse(refused)["error"]["type"], "rate_limit_error");
  EXPECT_EQ(call(kTenantB).status, 200);  // Per tenant.
}

// English over HTTP (non-streamed), then the helpdesk's whole cycle over HTTP: get, accept,
// a customer turn while a human owns the session (stored, no bot reply), release, and the
// bot answering again.
TEST_F(GatewayIntegrationTest, HandoffInEnglishOverHttpAcceptTurnRelease) {
  const std::string session = NewSession("handoff-en");
  const double initiated_before = HandoffCount("customer_request", "initiated");
  const double accepted_before = HandoffCount("customer_request", "accepted");
  const double released_before = HandoffCount("customer_request", "released");
  ASSERT_EQ(Say(kTenantA, session, "Where is my order?").status, 200);
  HttpResponse with_id = Say(kTenantA, session, "It's order 12345678");
  ASSERT_EQ(with_id.status, 200) << with_id.body;
  EXPECT_FALSE(Parse(with_id)["helpline"].contains("handoff")) << with_id.body;

  HttpResponse asked = Say(kTenantA, session, "I want to talk to a human");
  ASSERT_EQ(asked.status, 200) << asked.body;
  json body = Parse(asked);
  const std::string content = body["choices"][0]["message"]["content"];
  EXPECT_TRUE(IsEscalateTemplate(content, "en")) << content;
  EXPECT_EQ(body["choices"][0]["finish_reason"], "stop");
  const json& handoff = body["helpline"]["handoff"];
  EXPECT_EQ(handoff["status"], "initiated") << body.dump(2);
  EXPECT_EQ(handoff["reason"], "customer_request");
  EXPECT_EQ(handoff["sequence"], 1);
  EXPECT_EQ(handoff["initiate_turn"], 2);
  EXPECT_TRUE(handoff["initiate_time"].is_string());
  EXPECT_TRUE(handoff["agent_id"].is_null());
  const json& summary = handoff["summary"];
  EXPECT_EQ(summary["slots"]["order_id"], "12345678") << summary.dump(2);
  EXPECT_EQ(summary["intent"], body["helpline"]["state"]["active_intent"]);
  EXPECT_EQ(summary["reason"], "customer_request");
  EXPECT_EQ(summary["turn_count"], 3);
  EXPECT_TRUE(absl::StrContains(summary["text"].get<std::string>(), "order_id=12345678"));
  ASSERT_GE(summary["recent_lines"].size(), 2u);
  const json& lines = summary["recent_lines"];
  EXPECT_EQ(lines[lines.size() - 2]["speaker"], "customer");
  EXPECT_EQ(lines[lines.size() - 2]["text"], "I want to talk to a human");
  EXPECT_EQ(lines[lines.size() - 1]["speaker"], "bot");
  EXPECT_EQ(lines[lines.size() - 1]["text"], content);
  EXPECT_EQ(HandoffCount("customer_request", "initiated"), initiated_before + 1);

  // The helpdesk reads it (same summary as the turn returned) and accepts.
  HttpResponse got = HandoffHttp(kTenantA, session, "");
  ASSERT_EQ(got.status, 200) << got.body;
  EXPECT_EQ(Parse(got)["object"], "helpline.handoff");
  EXPECT_EQ(Parse(got)["handoff"], handoff);
  HttpResponse accepted = HandoffHttp(kTenantA, session, "accept", R"({"agent_id":"alice"})");
  ASSERT_EQ(accepted.status, 200) << accepted.body;
  EXPECT_EQ(Parse(accepted)["handoff"]["status"], "accepted");
  EXPECT_EQ(Parse(accepted)["handoff"]["agent_id"], "alice");
  EXPECT_TRUE(Parse(accepted)["handoff"]["accept_time"].is_string());
  // Accepting again as the same agent is idempotent (not counted again).
  HttpResponse again = HandoffHttp(kTenantA, session, "accept", R"({"agent_id":"alice"})");
  ASSERT_EQ(again.status, 200) << again.body;
  EXPECT_EQ(Parse(again)["handoff"], Parse(accepted)["handoff"]);
  EXPECT_EQ(HandoffCount("customer_request", "accepted"), accepted_before + 1);

  // A customer turn while accepted: no bot reply, stored, the response says who owns it.
  HttpResponse during = Say(kTenantA, session, "Are you there? My order is 12345678");
  ASSERT_EQ(during.status, 200) << during.body;
  json during_body = Parse(during);
  EXPECT_EQ(during_body["choices"][0]["message"]["content"], "");
  EXPECT_EQ(during_body["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(during_body["helpline"]["finish_reason"], "handoff");
  EXPECT_EQ(during_body["helpline"]["handoff"]["status"], "accepted");
  EXPECT_EQ(during_body["helpline"]["handoff"]["agent_id"], "alice");
  EXPECT_EQ(during_body["helpline"]["turn_index"], 3);
  std::vector<std::string> stages;
  for (const json& t : during_body["helpline"]["timings"]) stages.push_back(t["stage"]);
  for (const char* skipped : {"dst", "generation"}) {
    EXPECT_EQ(std::find(stages.begin(), stages.end(), skipped), stages.end()) << skipped;
  }
  chat::v1::GetSessionResponse stored;
  ASSERT_TRUE(GetSession(kTenantA, session, &stored).ok());
  ASSERT_EQ(stored.turns_size(), 4);
  EXPECT_EQ(stored.turns(3).user_text(), "Are you there? My order is 12345678");
  EXPECT_EQ(stored.turns(3).reply(), "");
  EXPECT_EQ(stored.handoff().status(), common::v1::HANDOFF_STATUS_ACCEPTED);
  EXPECT_TRUE(stored.state().escalate());

  // Release: the bot owns the session again and answers the next turn.
  HttpResponse released = HandoffHttp(kTenantA, session, "release", R"({"agent_id":"alice"})");
  ASSERT_EQ(released.status, 200) << released.body;
  EXPECT_EQ(Parse(released)["handoff"]["status"], "released");
  EXPECT_EQ(Parse(released)["handoff"]["released_by"], "alice");
  EXPECT_EQ(HandoffCount("customer_request", "released"), released_before + 1);
  HttpResponse after = Say(kTenantA, session, "Where is my order 12345678?");
  ASSERT_EQ(after.status, 200) << after.body;
  json after_body = Parse(after);
  EXPECT_FALSE(after_body["helpline"].contains("handoff")) << after.body;
  EXPECT_EQ(after_body["helpline"]["escalate"], false) << after.body;
  EXPECT_FALSE(after_body["choices"][0]["message"]["content"].get<std::string>().empty());
  EXPECT_NE(after_body["helpline"]["finish_reason"], "handoff");
  ASSERT_TRUE(GetSession(kTenantA, session, &stored).ok());
  EXPECT_EQ(stored.version(), 5u);
  EXPECT_EQ(stored.handoff().status(), common::v1::HANDOFF_STATUS_RELEASED);
}

// Chinese over HTTP streaming: the final chunk carries the handoff, the deltas the Chinese
// handover message; a turn while the handoff waits for an agent streams no content.
TEST_F(GatewayIntegrationTest, HandoffInChineseOverHttpStreaming) {
  const std::string session = NewSession("handoff-zh-sse");
  ASSERT_EQ(Say(kTenantA, session, "我的订单到哪了？订单号 12345678").status, 200);
  auto stream = [&](const std::string& text) {
    return Chat(kTenantA, session,
                {{"model", "helpline"}, {"stream", true}, {"messages", {UserMessage(text)}}});
  };
  HttpResponse asked = stream("转人工");
  ASSERT_EQ(asked.status, 200) << asked.body;
  std::string content;
  json final_chunk;
  ParseStream(asked, &content, &final_chunk);
  ASSERT_TRUE(final_chunk.is_object()) << asked.body;
  EXPECT_TRUE(IsEscalateTemplate(content, "zh")) << content;
  const json& handoff = final_chunk["helpline"]["handoff"];
  EXPECT_EQ(handoff["status"], "initiated") << final_chunk.dump(2);
  EXPECT_EQ(handoff["reason"], "customer_request");
  EXPECT_EQ(handoff["summary"]["slots"]["order_id"], "12345678") << handoff.dump(2);
  EXPECT_EQ(handoff["summary"]["language"], "zh");
  EXPECT_EQ(handoff["summary"]["recent_lines"].back()["text"], content);

  HttpResponse waiting = stream("有人吗");
  ASSERT_EQ(waiting.status, 200) << waiting.body;
  std::string waiting_content;
  json waiting_final;
  ParseStream(waiting, &waiting_content, &waiting_final);
  EXPECT_EQ(waiting_content, "");
  ASSERT_TRUE(waiting_final.is_object()) << waiting.body;
  EXPECT_EQ(waiting_final["helpline"]["handoff"]["status"], "initiated");
  EXPECT_EQ(waiting_final["helpline"]["finish_reason"], "handoff");
  EXPECT_TRUE(absl::StrContains(waiting.body, "data: [DONE]"));
  chat::v1::GetSessionResponse stored;
  ASSERT_TRUE(GetSession(kTenantA, session, &stored).ok());
  ASSERT_EQ(stored.turns_size(), 3);
  EXPECT_EQ(stored.turns(2).user_text(), "有人吗");
  EXPECT_EQ(stored.turns(2).reply(), "");
}

// Chinese over gRPC Converse, English over ConverseStream; the helpdesk over HandoffService.
TEST_F(GatewayIntegrationTest, HandoffOverGrpcInChineseAndEnglish) {
  const std::string zh = NewSession("handoff-zh-grpc");
  chat::v1::ConverseResponse response;
  ASSERT_TRUE(Converse(kTenantA, zh, "我的订单到哪了？订单号 12345678", &response).ok());
  EXPECT_FALSE(response.has_handoff());
  grpc::Status status = Converse(kTenantA, zh, "我要找真人客服", &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(IsEscalateTemplate(response.reply(), "zh")) << response.reply();
  ASSERT_TRUE(response.has_handoff()) << response.DebugString();
  EXPECT_EQ(response.handoff().status(), common::v1::HANDOFF_STATUS_INITIATED);
  EXPECT_EQ(response.handoff().reason(), "customer_request");
  EXPECT_EQ(response.handoff().summary().slots().at("order_id"), "12345678");
  EXPECT_EQ(response.handoff().summary().turn_count(), 2u);
  EXPECT_TRUE(absl::StrContains(response.handoff().summary().text(), "我要找真人客服"));

  // While INITIATED a streamed turn gets no deltas, only the final message.
  std::string streamed;
  int deltas = -1;
  chat::v1::ConverseResponse final_response;
  status = ConverseStream(kTenantA, zh, "还在吗", &streamed, &deltas, &final_response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(deltas, 0);
  EXPECT_EQ(final_response.reply(), "");
  EXPECT_EQ(final_response.finish_reason(), "handoff");
  EXPECT_EQ(final_response.handoff().status(), common::v1::HANDOFF_STATUS_INITIATED);

  common::v1::Handoff handoff;
  status = AcceptHandoff(kTenantA, zh, "agent-zh-1", &handoff);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(handoff.status(), common::v1::HANDOFF_STATUS_ACCEPTED);
  EXPECT_EQ(handoff.agent_id(), "agent-zh-1");
  ASSERT_TRUE(GetHandoff(kTenantA, zh, &handoff).ok());
  EXPECT_EQ(handoff.status(), common::v1::HANDOFF_STATUS_ACCEPTED);
  EXPECT_EQ(handoff.summary().slots().at("order_id"), "12345678");
  status = Converse(kTenantA, zh, "谢谢", &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.reply(), "");
  EXPECT_EQ(response.handoff().agent_id(), "agent-zh-1");
  ASSERT_TRUE(ReleaseHandoff(kTenantA, zh, &handoff).ok());
  EXPECT_EQ(handoff.status(), common::v1::HANDOFF_STATUS_RELEASED);

  // English over ConverseStream: the handover message streams, the final carries the handoff.
  const std::string en = NewSession("handoff-en-grpc");
  ASSERT_TRUE(Converse(kTenantA, en, "Where is my order A-1234567?", &response).ok());
  streamed.clear();
  status = ConverseStream(kTenantA, en, "Can I speak to a real person please?", &streamed,
                          &deltas, &final_response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_GE(deltas, 1);
  EXPECT_EQ(streamed, final_response.reply());
  EXPECT_TRUE(IsEscalateTemplate(streamed, "en")) << streamed;
  EXPECT_EQ(final_response.handoff().status(), common::v1::HANDOFF_STATUS_INITIATED);
  EXPECT_EQ(final_response.handoff().summary().slots().at("order_id"), "A-1234567")
      << final_response.handoff().DebugString();
  chat::v1::GetSessionResponse stored;
  ASSERT_TRUE(GetSession(kTenantA, en, &stored).ok());
  EXPECT_EQ(stored.handoff().summary().text(), final_response.handoff().summary().text());
}

TEST_F(GatewayIntegrationTest, BadHandoffCallsGetClearErrorsAndWriteNothing) {
  const std::string plain = NewSession("handoff-none");
  ASSERT_EQ(Say(kTenantA, plain, "Where is my order?").status, 200);
  const std::string handed = NewSession("handoff-bad");
  ASSERT_EQ(Say(kTenantA, handed, "I want to talk to a human").status, 200);
  common::v1::Handoff handoff;
  ASSERT_TRUE(AcceptHandoff(kTenantA, handed, "alice", &handoff).ok());
  const auto before = Snapshot();

  // gRPC.
  struct GrpcCase {
    std::string name;
    std::string tenant;
    std::string session;
    std::string agent;
    bool release;
    grpc::StatusCode code;
    std::string message;  // A part of the message.
  };
  const std::string unknown = NewSession("handoff-unknown");
  for (const GrpcCase& c : std::vector<GrpcCase>{
           {"accept unknown session", kTenantA, unknown, "alice", false,
            grpc::StatusCode::NOT_FOUND, "not found"},
           {"release unknown session", kTenantA, unknown, "", true, grpc::StatusCode::NOT_FOUND,
            "not found"},
           {"accept without handoff", kTenantA, plain, "alice", false,
            grpc::StatusCode::FAILED_PRECONDITION, "has no handoff to accept"},
           {"release without handoff", kTenantA, plain, "", true,
            grpc::StatusCode::FAILED_PRECONDITION, "has no handoff to release"},
           {"accept by another agent", kTenantA, handed, "bob", false,
            grpc::StatusCode::FAILED_PRECONDITION, "already accepted by agent 'alice'"},
           {"another tenant's session", kTenantB, handed, "alice", false,
            grpc::StatusCode::NOT_FOUND, "not found"},
           {"no agent id", kTenantA, handed, "", false, grpc::StatusCode::INVALID_ARGUMENT,
            "agent_id: required"},
           {"bad agent id", kTenantA, handed, "al ice", false, grpc::StatusCode::INVALID_ARGUMENT,
            "agent_id: character byte 0x20 at offset 2"},
           {"bad session id", kTenantA, "bad id", "alice", false,
            grpc::StatusCode::INVALID_ARGUMENT, "session_id"},
           {"no key", "", handed, "alice", false, grpc::StatusCode::UNAUTHENTICATED, ""},
       }) {
    grpc::Status status = c.release ? ReleaseHandoff(c.tenant, c.session, nullptr)
                                    : AcceptHandoff(c.tenant, c.session, c.agent, nullptr);
    EXPECT_EQ(status.error_code(), c.code) << c.name << ": " << status.error_message();
    EXPECT_TRUE(absl::StrContains(status.error_message(), c.message))
        << c.name << ": " << status.error_message();
    EXPECT_EQ(Snapshot(), before) << c.name << " wrote to Redis";
  }
  EXPECT_EQ(GetHandoff(kTenantA, plain, nullptr).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(GetHandoff(kTenantB, handed, nullptr).error_code(), grpc::StatusCode::NOT_FOUND);

  // HTTP.
  struct HttpCase {
    std::string name;
    std::string tenant;
    std::string session;
    std::string action;
    std::string body;
    int status;
    std::string type;
    std::string param;  // "" for null.
  };
  for (const HttpCase& c : std::vector<HttpCase>{
           {"accept unknown session", kTenantA, unknown, "accept", R"({"agent_id":"a"})", 404,
            "not_found_error", ""},
           {"get unknown session", kTenantA, unknown, "", "", 404, "not_found_error", ""},
           {"accept without handoff", kTenantA, plain, "accept", R"({"agent_id":"a"})", 400,
            "invalid_request_error", ""},
           {"accept by another agent", kTenantA, handed, "accept", R"({"agent_id":"bob"})", 400,
            "invalid_request_error", ""},
           {"another tenant", kTenantB, handed, "release", "", 404, "not_found_error", ""},
           {"agent id missing", kTenantA, handed, "accept", "{}", 400, "invalid_request_error",
            "agent_id"},
           {"agent id of the wrong type", kTenantA, handed, "accept", R"({"agent_id":1})", 400,
            "invalid_request_error", "agent_id"},
           {"malformed JSON", kTenantA, handed, "accept", "{", 400, "invalid_request_error", ""},
           {"bad session id", kTenantA, "bad%20id", "", "", 400, "invalid_request_error",
            "session_id"},
           {"unknown action", kTenantA, handed, "take", "", 404, "not_found_error", ""},
           {"no key", "", handed, "", "", 401, "authentication_error", ""},
       }) {
    HttpResponse r = HandoffHttp(c.tenant, c.session, c.action, c.body);
    EXPECT_EQ(r.status, c.status) << c.name << ": " << r.body;
    json error = json::parse(r.body, nullptr, false);
    ASSERT_FALSE(error.is_discarded()) << c.name << ": " << r.body;
    EXPECT_EQ(error["error"]["type"], c.type) << c.name << ": " << r.body;
    if (c.param.empty()) {
      EXPECT_TRUE(error["error"]["param"].is_null()) << c.name << ": " << r.body;
    } else {
      EXPECT_EQ(error["error"]["param"], c.param) << c.name << ": " << r.body;
    }
    EXPECT_EQ(Snapshot(), before) << c.name << " wrote to Redis";
  }
  auto wrong_method = HttpCall(app_->http_port(), "GET",
                               absl::StrCat("/v1/sessions/", handed, "/handoff/accept"), "",
                               {{"Authorization", Bearer(kTenantA)}});
  ASSERT_TRUE(wrong_method.ok());
  EXPECT_EQ(wrong_method->status, 400) << wrong_method->body;

  // Releasing twice: the second is refused.
  ASSERT_TRUE(ReleaseHandoff(kTenantA, handed, nullptr).ok());
  grpc::Status twice = ReleaseHandoff(kTenantA, handed, nullptr);
  EXPECT_EQ(twice.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(absl::StrContains(twice.error_message(), "released")) << twice.error_message();
  EXPECT_EQ(AcceptHandoff(kTenantA, handed, "alice", nullptr).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
}

// A stateless turn that escalates gets the handoff in its response (nothing to accept later:
// nothing is stored, and it is not counted).
TEST_F(GatewayIntegrationTest, StatelessEscalationCarriesAHandoffAndWritesNothing) {
  const auto before = Snapshot();
  const double initiated_before = HandoffCount("customer_request", "initiated");
  HttpResponse r = Chat(kTenantA, "",
                        {{"model", "helpline"},
                         {"messages",
                          {UserMessage("Where is my order 12345678?"),
                           {{"role", "assistant"}, {"content", "It ships tomorrow."}},
                           UserMessage("I want to talk to a human")}}});
  ASSERT_EQ(r.status, 200) << r.body;
  json body = Parse(r);
  EXPECT_TRUE(IsEscalateTemplate(body["choices"][0]["message"]["content"], "en")) << r.body;
  const json& handoff = body["helpline"]["handoff"];
  EXPECT_EQ(handoff["status"], "initiated") << r.body;
  EXPECT_EQ(handoff["summary"]["turn_count"], 2);
  EXPECT_EQ(handoff["summary"]["recent_lines"][1]["text"], "It ships tomorrow.");
  EXPECT_EQ(Snapshot(), before);
  EXPECT_EQ(HandoffCount("customer_request", "initiated"), initiated_before);
}

// While a human owns the session the tracker is not called: a turn goes through with dst
// stopped.
TEST_F(GatewayIntegrationTest, TurnWhileHandedOverNeedsNoTracker) {
  const std::string session = NewSession("handoff-no-dst");
  ASSERT_EQ(Say(kTenantA, session, "I want to talk to a human").status, 200);
  ServiceProcess& dst = *(*stages_)["dst"];
  ASSERT_TRUE(dst.Signal(SIGSTOP).ok());
  chat::v1::ConverseResponse response;
  grpc::Status status =
      Converse(kTenantA, session, "hello?", &response, absl::Milliseconds(3000));
  ASSERT_TRUE(dst.Signal(SIGCONT).ok());
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.finish_reason(), "handoff");
  EXPECT_EQ(response.reply(), "");
  EXPECT_EQ(response.handoff().status(), common::v1::HANDOFF_STATUS_INITIATED);
  EXPECT_EQ(response.turn_index(), 1u);
}

// The handoff lives in Redis: a gateway that starts after the handover serves the same
// summary and the accept, and another gateway instance sees the result.
TEST_F(GatewayIntegrationTest, HandoffSummarySurvivesAGatewayRestart) {
  v1::GatewayConfig config = Config();
  config.mutable_server()->set_grpc_port(0);
  const std::string session = NewSession("handoff-restart");
  json handoff;
  {
    auto first = App::Create(config);
    ASSERT_TRUE(first.ok()) << first.status();
    const int port = (*first)->http_port();
    for (const char* text : {"Where is my order?", "It's order 12345678",
                             "I want to talk to a human"}) {
      auto r = HttpCall(port, "POST", "/v1/chat/completions",
                        json{{"messages", {UserMessage(text)}}}.dump(),
                        {{"Authorization", Bearer(kTenantA)}, {"X-Helpline-Session", session}});
      ASSERT_TRUE(r.ok()) << r.status();
      ASSERT_EQ(r->status, 200) << r->body;
      handoff = Parse(*r)["helpline"]["handoff"];
    }
    ASSERT_EQ(handoff["status"], "initiated");
  }  // The first gateway shuts down here.

  auto second = App::Create(config);
  ASSERT_TRUE(second.ok()) << second.status();
  (*second)->SetReady(true);
  HttpResponse got = HandoffHttp(kTenantA, session, "", "", (*second)->http_port());
  ASSERT_EQ(got.status, 200) << got.body;
  EXPECT_EQ(Parse(got)["handoff"], handoff);
  EXPECT_EQ(Parse(got)["handoff"]["summary"]["slots"]["order_id"], "12345678");
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", (*second)->grpc_port()),
                                     grpc::InsecureChannelCredentials());
  common::v1::Handoff accepted;
  grpc::Status status = AcceptHandoff(kTenantA, session, "carol", &accepted, channel);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(accepted.summary().text(), handoff["summary"]["text"].get<std::string>());
  // The suite's gateway, another instance, sees the accept.
  common::v1::Handoff seen;
  ASSERT_TRUE(GetHandoff(kTenantA, session, &seen).ok());
  EXPECT_EQ(seen.status(), common::v1::HANDOFF_STATUS_ACCEPTED);
  EXPECT_EQ(seen.agent_id(), "carol");
}

}  // namespace
}  // namespace helpline::gateway
