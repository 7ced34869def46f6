// Starts helpline-dst's App in-process on loopback ports chosen by the OS and calls it with
// a real stub; also runs the binary to check its startup errors.
#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/domain/domain.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "nlu/dst/dst_features.h"
#include "nlu/dst/dst_model.h"
#include "nlu/dst/dst_test_data.h"
#include "services/dst/app.h"
#include "services/dst/dialogue_model.h"
#include "services/dst/model_testutil.h"
#include "tests/testing/shop_domain.h"

namespace helpline::dst {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string SourceDir() {
  const char* dir = std::getenv("HELPLINE_SOURCE_DIR");
  return dir != nullptr ? dir : ".";
}

v1::DstConfig TestConfig(const std::string& domain_file) {
  v1::DstConfig config;
  config.mutable_server()->set_host("127.0.0.1");
  config.mutable_server()->set_grpc_port(0);
  config.mutable_server()->set_metrics_port(0);
  config.set_domain_file(domain_file);
  config.set_intent_threshold(0.35f);
  rpc::ApplyServerDefaults(*config.mutable_server());
  return config;
}

double CounterValue(const std::string& name, const std::string& label, const std::string& value) {
  return metrics::Registry::Default().AddCounter(name, "", {label}).Get({value}).Value();
}

class DstServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto app = App::Create(TestConfig(testutil::ShopDomainPath()));
    ASSERT_TRUE(app.ok()) << app.status();
    app_ = *std::move(app);
    ASSERT_GT(app_->server().grpc_port(), 0);
    EXPECT_TRUE(app_->server().ready());
    stub_ = v1::DialogueStateService::NewStub(
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", app_->server().grpc_port()),
                            grpc::InsecureChannelCredentials()));
  }
  void TearDown() override {
    if (app_ != nullptr) app_->server().Shutdown();
  }

  grpc::Status Track(const v1::TrackRequest& request, v1::TrackResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return stub_->Track(&context, request, response);
  }

  std::unique_ptr<App> app_;
  std::unique_ptr<v1::DialogueStateService::Stub> stub_;
};

TEST_F(DstServiceTest, ConversationOverGrpc) {
  const double track_before = CounterValue("helpline_dst_intents_total", "intent", "track_order");
  const double human_before = CounterValue("helpline_dst_intents_total", "intent", "human_agent");
  const double escalations_before =
      CounterValue("helpline_dst_escalations_total", "reason", "customer_request");

  v1::TrackRequest request;
  request.set_text("where is my order?");
  request.set_user_text("where is my order?");
  request.set_language("en");
  v1::TrackResponse response;
  grpc::Status status = Track(request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.state().domain(), "shop");
  EXPECT_EQ(response.state().active_intent(), "track_order");
  EXPECT_THAT(response.state().requested_slots(), ElementsAre("order_id"));

  // Next turn: an attachment only; the order number comes from OCR.
  v1::TrackRequest second;
  *second.mutable_prior_state() = response.state();
  second.set_language("und");
  auto* evidence = second.add_evidence();
  evidence->set_source("ocr");
  evidence->set_text("Order No: AB123456");
  evidence->set_confidence(0.8f);
  second.set_text("Order No: AB123456");
  v1::TrackResponse response2;
  status = Track(second, &response2);
  ASSERT_TRUE(status.ok()) << status.error_message();
  const auto& slot = response2.state().slots().at("order_id");
  EXPECT_EQ(slot.value(), "AB123456");
  EXPECT_EQ(slot.source(), common::v1::SLOT_SOURCE_ATTACHMENT);
  EXPECT_TRUE(response2.state().missing_slots().empty());
  EXPECT_EQ(response2.state().turn_count(), 2u);

  v1::TrackRequest third;
  *third.mutable_prior_state() = response2.state();
  third.set_user_text("转人工");
  third.set_language("zh");
  v1::TrackResponse response3;
  ASSERT_TRUE(Track(third, &response3).ok());
  EXPECT_TRUE(response3.state().escalate());
  EXPECT_EQ(response3.state().escalation_reason(), "customer_request");

  EXPECT_EQ(response3.state().active_intent(), "human_agent");
  EXPECT_EQ(CounterValue("helpline_dst_intents_total", "intent", "track_order"), track_before + 2);
  EXPECT_EQ(CounterValue("helpline_dst_intents_total", "intent", "human_agent"), human_before + 1);
  EXPECT_EQ(CounterValue("helpline_dst_escalations_total", "reason", "customer_request"),
            escalations_before + 1);
  EXPECT_THAT(metrics::Registry::Default().Serialize(),
              HasSubstr("helpline_dst_escalations_total{reason=\"intent_policy\"}"));
}

