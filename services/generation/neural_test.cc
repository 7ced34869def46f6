// helpline-generation with a model: the App in-process with a tiny random GPT-2 (GPT-2's
// real tokenizer, made by make_tiny_gpt2.py), called over real gRPC on loopback. Random
// weights write gibberish, so most candidates are rejected and the template reply is sent:
// the tests check what must hold whatever the text is (the choice, degraded marking, usage,
// seeds, streaming, the session prefix cache, errors, cancel).
#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "lm/tokenizer/bpe.h"
#include "services/generation/app.h"
#include "services/generation/decoding.h"
#include "tests/testing/shop_domain.h"
#include "tests/testing/tiny_gpt2.h"

namespace helpline::generation {
namespace {

using ::testing::HasSubstr;

double Value(const std::string& series) {
  const std::string all = "\n" + metrics::Registry::Default().Serialize();
  const size_t pos = all.find("\n" + series + " ");
  if (pos == std::string::npos) return -1;
  return std::stod(all.substr(pos + series.size() + 2));
}

// The service on loopback, ports chosen by the system, the shop domain, the model in `dir`.
v1::GenerationConfig LoopbackConfig(const std::string& dir) {
  v1::GenerationConfig config;
  config.mutable_server()->set_host("127.0.0.1");
  config.mutable_server()->set_grpc_port(0);
  config.mutable_server()->set_metrics_port(0);
  config.set_domain_file(testutil::ShopDomainPath());
  config.mutable_model()->set_dir(dir);
  rpc::ApplyServerDefaults(*config.mutable_server());
  return config;
}

v1::GenerationContext OrderContext(const std::string& key) {
  v1::GenerationContext context;
  context.set_domain("shop");
  context.set_language("en");
  context.set_user_text("Where is my order 12345678?");
  context.set_cache_key(key);
  auto* state = context.mutable_state();
  state->set_active_intent("track_order");
  state->set_turn_count(1);
  (*state->mutable_slots())["order_id"].set_value("12345678");
  return context;
}

class NeuralServiceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model_dir_ = new std::string(
        (std::filesystem::temp_directory_path() / absl::StrCat("neural_test_", ::getpid())).string());
    absl::Status made = testutil::MakeTinyGpt2(
        *model_dir_, "--merges all --positions 512 --embd 64 --layers 2 --heads 4");
    if (!made.ok()) {
      ASSERT_TRUE(absl::IsFailedPrecondition(made)) << made;
      skip_reason_ = new std::string(made.message());
      return;
    }
    v1::GenerationConfig config = LoopbackConfig(*model_dir_);
    config.mutable_model()->set_max_waiting_requests(4);
    auto app = App::Create(config);
    ASSERT_TRUE(app.ok()) << app.status();
    app_ = app->release();
    stub_ = v1::GenerationService::NewStub(
                grpc::CreateChannel(absl::StrCat("127.0.0.1:", app_->server().grpc_port()),
                                    grpc::InsecureChannelCredentials()))
                .release();
    auto tokenizer = lm::BpeTokenizer::Load(*model_dir_);
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
    tokenizer_ = tokenizer->release();
  }

  static void TearDownTestSuite() {
    if (app_ != nullptr) app_->server().Shutdown();
    delete stub_;
    delete app_;
    delete tokenizer_;
    if (model_dir_ != nullptr) std::filesystem::remove_all(*model_dir_);
    delete model_dir_;
  }

  void SetUp() override {
    if (skip_reason_ != nullptr) GTEST_SKIP() << *skip_reason_;
  }

  static grpc::Status Call(const v1::GenerationContext& context, const v1::SamplingParams& params,
                           v1::GenerateResponse* response) {
    v1::GenerateRequest request;
    *request.mutable_context() = context;
    *request.mutable_params() = params;
    grpc::ClientContext call;
    call.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    return stub_->Generate(&call, request, response);
  }

  static inline std::string* model_dir_ = nullptr;
  static inline std::string* skip_reason_ = nullptr;
  static inline App* app_ = nullptr;
  static inline v1::GenerationService::Stub* stub_ = nullptr;
  static inline lm::BpeTokenizer* tokenizer_ = nullptr;
};

