// helpline-eval generation on tiny inline data sets with a tiny random GPT-2 (GPT-2's real
// tokenizer, made by make_tiny_gpt2.py): chrF against hand-computed values, the retrieval
// baseline, perplexity against a token-by-token computation, the slot-fidelity test, the JSON
// report, and the bad-input errors (exit 2).
#include "tools/eval/generation_eval.h"

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lm/model/gpt2.h"
#include "lm/tokenizer/bpe.h"
#include "nlohmann/json.hpp"
#include "services/generation/reply/blocklist.h"
#include "tests/testing/tiny_gpt2.h"
#include "train/dialogue_text.h"

namespace helpline::eval {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

void WriteFile(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

std::string BitextLine(const std::string& instruction, const std::string& response) {
  return nlohmann::json{{"instruction", instruction}, {"response", response}}.dump() + "\n";
}

// A CamRest676 dialogue: (transcript, inform slots, system sentence) per turn.
struct CamTurn {
  std::string user;
  std::vector<std::pair<std::string, std::string>> informs;
  std::string agent;
};

nlohmann::json CamDialogue(const std::vector<CamTurn>& turns) {
  nlohmann::json dial = nlohmann::json::array();
  for (size_t i = 0; i < turns.size(); ++i) {
    nlohmann::json slu = nlohmann::json::array();
    for (const auto& [slot, value] : turns[i].informs) {
      slu.push_back({{"act", "inform"}, {"slots", {{slot, value}}}});
    }
    dial.push_back({{"turn", i},
                    {"usr", {{"transcript", turns[i].user}, {"slu", slu}}},
                    {"sys", {{"sent", turns[i].agent}}}});
  }
  return {{"dial", dial}};
}

class GenerationEvalTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = new fs::path(fs::temp_directory_path() / absl::StrCat("generation_eval_test_", ::getpid()));
    fs::create_directories(*root_);
    model_ = new std::string((*root_ / "model").string());
    absl::Status made = testutil::MakeTinyGpt2(
        *model_, "--merges all --positions 512 --embd 64 --layers 2 --heads 4");
    if (!made.ok()) {
      ASSERT_TRUE(absl::IsFailedPrecondition(made)) << made;
      skip_ = new std::string(made.message());
      return;
    }
    // Bitext: the dev lines are also in train (other files, so other examples): retrieval
    // finds each one's exact duplicate context and reply.
    const std::vector<std::pair<std::string, std::string>> pairs = {
        {"where is my order {{Order Number}}", "Let me check order {{Order Number}} for you."},
        {"i want a refund", "I can help you with a refund. What did you buy?"},
        {"cancel my account please", "I am sorry to see you go. I will close the account."},
        {"how do i change my delivery address",
         "You can change the address under {{Settings}}, then Delivery."}};
    std::string train, dev;
    for (const auto& [q, a] : pairs) {
      train += BitextLine(q, a);
      dev += BitextLine(q, a);
    }
    train += BitextLine("do you ship abroad", "Yes, we ship to most countries.");
    WriteFile(*root_ / "bitext" / "train.jsonl", train);
    WriteFile(*root_ / "bitext" / "dev.jsonl", dev);
    WriteFile(*root_ / "empty" / "train.jsonl", train);
    WriteFile(*root_ / "empty" / "dev.jsonl", "\n");
    WriteFile(*root_ / "broken" / "train.jsonl", train);
    WriteFile(*root_ / "broken" / "dev.jsonl", BitextLine("a", "b") + "{not json\n");

    nlohmann::json cam_train = nlohmann::json::array(
        {CamDialogue({{"I want cheap italian food", {{"food", "italian"}, {"pricerange", "cheap"}},
                       "Pizza Hut City Centre serves cheap italian food."},
                      {"What is the address?", {}, "It is at Regent Street."}}),
         CamDialogue({{"Something in the north please", {{"area", "north"}},
                       "What kind of food would you like?"}})});
    nlohmann::json cam_dev = nlohmann::json::array(
        {CamDialogue({{"Any indian place in the centre?", {{"food", "indian"}, {"area", "centre"}},
                       "Curry Garden serves indian food in the centre."},
                      {"Is it expensive?", {{"pricerange", "expensive"}},
                       "Yes, it is in the expensive price range."}}),
         CamDialogue({{"I need a cheap restaurant", {{"pricerange", "cheap"}},
                       "What area would you like?"}})});
    WriteFile(*root_ / "camrest" / "train.json", cam_train.dump(1));
    WriteFile(*root_ / "camrest" / "val.json", cam_dev.dump(1));
  }