// An utterance with nothing left after preprocessing: the state stays, the turn counts.
TEST_F(DstServiceTest, EmptyTurnKeepsTheState) {
  v1::TrackRequest request;
  request.set_user_text("where is my order?");
  v1::TrackResponse first;
  ASSERT_TRUE(Track(request, &first).ok());
  request.set_user_text("");
  *request.mutable_prior_state() = first.state();
  v1::TrackResponse response;
  grpc::Status status = Track(request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.state().active_intent(), "track_order");
  EXPECT_THAT(response.state().requested_slots(), ElementsAre("order_id"));
  EXPECT_EQ(response.state().turn_count(), first.state().turn_count() + 1);
}

TEST_F(DstServiceTest, ForeignDomainStateIsInvalidArgument) {
  v1::TrackRequest request;
  request.set_user_text("hello");
  request.mutable_prior_state()->set_domain("bank");
  v1::TrackResponse response;
  grpc::Status status = Track(request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("prior_state.domain"));
}

TEST(DstAppTest, StartupErrorsNameTheProblem) {
  auto app = App::Create(TestConfig(""));
  ASSERT_FALSE(app.ok());
  EXPECT_THAT(app.status().message(), HasSubstr("domain_file"));

  app = App::Create(TestConfig("/nonexistent/shop.yaml"));
  ASSERT_FALSE(app.ok());
  EXPECT_EQ(app.status().code(), absl::StatusCode::kNotFound);

  const std::string bad = ::testing::TempDir() + "/bad_domain.yaml";
  std::ofstream(bad) << "name: bad\nlanguages: [en]\nsystem_prompt: {en: x}\nbogus: 1\n";
  app = App::Create(TestConfig(bad));
  ASSERT_FALSE(app.ok());
  EXPECT_THAT(app.status().message(), HasSubstr("bad_domain.yaml: bogus: unknown key"));

  v1::DstConfig config = TestConfig(testutil::ShopDomainPath());
  config.set_intent_threshold(1.5f);
  app = App::Create(config);
  ASSERT_FALSE(app.ok());
  EXPECT_THAT(app.status().message(), HasSubstr("intent_threshold"));
}

// A tiny model trained once for this process on the shop domain; "" when training failed.
const std::string& ShopModelDir() {
  static const std::string* dir = [] {
    auto* d = new std::string(::testing::TempDir() + "/dst_service_test_shop_model");
    std::filesystem::remove_all(*d);
    const auto& shop = helpline::testutil::ShopDomain();
    absl::Status s = shop.ok() ? model_testing::TrainTinyModel(*shop, *d) : shop.status();
    EXPECT_TRUE(s.ok()) << s;
    if (!s.ok()) d->clear();
    return d;
  }();
  return *dir;
}

// A copy of the shop model whose nlu_model.json lists an intent the domain does not have.
std::string MismatchingModelDir() {
  const std::string dir = ::testing::TempDir() + "/dst_service_test_mismatch";
  std::filesystem::remove_all(dir);
  std::filesystem::copy(ShopModelDir(), dir);
  nlohmann::json json = nlohmann::json::parse(std::ifstream(dir + "/nlu_model.json"));
  for (auto& intent : json["intents"]) {
    if (intent == "cancel_order") intent = "cancel_subscription";
  }
  std::ofstream(dir + "/nlu_model.json") << json.dump();
  return dir;
}