TEST_F(NeuralServiceTest, CandidatesAreFilteredAndOneIsChosen) {
  v1::SamplingParams params;
  params.set_n(4);
  params.set_temperature(0.9f);
  params.set_seed(11);
  params.set_max_tokens(24);
  v1::GenerateResponse response;
  ASSERT_TRUE(Call(OrderContext(""), params, &response).ok());

  // Four model candidates, plus the template reply when none survived.
  const int model_candidates = 4;
  ASSERT_EQ(response.candidates_size(), model_candidates + (response.degraded() ? 1 : 0));
  for (int i = 0; i < model_candidates; ++i) {
    const v1::Candidate& c = response.candidates(i);
    EXPECT_EQ(c.origin(), "model");
    EXPECT_NE(c.finish_reason(), v1::FINISH_REASON_UNSPECIFIED);
    EXPECT_NE(c.finish_reason(), v1::FINISH_REASON_CANCELLED);
    // A surviving candidate is only ever not chosen when a better one was.
    if (c.rejection_reasons_size() == 0) {
      EXPECT_FALSE(response.degraded());
      EXPECT_GE(response.candidates(static_cast<int>(response.chosen_index())).score(), c.score());
    }
  }
  const v1::Candidate& chosen = response.candidates(static_cast<int>(response.chosen_index()));
  EXPECT_TRUE(chosen.rejection_reasons().empty());
  if (response.degraded()) {
    EXPECT_EQ(chosen.origin(), "template");
    EXPECT_EQ(response.chosen_index(), static_cast<uint32_t>(model_candidates));
    EXPECT_THAT(chosen.text(), HasSubstr("12345678"));  // the template fills the slot
  }
  EXPECT_GT(response.usage().prompt_tokens(), 50u);  // system prompt + the turn
  EXPECT_GT(response.usage().completion_tokens(), 0u);
  EXPECT_LE(response.usage().completion_tokens(), 4u * 24u);
  EXPECT_EQ(response.engine().seed(), 11u);
}

TEST_F(NeuralServiceTest, SameSeedSameReplyAndDifferentSeedsDiffer) {
  v1::SamplingParams params;
  params.set_n(2);
  params.set_temperature(1.0f);
  params.set_max_tokens(16);
  params.set_seed(5);
  v1::GenerateResponse a, b, c;
  ASSERT_TRUE(Call(OrderContext(""), params, &a).ok());
  ASSERT_TRUE(Call(OrderContext(""), params, &b).ok());
  params.set_seed(6);
  ASSERT_TRUE(Call(OrderContext(""), params, &c).ok());
  ASSERT_EQ(a.candidates_size(), b.candidates_size());
  std::set<std::string> texts_a, texts_c;
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(a.candidates(i).text(), b.candidates(i).text());
    texts_a.insert(a.candidates(i).text());
    texts_c.insert(c.candidates(i).text());
  }
  EXPECT_NE(texts_a, texts_c);
}

// A greedy unary request (the gateway's default) is decoded as reply.candidates (default 8)
// candidates: the greedy one and seven samples; usage counts all their tokens.
TEST_F(NeuralServiceTest, GreedyRequestsGetSampledAlternativesAndUsageCountsThem) {
  v1::SamplingParams params;
  params.set_max_tokens(8);
  params.set_seed(3);
  v1::GenerateResponse response;
  ASSERT_TRUE(Call(OrderContext(""), params, &response).ok());
  const int model_candidates = kDefaultReplyCandidates;
  ASSERT_EQ(model_candidates, 8);
  ASSERT_EQ(response.candidates_size(), model_candidates + (response.degraded() ? 1 : 0));
  uint32_t by_length = 0;
  for (int i = 0; i < model_candidates; ++i) {
    EXPECT_EQ(response.candidates(i).origin(), "model");
    by_length += response.candidates(i).finish_reason() == v1::FINISH_REASON_LENGTH;
  }
  EXPECT_GE(response.usage().completion_tokens(), by_length * 8u);
  EXPECT_LE(response.usage().completion_tokens(), model_candidates * 8u);
  // The same request again: the same candidates (the samples are seeded).
  v1::GenerateResponse again;
  ASSERT_TRUE(Call(OrderContext(""), params, &again).ok());
  ASSERT_EQ(again.candidates_size(), response.candidates_size());
  for (int i = 0; i < model_candidates; ++i) {
    EXPECT_EQ(again.candidates(i).text(), response.candidates(i).text());
  }
  // Asked for a sampled reply, the request's own n and temperature are kept.
  params.set_temperature(0.8f);
  ASSERT_TRUE(Call(OrderContext(""), params, &response).ok());
  EXPECT_EQ(response.candidates_size(), 1 + (response.degraded() ? 1 : 0));
}