  static void TearDownTestSuite() {
    std::error_code ec;
    if (root_ != nullptr) fs::remove_all(*root_, ec);
  }

  void SetUp() override {
    if (skip_ != nullptr) GTEST_SKIP() << *skip_;
  }

  static std::string Path(const std::string& name) { return (*root_ / name).string(); }

  // Runs `helpline-eval generation` with `args`; returns the exit code, stderr in `err`.
  static int Run(std::vector<std::string> args, std::string* err = nullptr) {
    args.insert(args.begin(), "generation");
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    ::testing::internal::CaptureStderr();
    const int code = RunGenerationEval(static_cast<int>(argv.size()), argv.data());
    const std::string captured = ::testing::internal::GetCapturedStderr();
    if (err != nullptr) *err = captured;
    return code;
  }

  static GenerationEvalOptions Options(const std::string& data, train::TextFormat format) {
    GenerationEvalOptions o;
    o.model_dir = *model_;
    o.data = Path(data);
    o.format = format;
    o.max_tokens = 24;
    return o;
  }

  static fs::path* root_;
  static std::string* model_;
  static std::string* skip_;
};

fs::path* GenerationEvalTest::root_ = nullptr;
std::string* GenerationEvalTest::model_ = nullptr;
std::string* GenerationEvalTest::skip_ = nullptr;

TEST(EvaluationDomainTest, TypesSlotsByTheirValuesAndKeepsSlotValuesFollowsTheFilter) {
  std::vector<train::ExampleRecord> records(3);
  const char* emails[] = {"ann@example.com", "bob@example.org", "dontcare"};
  const char* amounts[] = {"$150", "1720 bucks", "$1,410"};
  for (size_t i = 0; i < records.size(); ++i) {
    auto& slots = *records[i].context.mutable_state()->mutable_slots();
    slots["email"].set_value(emails[i]);
    slots["transfer_amount"].set_value(amounts[i]);
    slots["food"].set_value(i == 0 ? "italian" : "thai");
  }
  std::vector<const train::ExampleRecord*> pointers;
  for (const auto& r : records) pointers.push_back(&r);
  absl::StatusOr<std::shared_ptr<const domain::Domain>> domain = EvaluationDomain(pointers);
  ASSERT_TRUE(domain.ok()) << domain.status();
  ASSERT_EQ((*domain)->slots.size(), 3u);
  EXPECT_EQ((*domain)->FindSlot("email")->type, domain::SlotType::kEmail);
  EXPECT_EQ((*domain)->FindSlot("food")->type, domain::SlotType::kFreeText);
  EXPECT_EQ((*domain)->FindSlot("transfer_amount")->type, domain::SlotType::kNumber);

  absl::StatusOr<generation::reply::Blocklist> blocklist =
      generation::reply::Blocklist::FromPhrases({{"en", {"idiot"}}}, "test");
  ASSERT_TRUE(blocklist.ok()) << blocklist.status();
  absl::StatusOr<std::unique_ptr<const generation::reply::ReplyChooser>> chooser =
      generation::reply::ReplyChooser::Create(*domain, *std::move(blocklist), {});
  ASSERT_TRUE(chooser.ok()) << chooser.status();
  generation::v1::GenerationContext context = records[0].context;
  context.set_user_text("Send $150 please");
  EXPECT_TRUE(KeepsSlotValues(**chooser, context, "I will send $150 to your account."));
  EXPECT_TRUE(KeepsSlotValues(**chooser, context, "I will send {{transfer_amount}} now."));
  EXPECT_TRUE(KeepsSlotValues(**chooser, context, "Some {{food}} food, then."));
  // Another amount than the state's, a placeholder without a value, a stray brace.
  EXPECT_FALSE(KeepsSlotValues(**chooser, context, "I will send $1,500 to your account."));
  EXPECT_FALSE(KeepsSlotValues(**chooser, context, "Your table at {{time}} is booked."));
  EXPECT_FALSE(KeepsSlotValues(**chooser, context, "Booked for {{food."));
  // Other reasons are not slot fidelity.
  EXPECT_TRUE(KeepsSlotValues(**chooser, context, "You idiot."));
}

