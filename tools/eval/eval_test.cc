#include <filesystem>
#include <map>
#include <memory>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "nlu/dst/dst_model.h"
#include "nlu/dst/dst_test_data.h"
#include "tools/eval/evaluate.h"
#include "tools/eval/model_loader.h"
#include "tools/eval/rule_predictor.h"

namespace helpline::eval {
namespace {

using ::testing::DoubleEq;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

data::UtteranceExample Example(std::string text, std::string intent,
                               std::vector<data::SlotSpan> spans = {}) {
  data::UtteranceExample e;
  e.text = std::move(text);
  e.intent = std::move(intent);
  e.in_scope = e.intent != "oos";
  e.spans = std::move(spans);
  return e;
}

data::UtteranceDataset Utterances(std::vector<data::UtteranceExample> examples,
                                  std::string format = "bitext") {
  data::UtteranceDataset d;
  d.format = std::move(format);
  d.origin = "inline";
  d.has_slots = d.format == "bitext";
  d.examples = std::move(examples);
  return d;
}

TEST(RuleUtteranceTest, DomainFromTrainingSplit) {
  const data::UtteranceDataset train = Utterances({
      Example("where is my order 12345", "track_order", {{"order_id", 18, 23, "12345"}}),
      Example("track my parcel", "track_order"),
      Example("upgrade my account to platinum", "switch_account",
              {{"account_type", 22, 30, "Platinum"}}),
  });
  auto domain = DomainFromUtterances(train);
  ASSERT_TRUE(domain.ok()) << domain.status();
  ASSERT_EQ(domain->intents.size(), 2u);
  EXPECT_EQ(domain->intents[0].name, "track_order");
  EXPECT_THAT(domain->intents[0].examples.at("en"),
              ElementsAre("where is my order 12345", "track my parcel"));
  EXPECT_THAT(domain->intents[0].optional_slots, ElementsAre("order_id"));
  ASSERT_EQ(domain->slots.size(), 2u);
  EXPECT_EQ(domain->slots[1].name, "account_type");
  EXPECT_EQ(domain->slots[1].values[0].value, "platinum");
  EXPECT_FALSE(DomainFromUtterances(Utterances({})).ok());
}

TEST(RuleUtteranceTest, PredictsIntentsAndLocatesSlotValues) {
  const data::UtteranceDataset train = Utterances({
      Example("where is my order 12345", "track_order", {{"order_id", 18, 23, "12345"}}),
      Example("track my parcel please", "track_order"),
      Example("upgrade my account to platinum", "switch_account",
              {{"account_type", 22, 30, "Platinum"}}),
      Example("change to the gold account", "switch_account", {{"account_type", 14, 18, "Gold"}}),
  });
  const data::UtteranceDataset dev = Utterances({
      Example("please upgrade my account to Gold", "switch_account",
              {{"account_type", 29, 33, "Gold"}}),
      Example("where is order 12345", "track_order", {{"order_id", 15, 20, "12345"}}),
      Example("upgrade my account to silver", "switch_account"),
  });
  auto predictor = LoadUtterancePredictor("rule", &train, dev);
  ASSERT_TRUE(predictor.ok()) << predictor.status();
  auto p = (*predictor)->Predict(dev.examples[0].text);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->intent, "switch_account");
  EXPECT_GT(p->confidence, 0);
  EXPECT_THAT(p->slots, ElementsAre(data::SlotSpan{"account_type", 29, 33, "Gold"}));
  auto result = EvaluateUtterances(**predictor, dev, {});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->items, 3u);
  // Intents all right; spans: 2 gold, 2 predicted (Gold, 12345), both right.
  EXPECT_THAT(result->metrics,
              ElementsAre(Pair("entity_f1", DoubleEq(1.0)), Pair("intent_accuracy", DoubleEq(1.0))));
  // An empty utterance has no intent rather than failing the run.
  auto empty = (*predictor)->Predict("   ");
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->intent, "");
  // --limit spreads the picks: 2 of 3 -> examples 0 and 1.
  EvalOptions limited;
  limited.limit = 2;
  EXPECT_EQ(EvaluateUtterances(**predictor, dev, limited)->items, 2u);
}

TEST(ModelLoaderTest, Errors) {
  const data::UtteranceDataset dev = Utterances({Example("x", "a")});
  EXPECT_THAT(LoadUtterancePredictor("rule", nullptr, dev).status().message(),
              HasSubstr("--train"));
  EXPECT_EQ(LoadUtterancePredictor("models/nlu-banking77", nullptr, dev).status().code(),
            absl::StatusCode::kUnimplemented);
  EXPECT_EQ(LoadUtterancePredictor("/nonexistent/domain.yaml", nullptr, dev).status().code(),
            absl::StatusCode::kNotFound);
}