TEST_F(NeuralServiceTest, StreamDeltasAreTheChosenReply) {
  for (uint32_t n : {1u, 3u}) {
    v1::GenerateStreamRequest request;
    *request.mutable_context() = OrderContext("");
    request.mutable_params()->set_n(n);
    request.mutable_params()->set_max_tokens(24);
    request.mutable_params()->set_temperature(0.7f);
    request.mutable_params()->set_seed(3);
    grpc::ClientContext call;
    call.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    auto reader = stub_->GenerateStream(&call, request);
    v1::GenerateStreamResponse message;
    std::string streamed;
    v1::GenerateResponse final_response;
    bool final_seen = false;
    while (reader->Read(&message)) {
      ASSERT_FALSE(final_seen) << "a message after the final one";
      if (message.has_final()) {
        final_response = message.final();
        final_seen = true;
      } else {
        streamed += message.delta();
      }
    }
    ASSERT_TRUE(reader->Finish().ok());
    ASSERT_TRUE(final_seen);
    EXPECT_EQ(streamed,
              final_response.candidates(static_cast<int>(final_response.chosen_index())).text())
        << "n=" << n;
  }
}

TEST_F(NeuralServiceTest, SecondTurnReusesTheSessionPrefixAndOtherSessionsDoNot) {
  const std::string key = absl::StrCat("tenant-a\x1fsession-", ::getpid());
  v1::SamplingParams params;
  params.set_max_tokens(12);
  v1::GenerateResponse first;
  ASSERT_TRUE(Call(OrderContext(key), params, &first).ok());
  EXPECT_EQ(first.usage().cached_prompt_tokens(), 0u);

  v1::GenerationContext second = OrderContext(key);
  auto* turn = second.add_history();
  turn->set_index(0);
  turn->set_user_text("Where is my order 12345678?");
  turn->set_reply(first.candidates(static_cast<int>(first.chosen_index())).text());
  second.set_user_text("When will it arrive?");
  v1::GenerateResponse again;
  ASSERT_TRUE(Call(second, params, &again).ok());
  // At least the system prompt and the customer's first line come from the cache.
  const size_t system_tokens = tokenizer_->Encode("Customer: Where is my order 12345678?\n").size();
  EXPECT_GT(again.usage().cached_prompt_tokens(), system_tokens);
  EXPECT_LT(again.usage().cached_prompt_tokens(), again.usage().prompt_tokens());

  // The very same context under another session's key: nothing reused.
  second.set_cache_key(absl::StrCat("tenant-b\x1fsession-", ::getpid()));
  v1::GenerateResponse other;
  ASSERT_TRUE(Call(second, params, &other).ok());
  EXPECT_EQ(other.usage().cached_prompt_tokens(), 0u);
  EXPECT_EQ(other.usage().prompt_tokens(), again.usage().prompt_tokens());
}