TEST_F(GenerationEvalTest, TargetLogProbsMatchATokenByTokenComputation) {
  absl::StatusOr<std::unique_ptr<lm::Gpt2Model>> model = lm::Gpt2Model::Load(*model_);
  ASSERT_TRUE(model.ok()) << model.status();
  std::vector<ScoringInput> inputs = {{{10, 20, 30, 40, 50}, {60, 70, 80}},
                                      {{5}, {6}},
                                      {{100, 200, 300, 400, 500, 600, 700}, {800, 900}},
                                      {{1, 2}, {3, 4, 5, 6, 7}}};
  // Two sequences at a time, prompts in chunks of 3: every path of the scheduler.
  absl::StatusOr<std::vector<double>> batched = TargetLogProbs(**model, inputs, 2, 3);
  ASSERT_TRUE(batched.ok()) << batched.status();
  const int vocab = (*model)->config().vocab_size;
  for (size_t i = 0; i < inputs.size(); ++i) {
    std::unique_ptr<lm::KvCache> cache = (*model)->NewCache();
    std::vector<int32_t> all = inputs[i].prompt;
    all.insert(all.end(), inputs[i].target.begin(), inputs[i].target.end());
    double sum = 0;
    std::vector<float> logits;
    for (size_t t = 0; t + 1 < all.size(); ++t) {
      const lm::StepInput in{cache.get(), absl::MakeConstSpan(&all[t], 1)};
      ASSERT_TRUE((*model)->Step(absl::MakeConstSpan(&in, 1), logits).ok());
      if (t + 1 < inputs[i].prompt.size()) continue;
      double max = logits[0], z = 0;
      for (int v = 0; v < vocab; ++v) max = std::max<double>(max, logits[v]);
      for (int v = 0; v < vocab; ++v) z += std::exp(logits[v] - max);
      sum += logits[all[t + 1]] - max - std::log(z);
    }
    EXPECT_LT(sum, 0);
    EXPECT_NEAR((*batched)[i], sum, 1e-3 * std::abs(sum)) << "input " << i;
  }
}