// A small SGD-like data set: one service, a system that asks for the city.
data::DialogueDataset Dialogues() {
  data::DialogueDataset d;
  d.format = "sgd";
  d.origin = "inline";
  data::ServiceSchema s;
  s.name = "Cars_1";
  s.slots = {{"city", "pickup city", false, {}}, {"type", "car type", true, {"Compact", "SUV"}}};
  data::IntentSchema intent;
  intent.name = "GetCarsAvailable";
  intent.description = "find cars to rent";
  intent.required_slots = {"city"};
  intent.optional_slots = {{"type", "dontcare"}};
  s.intents = {intent};
  d.services = {s};
  data::Dialogue dialogue;
  dialogue.id = "1_00000";
  dialogue.services = {"Cars_1"};
  auto user = [](std::string text, std::string intent,
                 std::map<std::string, std::vector<std::string>> values) {
    data::Turn t;
    t.utterance = std::move(text);
    data::Frame f;
    f.service = "Cars_1";
    f.has_state = true;
    f.state.active_intent = std::move(intent);
    f.state.slot_values = std::move(values);
    t.frames = {f};
    return t;
  };
  data::Turn system;
  system.speaker = data::Speaker::kSystem;
  system.utterance = "Where do you want to pick it up?";
  data::Frame asks;
  asks.service = "Cars_1";
  asks.actions = {{"REQUEST", "city", {}}};
  system.frames = {asks};
  dialogue.turns = {user("I need to rent cars, an SUV", "GetCarsAvailable", {{"type", {"SUV"}}}),
                    system,
                    user("San Jose", "GetCarsAvailable", {{"type", {"SUV"}}, {"city", {"San Jose"}}})};
  d.dialogues = {dialogue};
  return d;
}

// Replays the gold states by utterance: the runner's plumbing scores it perfectly.
class OraclePredictor : public DialoguePredictor {
 public:
  explicit OraclePredictor(const data::DialogueDataset& data) : data_(data) {}
  class Session : public DialogueSession {
   public:
    explicit Session(const data::DialogueDataset& data) : data_(data) {}
    absl::Status SystemTurn(const data::Turn& turn) override {
      EXPECT_TRUE(turn.frames.empty() || !turn.frames[0].has_state);
      return absl::OkStatus();
    }
    absl::StatusOr<metrics::DialogueStatePrediction> UserTurn(absl::string_view text) override {
      for (const auto& d : data_.dialogues) {
        for (const auto& t : d.turns) {
          if (t.utterance == text) return metrics::DialogueStatePrediction{{"Cars_1", t.frames[0].state}};
        }
      }
      return absl::NotFoundError("unknown turn");
    }
    const data::DialogueDataset& data_;
  };
  absl::StatusOr<std::unique_ptr<DialogueSession>> NewSession(
      const std::vector<const data::ServiceSchema*>& services) override {
    EXPECT_EQ(services.size(), 1u);
    return std::make_unique<Session>(data_);
  }
  std::string Describe() const override { return "oracle"; }
  const data::DialogueDataset& data_;
};

TEST(EvaluateDialoguesTest, OracleScoresOneAndSeenServicesSplit) {
  const data::DialogueDataset data = Dialogues();
  OraclePredictor oracle(data);
  auto result = EvaluateDialogues(oracle, data, {"Cars_1"}, {});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->items, 2u);
  EXPECT_DOUBLE_EQ(result->metrics.at("joint_goal_accuracy"), 1.0);
  EXPECT_DOUBLE_EQ(result->metrics.at("joint_goal_accuracy_seen"), 1.0);
  EXPECT_EQ(result->metrics.count("joint_goal_accuracy_unseen"), 0u);
  EXPECT_DOUBLE_EQ(result->metrics.at("active_intent_accuracy"), 1.0);
}

TEST(RuleDialogueTest, SchemaIntentsRequestedSlotsAndCategoricalValues) {
  const data::DialogueDataset data = Dialogues();
  auto domain = DomainFromDialogues(data, nullptr);
  ASSERT_TRUE(domain.ok()) << domain.status();
  ASSERT_EQ(domain->intents.size(), 1u);
  EXPECT_EQ(domain->intents[0].name, "Cars_1.GetCarsAvailable");
  EXPECT_THAT(domain->intents[0].examples.at("en"),
              ElementsAre("get cars available", "find cars to rent"));
  ASSERT_NE(domain->FindSlot("Cars_1.city"), nullptr);
  EXPECT_EQ(domain->FindSlot("Cars_1.city")->type, domain::SlotType::kFreeText);
  EXPECT_EQ(domain->FindSlot("Cars_1.type")->type, domain::SlotType::kEnum);

  auto predictor = LoadDialoguePredictor("rule", nullptr, data);
  ASSERT_TRUE(predictor.ok()) << predictor.status();
  // Turn 1: intent from the example words, SUV from the categorical values. Turn 2: the
  // bare "San Jose" fills the city the system asked for.
  auto result = EvaluateDialogues(**predictor, data, {}, {});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_DOUBLE_EQ(result->metrics.at("joint_goal_accuracy"), 1.0);
  EXPECT_DOUBLE_EQ(result->metrics.at("active_intent_accuracy"), 1.0);
  EXPECT_DOUBLE_EQ(result->metrics.at("requested_slot_f1"), 1.0);
}