TEST_F(NeuralServiceTest, BadRequestsNameTheField) {
  struct Case {
    std::string field;
    std::function<void(v1::GenerationContext&, v1::SamplingParams&)> edit;
  };
  const std::vector<Case> cases = {
      {"params.max_tokens", [](auto&, auto& p) { p.set_max_tokens(512); }},
      {"params.n", [](auto&, auto& p) { p.set_n(100); }},
      {"params.temperature", [](auto&, auto& p) { p.set_temperature(-1); }},
      {"params.top_p", [](auto&, auto& p) { p.set_top_p(1.5f); }},
      {"params.repetition_penalty", [](auto&, auto& p) { p.set_repetition_penalty(50); }},
      {"params.stop", [](auto&, auto& p) {
         for (int i = 0; i < 20; ++i) p.add_stop(absl::StrCat("s", i));
       }},
      {"context.user_text", [](auto& c, auto&) {
         std::string long_text;
         for (int i = 0; i < 600; ++i) absl::StrAppend(&long_text, "word", i, " ");
         c.set_user_text(long_text);
       }},
  };
  for (const Case& c : cases) {
    v1::GenerationContext context = OrderContext("");
    v1::SamplingParams params;
    params.set_max_tokens(8);
    c.edit(context, params);
    v1::GenerateResponse response;
    grpc::Status status = Call(context, params, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.field;
    EXPECT_THAT(status.error_message(), HasSubstr(c.field));
  }
}

TEST_F(NeuralServiceTest, ClientCancelFreesTheSequence) {
  v1::GenerateStreamRequest request;
  *request.mutable_context() = OrderContext("");
  request.mutable_params()->set_n(4);  // n > 1: nothing is streamed before the end
  request.mutable_params()->set_max_tokens(380);
  grpc::ClientContext call;
  auto reader = stub_->GenerateStream(&call, request);
  // Let it get into the batch, then leave.
  for (int i = 0; i < 100 && Value("helpline_generation_running_sequences") < 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_GE(Value("helpline_generation_running_sequences"), 1) << [&] {
    v1::GenerateStreamResponse m;
    while (reader->Read(&m)) {
    }
    return reader->Finish().error_message();
  }();
  call.TryCancel();
  v1::GenerateStreamResponse message;
  while (reader->Read(&message)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  for (int i = 0; i < 200 && Value("helpline_generation_running_sequences") != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(Value("helpline_generation_running_sequences"), 0);
  EXPECT_EQ(Value("helpline_generation_kv_cache_bytes"), 0);
}

TEST(NeuralAppTest, ABrokenModelFolderIsAStartupErrorNamingTheFile) {
  const std::string dir =
      (std::filesystem::temp_directory_path() / absl::StrCat("neural_bad_", ::getpid())).string();
  absl::Status made = testutil::MakeTinyGpt2(dir, "");
  if (absl::IsFailedPrecondition(made)) GTEST_SKIP() << made;
  ASSERT_TRUE(made.ok()) << made;
  std::filesystem::resize_file(dir + "/model.safetensors",
                               std::filesystem::file_size(dir + "/model.safetensors") / 2);
  v1::GenerationConfig config = LoopbackConfig(dir);
  auto app = App::Create(config);
  ASSERT_FALSE(app.ok());
  EXPECT_THAT(app.status().message(), HasSubstr("model.safetensors"));

  config.mutable_model()->set_dir(dir + "/missing");
  app = App::Create(config);
  ASSERT_FALSE(app.ok());
  EXPECT_THAT(app.status().message(), HasSubstr("missing"));

  ASSERT_TRUE(testutil::MakeTinyGpt2(dir, "").ok());
  config.mutable_model()->set_dir(dir);
  // The start stops with an error naming `field`; the reply settings go back to the defaults.
  auto expect_refused = [&config](const std::string& field) {
    auto refused = App::Create(config);
    ASSERT_FALSE(refused.ok()) << field;
    EXPECT_THAT(refused.status().message(), HasSubstr(field));
    config.clear_reply();
  };
  config.mutable_reply()->set_no_repeat_ngram(33);
  expect_refused("reply.no_repeat_ngram");
  config.mutable_reply()->set_candidates(9);  // more than max_candidates (8)
  expect_refused("reply.candidates");
  config.mutable_reply()->set_candidate_temperature(0.0f);
  expect_refused("reply.candidate_temperature");
  config.mutable_reply()->set_similar_replies(65);
  expect_refused("reply.similar_replies: 65 is above 64");
  (*config.mutable_reply()->mutable_constants())["website-url"] = "https://shop.example";
  expect_refused("reply.constants[website-url]: a placeholder name");
  // The evaluation-only form would send the braces to the customer.
  (*config.mutable_reply()->mutable_constants())["website_url"] = "{{website_url}}";
  expect_refused("reply.constants[website_url]");
  (*config.mutable_reply()->mutable_placeholder_aliases())["order_id"] = "order_id";
  expect_refused("reply.placeholder_aliases[order_id]: names itself");
  (*config.mutable_reply()->mutable_constants())["website_url"] = "https://shop.example";
  (*config.mutable_reply()->mutable_placeholder_aliases())["order_number"] = "order_id";
  app = App::Create(config);
  EXPECT_TRUE(app.ok()) << app.status();
  std::filesystem::remove_all(dir);
}

// reply.exemplar_data: the service finds the nearest past agent turn for a request without an
// exemplar and puts it on the prompt's Example: line (the prompt grows by exactly that line);
// a request's own exemplar is kept; bad exemplar data stops the start, naming the field.
TEST(NeuralAppTest, ExemplarDataPutsTheNearestReplyOnThePrompt) {
  const std::string dir =
      (std::filesystem::temp_directory_path() / absl::StrCat("neural_exemplars_", ::getpid())).string();
  absl::Status made = testutil::MakeTinyGpt2(dir, "--merges all --positions 512 --embd 64 --layers 2 --heads 4");
  if (absl::IsFailedPrecondition(made)) GTEST_SKIP() << made;
  ASSERT_TRUE(made.ok()) << made;
  const std::string data = dir + "/exemplars.jsonl";
  const std::string reply = "Your order {{order_number}} is on its way.";
  {
    std::ofstream out(data);
    out << R"({"instruction": "where is my order {{Order Number}}", "response": "Your order {{Order Number}} is on its way."})" "\n"
        << R"({"instruction": "i want to cancel my subscription", "response": "It is cancelled."})" "\n";
  }
  v1::GenerationConfig config = LoopbackConfig(dir);

  // Prompt tokens of one greedy request to an app made from `c`.
  auto prompt_tokens = [](const v1::GenerationConfig& c, const v1::GenerationContext& context) -> int64_t {
    auto app = App::Create(c);
    EXPECT_TRUE(app.ok()) << app.status();
    if (!app.ok()) return -1;
    auto stub = v1::GenerationService::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", (*app)->server().grpc_port()), grpc::InsecureChannelCredentials()));
    v1::GenerateRequest request;
    *request.mutable_context() = context;
    request.mutable_params()->set_max_tokens(4);
    request.mutable_params()->set_n(1);
    request.mutable_params()->set_temperature(0.5f);
    v1::GenerateResponse response;
    grpc::ClientContext call;
    call.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    const grpc::Status s = stub->Generate(&call, request, &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    (*app)->server().Shutdown();
    return s.ok() ? static_cast<int64_t>(response.usage().prompt_tokens()) : -1;
  };
  auto tokenizer = lm::BpeTokenizer::Load(dir);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  const int64_t line = static_cast<int64_t>((*tokenizer)->Encode(absl::StrCat("Example: ", reply, "\n")).size());

  const v1::GenerationContext context = OrderContext("");
  const int64_t without = prompt_tokens(config, context);
  config.mutable_reply()->set_exemplar_data(data);
  config.mutable_reply()->set_exemplar_format("bitext");
  EXPECT_EQ(prompt_tokens(config, context), without + line);
  // The request's own exemplar wins over the index.
  v1::GenerationContext own = context;
  own.set_exemplar("Thanks!");
  EXPECT_EQ(prompt_tokens(config, own),
            without + static_cast<int64_t>((*tokenizer)->Encode("Example: Thanks!\n").size()));

  config.mutable_reply()->set_exemplar_format("csv");
  auto app = App::Create(config);
  ASSERT_FALSE(app.ok());
  EXPECT_THAT(app.status().message(), HasSubstr("reply.exemplar_format"));
  config.mutable_reply()->set_exemplar_format("bitext");
  config.mutable_reply()->set_exemplar_data(dir + "/missing.jsonl");
  app = App::Create(config);
  ASSERT_FALSE(app.ok());
  EXPECT_THAT(app.status().message(), HasSubstr("reply.exemplar_data"));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace helpline::generation
