// ModelUtteranceModel over a tiny model trained here on the shop domain's examples.
#include "services/dst/model_scorer.h"

#include <filesystem>
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "services/dst/model_testutil.h"
#include "tests/testing/shop_domain.h"

namespace helpline::dst {
namespace {

using ::testing::HasSubstr;

class ModelScorerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(::testing::TempDir() + "/dst_model_scorer_shop");
    std::filesystem::remove_all(*dir_);
    const auto& shop = helpline::testutil::ShopDomain();
    ASSERT_TRUE(shop.ok()) << shop.status();
    absl::Status trained = model_testing::TrainTinyModel(*shop, *dir_);
    ASSERT_TRUE(trained.ok()) << trained;
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(*dir_);
    delete dir_;
  }
  static std::shared_ptr<const domain::Domain> Shop() { return *helpline::testutil::ShopDomain(); }

  // A copy of the trained folder whose nlu_model.json has `edit` applied.
  static std::string EditedCopy(const std::string& name,
                                const std::function<void(nlohmann::json&)>& edit) {
    const std::string dir = ::testing::TempDir() + "/" + name;
    std::filesystem::remove_all(dir);
    std::filesystem::copy(*dir_, dir);
    const std::string json_path = dir + "/nlu_model.json";
    nlohmann::json json = nlohmann::json::parse(std::ifstream(json_path));
    edit(json);
    std::ofstream(json_path) << json.dump();
    return dir;
  }

  static std::string* dir_;
};
std::string* ModelScorerTest::dir_ = nullptr;

TEST_F(ModelScorerTest, LoadsAndNamesTheIntentOfTrainingExamples) {
  auto model = ModelUtteranceModel::Load(*dir_, Shop());
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->info().slot_types.size(), Shop()->slots.size());
  for (const auto& [text, intent] :
       std::vector<std::pair<std::string, std::string>>{{"where is my order", "track_order"},
                                                        {"I want to return an item", "return_item"},
                                                        {"我要退货", "return_item"},
                                                        {"转人工", "human_agent"}}) {
    UtteranceAnalysis a = (*model)->Analyze(text, "und");
    ASSERT_EQ(a.intents.size(), 1u) << text;
    EXPECT_EQ(a.intents[0].intent, intent) << text;
    EXPECT_GT(a.intents[0].score, 0.0f);
    EXPECT_LE(a.intents[0].score, 1.0f);
  }
}

TEST_F(ModelScorerTest, TaggedSpansBecomeCanonicalValues) {
  auto model = ModelUtteranceModel::Load(*dir_, Shop());
  ASSERT_TRUE(model.ok()) << model.status();
  const std::string text = "where is my order ab123456";
  UtteranceAnalysis a = (*model)->Analyze(text, "en");
  ASSERT_EQ(a.slots.size(), 1u);
  EXPECT_EQ(a.slots[0].slot, "order_id");
  EXPECT_EQ(a.slots[0].value, "AB123456");  // normalize: upper, by the slot's extractor
  EXPECT_EQ(text.substr(a.slots[0].begin, a.slots[0].end - a.slots[0].begin), "ab123456");
  EXPECT_FLOAT_EQ(a.slots[0].confidence, 0.8f);
}

TEST_F(ModelScorerTest, NoTokensNoAnalysis) {
  auto model = ModelUtteranceModel::Load(*dir_, Shop());
  ASSERT_TRUE(model.ok()) << model.status();
  UtteranceAnalysis a = (*model)->Analyze("", "en");
  EXPECT_TRUE(a.intents.empty());
  EXPECT_FALSE(a.out_of_scope);
  EXPECT_TRUE(a.slots.empty());
}

TEST_F(ModelScorerTest, ThresholdMakesOutOfScope) {
  // A threshold above any probability: every turn is out of scope, the intent still named.
  const std::string dir =
      EditedCopy("dst_model_scorer_strict", [](nlohmann::json& j) { j["oos_threshold"] = 1.01; });
  auto model = ModelUtteranceModel::Load(dir, Shop());
  ASSERT_TRUE(model.ok()) << model.status();
  UtteranceAnalysis a = (*model)->Analyze("where is my order", "en");
  EXPECT_TRUE(a.out_of_scope);
  ASSERT_EQ(a.intents.size(), 1u);
  EXPECT_EQ(a.intents[0].intent, "track_order");
}

TEST_F(ModelScorerTest, MismatchingModelIsRefusedWithTheDifference) {
  const std::string dir = EditedCopy("dst_model_scorer_mismatch", [](nlohmann::json& j) {
    for (auto& intent : j["intents"]) {
      if (intent == "refund_status") intent = "refund";
    }
    for (auto& slot : j["slot_types"]) {  // Same count: the weights still fit.
      if (slot == "item") slot = "size";
    }
  });
  auto model = ModelUtteranceModel::Load(dir, Shop());
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(model.status().message(), HasSubstr("intents missing in the model: [refund_status]"));
  EXPECT_THAT(model.status().message(), HasSubstr("intents only in the model: [refund]"));
  EXPECT_THAT(model.status().message(), HasSubstr("slots missing in the model: [item]"));
  EXPECT_THAT(model.status().message(), HasSubstr("slots only in the model: [size]"));
  EXPECT_THAT(model.status().message(), HasSubstr(dir));
}

TEST_F(ModelScorerTest, MissingOrBrokenFolder) {
  auto model = ModelUtteranceModel::Load("/nonexistent/shop-model", Shop());
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(model.status().message(), HasSubstr("/nonexistent/shop-model"));

  const std::string dir = EditedCopy("dst_model_scorer_broken", [](nlohmann::json&) {});
  std::filesystem::resize_file(dir + "/model.safetensors", 100);
  model = ModelUtteranceModel::Load(dir, Shop());
  ASSERT_FALSE(model.ok());
  EXPECT_NE(model.status().code(), absl::StatusCode::kOk);
  EXPECT_THAT(model.status().message(), HasSubstr("model.safetensors"));
}

}  // namespace
}  // namespace helpline::dst