// A tracker folder trained on the inline shop dialogues, loaded by --model DIR, scored by the
// loop, and compared with the rule tracker in the same run: the rule tracker cannot take a
// "yes" to an offered time, the learned one does.
TEST(DstModelFolderTest, LoadedScoredAndBeatsTheRuleTracker) {
  nlu::model::SetTorchThreads(1);
  const data::DialogueDataset train = nlu::dst::testing::ShopDialogues(24);
  nlu::dst::DstTrainOptions options;
  options.config.embedding_dim = options.config.hidden_dim = options.config.schema_dim = 24;
  options.config.mlp_dim = 48;
  options.config.min_count = 1;
  options.epochs = 25;
  options.batch_dialogues = 4;
  options.learning_rate = 5e-3;
  auto model = nlu::dst::DstModel::Train(train, options, nullptr);
  ASSERT_TRUE(model.ok()) << model.status();
  const std::string dir =
      (std::filesystem::temp_directory_path() / "eval_test_dst_model").string();
  std::filesystem::remove_all(dir);
  ASSERT_TRUE((*model)->Save(dir).ok());

  data::DialogueDataset dev = nlu::dst::testing::ShopDialogues(9, 5);
  dev.split = "dev";
  auto learned = LoadDialoguePredictor(dir, &train, dev);
  ASSERT_TRUE(learned.ok()) << learned.status();
  EXPECT_THAT((*learned)->Describe(), HasSubstr("dst model"));
  auto rule = LoadDialoguePredictor("rule", &train, dev);
  ASSERT_TRUE(rule.ok()) << rule.status();
  auto learned_result = EvaluateDialogues(**learned, dev, {"Shop_1"}, {});
  auto rule_result = EvaluateDialogues(**rule, dev, {"Shop_1"}, {});
  ASSERT_TRUE(learned_result.ok()) << learned_result.status();
  ASSERT_TRUE(rule_result.ok()) << rule_result.status();
  const double learned_jga = learned_result->metrics.at("joint_goal_accuracy");
  EXPECT_GT(learned_jga, 0.8);
  EXPECT_GT(learned_jga, rule_result->metrics.at("joint_goal_accuracy"));
  EXPECT_DOUBLE_EQ(learned_result->metrics.at("joint_goal_accuracy_seen"), learned_jga);

  // The service's fused tracker (rules + this learned tracker, its memory carried in the
  // state from turn to turn): above the rules alone.
  auto fused = MakeFusedDialoguePredictor(dir, dev, &train);
  ASSERT_TRUE(fused.ok()) << fused.status();
  EXPECT_THAT((*fused)->Describe(), HasSubstr("fused: rule"));
  auto fused_result = EvaluateDialogues(**fused, dev, {"Shop_1"}, {});
  ASSERT_TRUE(fused_result.ok()) << fused_result.status();
  EXPECT_GT(fused_result->metrics.at("joint_goal_accuracy"),
            rule_result->metrics.at("joint_goal_accuracy"));
  auto missing = MakeFusedDialoguePredictor(dir + "_missing", dev, &train);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("--dialogue-model " + dir + "_missing"));

  // The folder is refused for utterance data; a broken folder names its file.
  const data::UtteranceDataset utterances = Utterances({Example("x", "a")});
  auto wrong_mode = LoadUtterancePredictor(dir, nullptr, utterances);
  EXPECT_EQ(wrong_mode.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(wrong_mode.status().message(), HasSubstr("helpline-eval dst"));
  std::filesystem::remove(std::filesystem::path(dir) / nlu::dst::kDstWeightsName);
  auto broken = LoadDialoguePredictor(dir, &train, dev);
  EXPECT_EQ(broken.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(broken.status().message(), HasSubstr("model.safetensors"));
  std::filesystem::remove_all(dir);
}

TEST(ReportTest, FlatJsonOfTheIssuesNames) {
  const std::string json = ReportJson({{"intent_accuracy", 0.5},
                                       {"joint_goal_accuracy_unseen", 0.25},
                                       {"average_goal_accuracy", 0.7},
                                       {"slot_accuracy", 0.9}});
  const nlohmann::json parsed = nlohmann::json::parse(json);
  EXPECT_EQ(parsed.size(), 2u);
  EXPECT_DOUBLE_EQ(parsed["intent_accuracy"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(parsed["joint_goal_accuracy_unseen"].get<double>(), 0.25);
  EXPECT_TRUE(IsReportedMetric("requested_slot_f1_seen"));
  EXPECT_FALSE(IsReportedMetric("slot_accuracy"));
}

}  // namespace
}  // namespace helpline::eval