TEST_F(GenerationEvalTest, PerplexityChrfAndRetrievalOnBitext) {
  GenerationEvalOptions options = Options("bitext", train::TextFormat::kBitext);
  absl::StatusOr<std::map<std::string, double>> m = EvaluateGeneration(options);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->at("examples"), 4);
  EXPECT_EQ(m->at("retrieval_examples"), 5);
  // Every dev example's context and reply are in the training file.
  EXPECT_DOUBLE_EQ(m->at("retrieval_chrf"), 100.0);
  // One of the four references keeps Bitext's {{order_number}}, which no state fills, but
  // the customer wrote it too: echoing it is allowed (reply::CustomerPlaceholders).
  // Another keeps {{settings}}, a fact of the business: the train split's replies write it and
  // no state has it, so it is a constant kept as written (--data-constants), as is
  // {{order_number}} for the replies that write it when the customer did not.
  EXPECT_DOUBLE_EQ(m->at("reference_rejected_unfilled_placeholder"), 0.0);
  EXPECT_DOUBLE_EQ(m->at("data_constants"), 2.0);
  GenerationEvalOptions without = options;
  without.data_constants = false;
  absl::StatusOr<std::map<std::string, double>> w = EvaluateGeneration(without);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_DOUBLE_EQ(w->at("reference_rejected_unfilled_placeholder"), 0.25);
  EXPECT_DOUBLE_EQ(w->at("data_constants"), 0.0);
  // Every evaluated prompt has the nearest training reply as its exemplar.
  EXPECT_DOUBLE_EQ(m->at("exemplar_rate"), 1.0);

  // Perplexity by hand: the reference reply tokens and the end token after the prompt, which
  // carries the exemplar from the train split.
  train::TextOptions text;
  text.split = "dev";
  auto records = train::ReadExampleRecords(Path("bitext"), train::TextFormat::kBitext, text);
  ASSERT_TRUE(records.ok()) << records.status();
  text.split = "train";
  auto pool = train::ReadExampleRecords(Path("bitext"), train::TextFormat::kBitext, text);
  ASSERT_TRUE(pool.ok()) << pool.status();
  train::ExemplarOptions exemplars;
  exemplars.drop_share = 0.0;
  ASSERT_TRUE(train::AddExemplars(*records, *pool, exemplars).ok());
  for (const train::ExampleRecord& r : *records) {
    EXPECT_NE(r.example.prompt.find("\nExample: "), std::string::npos) << r.example.origin;
  }
  auto tokenizer = lm::BpeTokenizer::Load(*model_);
  ASSERT_TRUE(tokenizer.ok());
  auto model = lm::Gpt2Model::Load(*model_);
  ASSERT_TRUE(model.ok());
  const int vocab = (*model)->config().vocab_size;
  double nll = 0;
  size_t count = 0;
  for (const train::ExampleRecord& r : *records) {
    std::vector<int32_t> prompt = (*tokenizer)->Encode(r.example.prompt);
    std::vector<int32_t> target = (*tokenizer)->Encode(r.example.reply);
    target.push_back(*(*tokenizer)->eos_id());
    std::unique_ptr<lm::KvCache> cache = (*model)->NewCache();
    std::vector<float> logits;
    lm::StepInput in{cache.get(), prompt};
    ASSERT_TRUE((*model)->Step(absl::MakeConstSpan(&in, 1), logits).ok());
    for (size_t t = 0; t < target.size(); ++t) {
      double max = logits[0], z = 0;
      for (int v = 0; v < vocab; ++v) max = std::max<double>(max, logits[v]);
      for (int v = 0; v < vocab; ++v) z += std::exp(logits[v] - max);
      nll -= logits[target[t]] - max - std::log(z);
      ++count;
      if (t + 1 == target.size()) break;
      in = lm::StepInput{cache.get(), absl::MakeConstSpan(&target[t], 1)};
      ASSERT_TRUE((*model)->Step(absl::MakeConstSpan(&in, 1), logits).ok());
    }
  }
  const double expected = std::exp(nll / static_cast<double>(count));
  EXPECT_TRUE(std::isfinite(m->at("perplexity")));
  EXPECT_GT(m->at("perplexity"), 1.0);
  EXPECT_NEAR(m->at("perplexity"), expected, 1e-3 * expected);
  EXPECT_EQ(m->at("perplexity_tokens"), static_cast<double>(count));
}