TEST(DstModelAppTest, ServesWithAModelAndIsReadyOnlyAfterLoading) {
  ASSERT_FALSE(ShopModelDir().empty());
  v1::DstConfig config = TestConfig(testutil::ShopDomainPath());
  config.set_model_dir(ShopModelDir());
  auto app = App::Create(config);
  ASSERT_TRUE(app.ok()) << app.status();
  ASSERT_NE((*app)->model(), nullptr);
  EXPECT_TRUE((*app)->server().ready());  // Create returns only after the model loaded.
  auto stub = v1::DialogueStateService::NewStub(
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", (*app)->server().grpc_port()),
                          grpc::InsecureChannelCredentials()));
  // Several calls at once go through the workers.
  std::vector<std::thread> callers;
  std::vector<grpc::Status> statuses(4);
  std::vector<v1::TrackResponse> responses(4);
  for (size_t i = 0; i < statuses.size(); ++i) {
    callers.emplace_back([&, i] {
      v1::TrackRequest request;
      request.set_user_text(i % 2 == 0 ? "where is my order AB123456?" : "我要退货");
      request.set_language(i % 2 == 0 ? "en" : "zh");
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
      statuses[i] = stub->Track(&context, request, &responses[i]);
    });
  }
  for (std::thread& t : callers) t.join();
  for (size_t i = 0; i < statuses.size(); ++i) {
    ASSERT_TRUE(statuses[i].ok()) << statuses[i].error_message();
    EXPECT_EQ(responses[i].state().domain(), "shop");
    EXPECT_EQ(responses[i].state().turn_count(), 1u);
  }
  EXPECT_EQ(responses[0].state().active_intent(), "track_order");
  EXPECT_EQ(responses[0].state().slots().at("order_id").value(), "AB123456");
  // What the tracker makes of the tiny model's view of "我要退货" is the tracker's policy
  // (tracker_test); here it is enough that the turn was tracked in Chinese.
  EXPECT_EQ(responses[1].state().language(), "zh");
  (*app)->server().Shutdown();
}

