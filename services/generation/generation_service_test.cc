// Starts helpline-generation's App in-process on loopback ports chosen by the OS and calls
// it with a real stub: unary, streaming, validation and client cancellation.
#include <chrono>
#include <cstdlib>
#include <future>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/domain/text.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "services/generation/app.h"
#include "tests/testing/shop_domain.h"

namespace helpline::generation {
namespace {

using ::testing::HasSubstr;

v1::GenerationConfig TestConfig() {
  v1::GenerationConfig config;
  config.mutable_server()->set_host("127.0.0.1");
  config.mutable_server()->set_grpc_port(0);
  config.mutable_server()->set_metrics_port(0);
  config.set_domain_file(testutil::ShopDomainPath());
  rpc::ApplyServerDefaults(*config.mutable_server());
  return config;
}

v1::GenerationContext TrackOrderDone(const std::string& language) {
  v1::GenerationContext context;
  context.set_domain("shop");
  context.set_language(language);
  context.set_user_text("12345678");
  auto* state = context.mutable_state();
  state->set_active_intent("track_order");
  state->set_turn_count(1);
  (*state->mutable_slots())["order_id"].set_value("12345678");
  return context;
}

double Value(const std::string& text_metric) {
  // The text exposition holds "<series> <value>" lines; find ours.
  const std::string all = "\n" + metrics::Registry::Default().Serialize();
  const size_t pos = all.find("\n" + text_metric + " ");
  if (pos == std::string::npos) return -1;
  return std::stod(all.substr(pos + text_metric.size() + 2));
}

bool ValidUtf8(absl::string_view s) {
  size_t pos = 0;
  while (pos < s.size()) {
    const size_t before = pos;
    if (domain::text::NextCodePoint(s, &pos) == 0xFFFD && s.substr(before, 3) != "\xEF\xBF\xBD") {
      return false;
    }
  }
  return true;
}

class GenerationServiceTest : public ::testing::Test {
 protected:
  void Start(ServiceHooks hooks = {}) {
    auto app = App::Create(TestConfig(), std::move(hooks));
    ASSERT_TRUE(app.ok()) << app.status();
    app_ = *std::move(app);
    stub_ = v1::GenerationService::NewStub(
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", app_->server().grpc_port()),
                            grpc::InsecureChannelCredentials()));
  }
  void TearDown() override {
    if (app_ != nullptr) app_->server().Shutdown();
  }

  // Streams a request; returns the status, the deltas and the final response.
  grpc::Status Stream(const v1::GenerateStreamRequest& request, std::vector<std::string>* deltas,
                      v1::GenerateResponse* final_response, bool* final_last) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    auto reader = stub_->GenerateStream(&context, request);
    v1::GenerateStreamResponse message;
    bool seen_final = false;
    *final_last = true;
    while (reader->Read(&message)) {
      if (seen_final) *final_last = false;
      if (message.has_final()) {
        seen_final = true;
        *final_response = message.final();
      } else {
        deltas->push_back(message.delta());
      }
    }
    *final_last = *final_last && seen_final;
    return reader->Finish();
  }

  std::unique_ptr<App> app_;
  std::unique_ptr<v1::GenerationService::Stub> stub_;
};

TEST_F(GenerationServiceTest, GenerateOverGrpc) {
  Start();
  const double completion_before = Value("helpline_generation_tokens_total{kind=\"completion\"}");
  v1::GenerateRequest request;
  *request.mutable_context() = TrackOrderDone("en");
  v1::GenerateResponse response;
  grpc::ClientContext context;
  grpc::Status status = stub_->Generate(&context, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.candidates_size(), 1);
  EXPECT_THAT(response.candidates(0).text(), HasSubstr("12345678"));
  EXPECT_EQ(response.candidates(0).origin(), "template");
  EXPECT_EQ(response.candidates(0).finish_reason(), v1::FINISH_REASON_STOP);
  EXPECT_GT(response.usage().completion_tokens(), 5u);
  EXPECT_EQ(Value("helpline_generation_tokens_total{kind=\"completion\"}"),
            completion_before + response.usage().completion_tokens());
  const std::string exposition = metrics::Registry::Default().Serialize();
  for (const char* name :
       {"helpline_generation_time_to_first_token_seconds_count",
        "helpline_generation_time_per_output_token_seconds_count",
        "helpline_generation_request_seconds_count", "helpline_generation_queue_depth 0",
        "helpline_generation_tokens_total{kind=\"prompt\"}"}) {
    EXPECT_THAT(exposition, HasSubstr(name));
  }
}