TEST_F(GenerationEvalTest, ReportHasTheMetricsAndTheFilterKeepsSlotValues) {
  const std::string report = Path("camrest_report.json");
  const std::string samples = Path("camrest_samples.jsonl");
  std::string err;
  ASSERT_EQ(Run({"--model", *model_, "--data", Path("camrest"), "--format", "camrest",
                 "--max-tokens", "24", "--report", report, "--samples", samples},
                &err),
            0)
      << err;
  EXPECT_THAT(err, HasSubstr("generation 3/3"));
  std::ifstream in(report);
  const nlohmann::json j = nlohmann::json::parse(in);
  for (const char* key :
       {"perplexity", "chrf", "chrf_unfiltered", "retrieval_chrf", "slot_fidelity",
        "slot_fidelity_unfiltered", "rejected_empty", "rejected_truncated", "rejected_unsafe",
        "rejected_pii_not_from_customer", "rejected_slot_contradiction",
        "rejected_unfilled_placeholder", "rejected_repetition", "reference_rejected_repetition",
        "degraded_rate", "examples",
        "seconds_total"}) {
    ASSERT_TRUE(j.contains(key)) << key;
    EXPECT_TRUE(j[key].is_number()) << key;
  }
  for (const auto& [key, value] : j.items()) EXPECT_TRUE(value.is_number()) << key;
  EXPECT_EQ(j["examples"], 3);
  EXPECT_DOUBLE_EQ(j["slot_fidelity"].get<double>(), 1.0);
  EXPECT_GE(j["chrf"].get<double>(), 0.0);
  EXPECT_LE(j["chrf"].get<double>(), 100.0);
  EXPECT_GE(j["degraded_rate"].get<double>(), j["rejected_unfilled_placeholder"].get<double>());

  // One line per example; a degraded example's reply sent is not its rejected candidate.
  std::ifstream lines(samples);
  std::string line;
  int count = 0, degraded = 0;
  while (std::getline(lines, line)) {
    const nlohmann::json sample = nlohmann::json::parse(line);
    ++count;
    for (const char* key : {"origin", "customer", "reference", "candidate", "sent", "retrieval"}) {
      EXPECT_TRUE(sample[key].is_string()) << key;
    }
    EXPECT_FALSE(sample["reference"].get<std::string>().empty());
    // Degraded: every candidate was rejected, the greedy one too. The greedy one sent:
    // the candidate as it is.
    if (sample["degraded"].get<bool>()) {
      ++degraded;
      EXPECT_FALSE(sample["rejected"].empty());
      EXPECT_EQ(sample["chosen"], -1);
    } else if (sample["chosen"] == 0) {
      EXPECT_TRUE(sample["rejected"].empty());
      EXPECT_EQ(sample["sent"], sample["candidate"]);
    }
  }
  EXPECT_EQ(count, 3);
  EXPECT_DOUBLE_EQ(degraded / 3.0, j["degraded_rate"].get<double>());
}

TEST_F(GenerationEvalTest, BadInputIsExitTwoNamingTheProblem) {
  std::string err;
  EXPECT_EQ(Run({"--model", *model_, "--data", Path("bitext"), "--format", "banking"}, &err), 2);
  EXPECT_THAT(err, HasSubstr("unknown format 'banking'"));

  EXPECT_EQ(Run({"--model", Path("no_model"), "--data", Path("bitext"), "--format", "bitext"}, &err),
            2);
  EXPECT_THAT(err, HasSubstr("no_model: no such model folder"));

  EXPECT_EQ(Run({"--model", *model_, "--data", Path("nothing_here"), "--format", "bitext"}, &err),
            2);
  EXPECT_THAT(err, HasSubstr("nothing_here"));

  EXPECT_EQ(Run({"--model", *model_, "--data", Path("broken"), "--format", "bitext"}, &err), 2);
  EXPECT_THAT(err, HasSubstr("dev.jsonl:2"));

  EXPECT_EQ(Run({"--model", *model_, "--data", Path("empty"), "--format", "bitext"}, &err), 2);
  EXPECT_THAT(err, HasSubstr("no examples"));

  // The retrieval data must not be the evaluated data.
  EXPECT_EQ(Run({"--model", *model_, "--data", Path("bitext"), "--format", "bitext",
                 "--retrieval-data", Path("bitext/dev.jsonl")},
                &err),
            2);
  EXPECT_THAT(err, HasSubstr("holds the evaluated example"));

  EXPECT_EQ(Run({"--model", *model_, "--format", "bitext"}, &err), 2);
  EXPECT_THAT(err, HasSubstr("--data"));
}

}  // namespace
}  // namespace helpline::eval