TEST(DstModelAppTest, MismatchingMissingOrBrokenModelStopsTheStart) {
  ASSERT_FALSE(ShopModelDir().empty());
  v1::DstConfig config = TestConfig(testutil::ShopDomainPath());
  config.set_model_dir(MismatchingModelDir());
  auto app = App::Create(config);
  ASSERT_FALSE(app.ok());
  EXPECT_EQ(app.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(app.status().message(), HasSubstr("model_dir: model folder "));
  EXPECT_THAT(app.status().message(),
              HasSubstr("intents missing in the model: [cancel_order]; intents only in the "
                        "model: [cancel_subscription]"));

  config.set_model_dir("/nonexistent/dst-model");
  app = App::Create(config);
  ASSERT_FALSE(app.ok());
  EXPECT_EQ(app.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(app.status().message(),
              HasSubstr("model_dir: model folder /nonexistent/dst-model does not exist"));

  const std::string broken = ::testing::TempDir() + "/dst_service_test_broken";
  std::filesystem::remove_all(broken);
  std::filesystem::copy(ShopModelDir(), broken);
  std::ofstream(broken + "/nlu_model.json") << "{\"format\": \"helpline-nlu-model/1\"}";
  config.set_model_dir(broken);
  app = App::Create(config);
  ASSERT_FALSE(app.ok());
  EXPECT_EQ(app.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(app.status().message(), HasSubstr("nlu_model.json"));
}

// A tiny learned tracker (nlu/dst) trained on nlu/dst's inline shop dialogues, whose service
// services/dst/testdata/delivery.yaml writes as a domain; trained once (a few seconds).
std::string DialogueModelDir() {
  static const std::string dir = [] {
    const std::string path = ::testing::TempDir() + "/dst_service_test_dialogue_model";
    std::filesystem::remove_all(path);
    nlu::model::SetTorchThreads(1);
    auto model = nlu::dst::DstModel::Train(nlu::dst::testing::ShopDialogues(36),
                                           nlu::dst::testing::TinyTrainOptions(), nullptr);
    if (!model.ok() || !(*model)->Save(path).ok()) return std::string();
    return path;
  }();
  return dir;
}

std::string DeliveryDomainPath() {
  return absl::StrCat(SourceDir(), "/services/dst/testdata/delivery.yaml");
}

// One customer turn over gRPC after `prior` (whose reply asked what its state asks).
v1::TrackResponse TrackTurn(v1::DialogueStateService::Stub& stub,
                            const common::v1::DialogueState& prior, const std::string& text) {
  v1::TrackRequest request;
  request.set_user_text(text);
  request.set_language("en");
  *request.mutable_prior_state() = prior;
  v1::TrackResponse response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  const grpc::Status status = stub.Track(&context, request, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return response;
}

// The learned tracker in the service: its context vector travels in the state and moves
// every turn; the reply's question (REQUEST) is in the context for the next turn, so a bare
// value answers it; an older state without context still works.
TEST(DstDialogueModelAppTest, ContextTravelsInTheStateAndMovesEveryTurn) {
  ASSERT_FALSE(DialogueModelDir().empty());
  v1::DstConfig config = TestConfig(DeliveryDomainPath());
  config.set_dialogue_model_dir(DialogueModelDir());
  auto app = App::Create(config);
  ASSERT_TRUE(app.ok()) << app.status();
  ASSERT_NE((*app)->dialogue_model(), nullptr);
  EXPECT_TRUE((*app)->server().ready());  // Create returns only after the model loaded.
  auto stub = v1::DialogueStateService::NewStub(
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", (*app)->server().grpc_port()),
                          grpc::InsecureChannelCredentials()));

  std::vector<common::v1::DialogueState> states = {common::v1::DialogueState()};
  for (const char* text : {"where is my order", "CD204411", "please schedule the delivery",
                           "Lisbon"}) {
    states.push_back(TrackTurn(*stub, states.back(), text).state());
  }
  const size_t dim = 48;  // 2 x hidden_dim
  for (size_t i = 1; i < states.size(); ++i) {
    const common::v1::DialogueContext& c = states[i].context();
    ASSERT_EQ(static_cast<size_t>(c.vector_size()), dim) << "turn " << i;
    EXPECT_THAT(c.model(), HasSubstr("helpline-dst-1 dst_service_test_dialogue_model (48)"));
    EXPECT_EQ(c.user_turns(), i);
    EXPECT_THAT(c.services(), ElementsAre("delivery"));
    const std::vector<float> now(c.vector().begin(), c.vector().end());
    const auto& before = states[i - 1].context().vector();
    EXPECT_NE(now, std::vector<float>(before.begin(), before.end())) << "turn " << i;
  }
  // Turn 1 asks for the order number: the context holds the reply's REQUEST.
  EXPECT_EQ(states[1].active_intent(), "track_order");
  ASSERT_EQ(states[1].context().system_acts_size(), 1);
  EXPECT_EQ(states[1].context().system_acts(0).act(), "REQUEST");
  EXPECT_EQ(states[1].context().system_acts(0).slot(), "order_id");
  EXPECT_EQ(states[2].slots().at("order_id").value(), "CD204411");
  // A new request, then a bare city right after the reply asked for it.
  EXPECT_EQ(states[3].active_intent(), "schedule_delivery");
  EXPECT_THAT(states[3].requested_slots(), ElementsAre("city"));
  ASSERT_TRUE(states[4].slots().contains("city"));
  EXPECT_EQ(states[4].slots().at("city").value(), "Lisbon");
  EXPECT_EQ(states[4].slots().at("order_id").value(), "CD204411");  // carried over
  // The history of values met is there for references.
  bool city_in_history = false;
  for (const auto& h : states[4].context().history()) {
    city_in_history = city_in_history || (h.slot() == "city" && h.value() == "Lisbon");
  }
  EXPECT_TRUE(city_in_history);

  // A state written without the learned tracker (no context): its memory starts at zeros.
  common::v1::DialogueState old = states[3];
  old.clear_context();
  const common::v1::DialogueState resumed = TrackTurn(*stub, old, "Lisbon").state();
  EXPECT_EQ(resumed.slots().at("city").value(), "Lisbon");
  EXPECT_EQ(resumed.context().vector_size(), static_cast<int>(dim));
  EXPECT_EQ(resumed.context().user_turns(), 1u);
  (*app)->server().Shutdown();
}

TEST(DstDialogueModelAppTest, MissingOrBrokenDialogueModelStopsTheStart) {
  ASSERT_FALSE(DialogueModelDir().empty());
  v1::DstConfig config = TestConfig(DeliveryDomainPath());
  config.set_dialogue_model_dir("/nonexistent/dst-dialogue-model");
  auto app = App::Create(config);
  ASSERT_FALSE(app.ok());
  EXPECT_EQ(app.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(app.status().message(),
              HasSubstr("dialogue_model_dir: dialogue model folder "
                        "/nonexistent/dst-dialogue-model does not exist"));

  const std::string broken = ::testing::TempDir() + "/dst_service_test_broken_dialogue";
  std::filesystem::remove_all(broken);
  std::filesystem::copy(DialogueModelDir(), broken);
  std::ofstream(broken + "/dst_model.json", std::ios::trunc) << "{not json";
  config.set_dialogue_model_dir(broken);
  app = App::Create(config);
  ASSERT_FALSE(app.ok());
  EXPECT_EQ(app.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(app.status().message(), HasSubstr("dialogue_model_dir: "));
  EXPECT_THAT(app.status().message(), HasSubstr(broken + "/dst_model.json"));
  std::filesystem::remove_all(broken);
}

// ---- The learned tracker over a long conversation: the history cap and the cached schema ----

// A conversation of `rounds` requests, each with a new order number and city: the values met
// outgrow any small history cap.
std::vector<std::string> LongConversation(size_t rounds) {
  std::vector<std::string> turns;
  for (size_t r = 0; r < rounds; ++r) {
    turns.push_back(r % 2 == 0 ? "where is my order" : "I want to track my order");
    turns.push_back(nlu::dst::testing::OrderIds()[r % nlu::dst::testing::OrderIds().size()]);
    turns.push_back("please schedule the delivery");
    turns.push_back(nlu::dst::testing::Cities()[r % nlu::dst::testing::Cities().size()]);
  }
  return turns;
}

// RecentHistory over a state's history (its one service, "delivery").
std::vector<std::string> ExpectedHistory(const common::v1::DialogueContext& context, size_t limit) {
  std::vector<nlu::dst::Snapshot::Value> values;
  for (const common::v1::ContextValue& h : context.history()) {
    values.push_back(
        {"delivery", h.slot(), h.value(), h.from_system(), static_cast<int>(h.turn())});
  }
  std::vector<std::string> out;
  for (const auto& h : nlu::dst::RecentHistory(values, limit)) {
    out.push_back(absl::StrCat(h.slot, "=", h.value, h.from_system ? " sys " : " ", h.turn));
  }
  return out;
}

std::vector<std::string> HistoryOf(const common::v1::DialogueContext& context) {
  std::vector<std::string> out;
  for (const common::v1::ContextValue& h : context.history()) {
    out.push_back(
        absl::StrCat(h.slot(), "=", h.value(), h.from_system() ? " sys " : " ", h.turn()));
  }
  return out;
}

std::vector<float> VectorOf(const common::v1::DialogueState& state) {
  return {state.context().vector().begin(), state.context().vector().end()};
}

// Two states alike but for the last bits of their float scores: the TF-IDF intent score of
// two Tracker instances can differ in its last bit (its sum runs over a hash map whose order
// is per table), which has nothing to do with the learned tracker. Its context vector is
// compared bit for bit on its own (VectorOf).
bool SameState(const common::v1::DialogueState& a, const common::v1::DialogueState& b) {
  google::protobuf::util::MessageDifferencer differencer;
  differencer.set_float_comparison(google::protobuf::util::MessageDifferencer::APPROXIMATE);
  return differencer.Compare(a, b);
}

struct RunningApp {
  std::unique_ptr<App> app;
  std::unique_ptr<v1::DialogueStateService::Stub> stub;
};

RunningApp StartDeliveryApp(uint32_t history) {
  v1::DstConfig config = TestConfig(DeliveryDomainPath());
  config.set_dialogue_model_dir(DialogueModelDir());
  config.set_dialogue_model_history(history);
  auto app = App::Create(config);
  EXPECT_TRUE(app.ok()) << app.status();
  if (!app.ok()) return {};
  RunningApp out;
  out.app = *std::move(app);
  out.stub = v1::DialogueStateService::NewStub(
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", out.app->server().grpc_port()),
                          grpc::InsecureChannelCredentials()));
  return out;
}

// A long conversation over gRPC with dialogue_model_history 8 against the same conversation
// with a cap it never reaches: the capped state's history stays at 8, holds the 8 newest
// values (each slot and value once), and every turn's slots, intent, context vector and
// acts are the uncapped run's. A state over the cap (written with the wider one) is cut
// back at its next turn, with the same answer.
TEST(DstDialogueModelAppTest, LongConversationKeepsTheNewestValuesAtTheCap) {
  ASSERT_FALSE(DialogueModelDir().empty());
  constexpr size_t kCap = 8;
  RunningApp capped = StartDeliveryApp(kCap);
  RunningApp wide = StartDeliveryApp(static_cast<uint32_t>(kMaxDialogueHistory));
  ASSERT_NE(capped.stub, nullptr);
  ASSERT_NE(wide.stub, nullptr);
  common::v1::DialogueState a, b;
  size_t turns_at_cap = 0;
  const std::vector<std::string> turns = LongConversation(10);
  for (size_t i = 0; i < turns.size(); ++i) {
    a = TrackTurn(*capped.stub, a, turns[i]).state();
    b = TrackTurn(*wide.stub, b, turns[i]).state();
    ASSERT_EQ(a.context().user_turns(), i + 1);
    EXPECT_LE(static_cast<size_t>(a.context().history_size()), kCap) << "turn " << i;
    turns_at_cap += static_cast<size_t>(a.context().history_size()) == kCap;
    // The newest values, each slot and value once, exactly as the uncapped history ends.
    EXPECT_EQ(HistoryOf(a.context()), ExpectedHistory(b.context(), kCap)) << "turn " << i;
    // Everything else in the state is the same, the context vector bit for bit.
    EXPECT_EQ(VectorOf(a), VectorOf(b)) << "turn " << i;
    common::v1::DialogueState a_rest = a, b_rest = b;
    a_rest.mutable_context()->clear_history();
    b_rest.mutable_context()->clear_history();
    EXPECT_TRUE(SameState(a_rest, b_rest)) << "turn " << i << "\n"
                                           << a_rest.DebugString() << "\n"
                                           << b_rest.DebugString();
  }
  // The uncapped history outgrew the cap early; the capped one stayed at it from then on.
  EXPECT_GT(static_cast<size_t>(b.context().history_size()), 2 * kCap);
  EXPECT_GE(turns_at_cap, turns.size() / 2);
  // The last city and order number said are kept; the first order number is gone.
  const std::vector<std::string> kept = HistoryOf(a.context());
  const std::string last_city = turns.back(), first_id = turns[1],
                    last_id = turns[turns.size() - 3];
  const auto has = [&kept](const std::string& text) {
    return std::any_of(kept.begin(), kept.end(),
                       [&text](const std::string& h) { return h.find(text) != std::string::npos; });
  };
  EXPECT_TRUE(has("city=" + last_city));
  EXPECT_TRUE(has("order_id=" + last_id));
  EXPECT_FALSE(has(first_id));

  // The wide state (over the cap) resumed by the capped service: cut back, same answer.
  ASSERT_GT(static_cast<size_t>(b.context().history_size()), kCap);
  const common::v1::DialogueState from_capped = TrackTurn(*capped.stub, b, "Oslo").state();
  const common::v1::DialogueState from_wide = TrackTurn(*wide.stub, b, "Oslo").state();
  EXPECT_EQ(static_cast<size_t>(from_capped.context().history_size()), kCap);
  EXPECT_EQ(HistoryOf(from_capped.context()), ExpectedHistory(from_wide.context(), kCap));
  EXPECT_EQ(VectorOf(from_capped), VectorOf(from_wide));
  ASSERT_TRUE(from_capped.slots().contains("city"));
  EXPECT_EQ(from_capped.slots().at("city").value(), from_wide.slots().at("city").value());
  capped.app->server().Shutdown();
  wide.app->server().Shutdown();
}

// The schema encodings cached once per model and domain give every turn exactly what encoding
// them every turn gives (the whole state, context vector bit for bit), and so do turns of
// several conversations at once on the shared cache.
TEST(DstDialogueModelTest, CachedSchemaEncodingsChangeNothing) {
  ASSERT_FALSE(DialogueModelDir().empty());
  absl::StatusOr<domain::Domain> loaded = domain::LoadDomainFile(DeliveryDomainPath());
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  auto domain = std::make_shared<const domain::Domain>(*std::move(loaded));
  const auto make_tracker = [&domain](bool cached) -> std::unique_ptr<Tracker> {
    LearnedDialogueModelOptions options;
    options.cache_encodings = cached;
    options.max_history = 16;
    auto model = LearnedDialogueModel::Load(DialogueModelDir(), *domain, options);
    EXPECT_TRUE(model.ok()) << model.status();
    if (!model.ok()) return nullptr;
    TrackerOptions tracker_options;
    tracker_options.dialogue_model = std::shared_ptr<const DialogueModel>(*std::move(model));
    return std::make_unique<Tracker>(domain, tracker_options);
  };
  const std::unique_ptr<Tracker> cached = make_tracker(true), uncached = make_tracker(false);
  ASSERT_NE(cached, nullptr);
  ASSERT_NE(uncached, nullptr);
  const std::vector<std::string> turns = LongConversation(4);
  const auto converse = [&turns](const Tracker& tracker) {
    std::vector<common::v1::DialogueState> states;
    common::v1::DialogueState prior;
    for (const std::string& text : turns) {
      TurnInput input;
      input.user_text = text;
      input.language = "en";
      input.prior = prior;
      auto result = tracker.Track(input);
      EXPECT_TRUE(result.ok()) << result.status();
      if (!result.ok()) break;
      prior = result->state;
      states.push_back(prior);
    }
    return states;
  };
  const std::vector<common::v1::DialogueState> expected = converse(*uncached);
  ASSERT_EQ(expected.size(), turns.size());
  EXPECT_TRUE(expected.back().slots().contains("city"));
  const auto expect_same = [&expected](const std::vector<common::v1::DialogueState>& got,
                                       const std::string& what) {
    ASSERT_EQ(got.size(), expected.size()) << what;
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(VectorOf(got[i]), VectorOf(expected[i])) << what << " turn " << i;
      EXPECT_TRUE(SameState(got[i], expected[i])) << what << " turn " << i << "\n"
                                                  << got[i].DebugString() << "\n"
                                                  << expected[i].DebugString();
    }
  };
  expect_same(converse(*cached), "cached");
  std::vector<std::vector<common::v1::DialogueState>> by_thread(3);
  std::vector<std::thread> threads;
  for (auto& states : by_thread) {
    threads.emplace_back([&states, &converse, &cached] { states = converse(*cached); });
  }
  for (std::thread& t : threads) t.join();
  for (size_t i = 0; i < by_thread.size(); ++i) {
    expect_same(by_thread[i], absl::StrCat("thread ", i));
  }
}

TEST(DstDialogueModelAppTest, HistorySizeOverTheLimitStopsTheStart) {
  v1::DstConfig config = TestConfig(DeliveryDomainPath());
  config.set_dialogue_model_history(static_cast<uint32_t>(kMaxDialogueHistory) + 1);
  auto app = App::Create(config);
  ASSERT_FALSE(app.ok());
  EXPECT_EQ(app.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(app.status().message(), HasSubstr("dialogue_model_history: 4097 is over 4096"));
}

// Runs `command` and returns its exit code and combined output.
std::pair<int, std::string> RunCommand(const std::string& command) {
  std::string output;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return {-1, ""};
  std::array<char, 4096> buffer;
  size_t n;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), pipe)) > 0)
    output.append(buffer.data(), n);
  const int status = ::pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

TEST(DstBinaryTest, ExitsOneWithClearErrorWithoutDomain) {
  const char* bin = std::getenv("HELPLINE_BINARY_DIR");
  ASSERT_NE(bin, nullptr) << "HELPLINE_BINARY_DIR is set by ctest";
  const std::string binary = absl::StrCat(bin, "/bin/helpline-dst");
  auto [code, output] =
      RunCommand(binary + " --set server.grpc_port=0 --set server.metrics_port=0");
  EXPECT_EQ(code, 1) << output;
  EXPECT_THAT(output, HasSubstr("domain_file: required"));

  std::tie(code, output) = RunCommand(
      binary + " --set server.grpc_port=0 --set server.metrics_port=0 --set domain_file=" +
      SourceDir() + "/common/domain/CMakeLists.txt");
  EXPECT_EQ(code, 1) << output;
  EXPECT_THAT(output, HasSubstr("CMakeLists.txt"));
}

TEST(DstBinaryTest, BrokenDomainOrModelExitsOneNamingTheProblem) {
  const char* bin = std::getenv("HELPLINE_BINARY_DIR");
  ASSERT_NE(bin, nullptr) << "HELPLINE_BINARY_DIR is set by ctest";
  const std::string binary = absl::StrCat(bin, "/bin/helpline-dst");
  const std::string ports = " --set server.grpc_port=0 --set server.metrics_port=0";

  // The shop domain with its first intent twice.
  std::ifstream in(testutil::ShopDomainPath());
  std::string yaml((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t intents = yaml.find("\nintents:\n");
  ASSERT_NE(intents, std::string::npos);
  yaml.insert(intents + 10, "  thanks:\n    examples: {en: [ta], zh: [谢]}\n");
  const std::string broken = ::testing::TempDir() + "/dst_duplicate_intent.yaml";
  std::ofstream(broken) << yaml;
  auto [code, output] = RunCommand(binary + ports + " --set domain_file=" + broken);
  EXPECT_EQ(code, 1) << output;
  EXPECT_THAT(output, HasSubstr("dst_duplicate_intent.yaml: intents.thanks: duplicate intent "
                                "'thanks' (first at line "));

  ASSERT_FALSE(ShopModelDir().empty());
  std::tie(code, output) = RunCommand(binary + ports + " --set domain_file=" +
                                      testutil::ShopDomainPath() +
                                      " --set model_dir=" + MismatchingModelDir());
  EXPECT_EQ(code, 1) << output;
  EXPECT_THAT(output, HasSubstr("intents only in the model: [cancel_subscription]"));
}

}  // namespace
}  // namespace helpline::dst