TEST_F(GenerationServiceTest, InvalidParamsNameTheField) {
  Start();
  v1::GenerateRequest request;
  *request.mutable_context() = TrackOrderDone("en");
  request.mutable_params()->set_n(9);
  v1::GenerateResponse response;
  {
    grpc::ClientContext context;
    grpc::Status status = stub_->Generate(&context, request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(status.error_message(), HasSubstr("params.n"));
  }
  request.mutable_params()->set_n(2);
  request.mutable_params()->set_max_tokens(100000);
  {
    grpc::ClientContext context;
    grpc::Status status = stub_->Generate(&context, request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(status.error_message(), HasSubstr("params.max_tokens"));
  }
  // The same validation on the stream.
  v1::GenerateStreamRequest stream_request;
  *stream_request.mutable_context() = TrackOrderDone("en");
  stream_request.mutable_params()->set_n(100);
  std::vector<std::string> deltas;
  v1::GenerateResponse final_response;
  bool final_last = false;
  grpc::Status status = Stream(stream_request, &deltas, &final_response, &final_last);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("params.n"));
  EXPECT_TRUE(deltas.empty());
}

TEST_F(GenerationServiceTest, StreamDeltasConcatenateToTheReply) {
  Start();
  for (const char* language : {"en", "zh"}) {
    v1::GenerateStreamRequest request;
    *request.mutable_context() = TrackOrderDone(language);
    std::vector<std::string> deltas;
    v1::GenerateResponse final_response;
    bool final_last = false;
    grpc::Status status = Stream(request, &deltas, &final_response, &final_last);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_TRUE(final_last) << "final must be the last message";
    EXPECT_GT(deltas.size(), 5u);
    const std::string& reply =
        final_response.candidates(static_cast<int>(final_response.chosen_index())).text();
    EXPECT_EQ(absl::StrJoin(deltas, ""), reply);
    EXPECT_THAT(reply, HasSubstr("12345678"));
    for (const std::string& d : deltas) EXPECT_TRUE(ValidUtf8(d)) << language << ": " << d;
    if (std::string(language) == "zh") {
      EXPECT_TRUE(domain::text::ContainsCjk(reply));
    }
  }
}

TEST_F(GenerationServiceTest, StreamHonorsStopAndMaxTokens) {
  Start();
  v1::GenerateStreamRequest request;
  *request.mutable_context() = TrackOrderDone("zh");
  request.mutable_params()->set_max_tokens(4);
  std::vector<std::string> deltas;
  v1::GenerateResponse final_response;
  bool final_last = false;
  ASSERT_TRUE(Stream(request, &deltas, &final_response, &final_last).ok());
  EXPECT_EQ(deltas.size(), 4u);
  EXPECT_EQ(final_response.candidates(0).finish_reason(), v1::FINISH_REASON_LENGTH);
  EXPECT_EQ(final_response.usage().completion_tokens(), 4u);

  request.mutable_params()->Clear();
  request.mutable_params()->add_stop("12345678");
  deltas.clear();
  ASSERT_TRUE(Stream(request, &deltas, &final_response, &final_last).ok());
  EXPECT_EQ(absl::StrJoin(deltas, "").find("12345678"), std::string::npos);
  EXPECT_EQ(final_response.candidates(0).finish_reason(), v1::FINISH_REASON_STOP);
}

TEST_F(GenerationServiceTest, ClientCancelStopsTheStream) {
  std::promise<void> cancelled;
  std::shared_future<void> cancelled_future = cancelled.get_future().share();
  std::atomic<int> deltas_produced{0};
  std::atomic<bool> hold_timed_out{false};
  ServiceHooks hooks;
  hooks.before_delta = [&](size_t index) {
    deltas_produced = static_cast<int>(index) + 1;
    // Hold the stream after the first delta until the server has seen the cancel.
    if (index == 1 &&
        cancelled_future.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
      hold_timed_out = true;
    }
  };
  std::once_flag once;
  hooks.on_cancel = [&] { std::call_once(once, [&] { cancelled.set_value(); }); };
  Start(std::move(hooks));
  const double cancelled_before = Value("helpline_generation_streams_cancelled_total");

  v1::GenerateStreamRequest request;
  *request.mutable_context() = TrackOrderDone("en");
  grpc::ClientContext context;
  auto reader = stub_->GenerateStream(&context, request);
  v1::GenerateStreamResponse message;
  ASSERT_TRUE(reader->Read(&message));
  EXPECT_FALSE(message.delta().empty());
  context.TryCancel();
  while (reader->Read(&message)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);

  app_->server().Shutdown();  // Waits for the stream's reactor to finish.
  EXPECT_FALSE(hold_timed_out) << "the server never saw the cancel";
  // The cancel may land while delta 0 is still being written (the stream stops there) or
  // during the hold before delta 1; either way nothing after delta 1 is produced, out of
  // the reply's 30-odd deltas.
  EXPECT_GE(deltas_produced.load(), 1);
  EXPECT_LE(deltas_produced.load(), 2) << "the stream went on after the cancel";
  EXPECT_EQ(Value("helpline_generation_streams_cancelled_total"), cancelled_before + 1);
}

TEST(GenerationAppTest, StartupErrors) {
  v1::GenerationConfig config = TestConfig();
  config.clear_domain_file();
  auto app = App::Create(config);
  ASSERT_FALSE(app.ok());
  EXPECT_THAT(app.status().message(), HasSubstr("domain_file"));

  config = TestConfig();
  config.set_default_max_tokens(1000);
  app = App::Create(config);
  ASSERT_FALSE(app.ok());
  EXPECT_THAT(app.status().message(), HasSubstr("default_max_tokens"));
}

}  // namespace
}  // namespace helpline::generation
