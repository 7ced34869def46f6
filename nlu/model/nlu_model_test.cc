// Trains tiny models on inline data (seconds, one thread): fit, save/load round trip,
// determinism, label-mismatch refusal, load errors.
#include "nlu/model/nlu_model.h"

#include <ATen/record_function.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <random>
#include <set>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "nlu/model/epoch_batches.h"
#include "nlu/model/featurizer.h"
#include "nlu/model/torch_transformer.h"
#include "nlu/model/transfer_set.h"
#include "nlu/model/transformer_checkpoint.h"
#include "nlu/model/word_vectors.h"

namespace helpline::nlu::model {
namespace {

data::UtteranceExample Example(const std::string& text, const std::string& intent,
                               const std::string& slot = "", const std::string& value = "") {
  data::UtteranceExample e;
  e.text = text;
  e.intent = intent;
  if (!slot.empty()) {
    const size_t at = text.find(value);
    e.spans.push_back({slot, at, at + value.size(), value});
  }
  return e;
}

std::vector<data::UtteranceExample> TinyData() {
  std::vector<data::UtteranceExample> out;
  const std::vector<std::string> cities = {"paris", "london", "berlin", "rome", "madrid", "oslo"};
  const std::vector<std::string> songs = {"yellow", "hello", "imagine", "thriller", "halo"};
  for (const auto& c : cities) {
    out.push_back(Example("what is the weather in " + c, "weather", "city", c));
    out.push_back(Example("will it rain in " + c + " tomorrow", "weather", "city", c));
    out.push_back(Example("book a flight to " + c, "flight", "city", c));
    out.push_back(Example("i need a plane ticket to " + c, "flight", "city", c));
  }
  for (const auto& s : songs) {
    out.push_back(Example("play " + s + " please", "music", "song", s));
    out.push_back(Example("put on the song " + s, "music", "song", s));
  }
  return out;
}

// A tiny transformer checkpoint in the graph-model layout scripts/fetch-sentence-encoder
// unpacks (model.json + one shard + vocab.json): E = 8, H = 12 (4 heads of 2 and of 3),
// feed-forward 16, random weights. `break_shape` gives one weight a wrong shape.
void WriteTinyCheckpoint(const std::filesystem::path& dir, bool break_shape = false) {
  std::filesystem::create_directories(dir);
  const int64_t e = 8, h = 12, f = 16;
  const std::string enc = "module_apply_default/Encoder_en/KonaTransformer/Encode/";
  const std::string var = "module/Encoder_en/KonaTransformer/Encode/";
  const std::string concat = "/ConcatPartitions/concat";
  const std::string norm = "layer_prepostprocess/layer_norm/layer_norm_";
  nlohmann::json vocab = nlohmann::json::array();
  for (const char* reserved : {"<unk>", "<s>", "</s>", "r3", "r4", "r5"}) {
    vocab.push_back({reserved, 0});
  }
  const std::vector<std::string> words = {"what", "is",   "the",      "weather", "in", "will",
                                          "it",   "rain", "tomorrow", "book",    "a",  "flight",
                                          "to",   "play", "please",   "put",     "on", "song"};
  for (const std::string& w : words) vocab.push_back({"\xE2\x96\x81" + w, -2.0});
  for (char c = 'a'; c <= 'z'; ++c) vocab.push_back({std::string(1, c), -5.0});
  const int64_t pieces = static_cast<int64_t>(vocab.size()) + 2;
  std::vector<std::pair<std::string, std::vector<int64_t>>> weights = {
      {"module/Embeddings_en", {pieces, e}},
      {"module/Encoder_en/hidden_layers/tanh_layer_0/weights", {h, break_shape ? h + 1 : h}},
      {"module/Encoder_en/hidden_layers/tanh_layer_0/bias", {h}},
      {enc + "Layer_0/TransformerLayer/dense/kernel" + concat, {e, h}},
      {enc + "Layer_0/TransformerLayer/dense/bias" + concat, {h}},
  };
  for (int l = 0; l < 2; ++l) {
    const int64_t in = l == 0 ? e : h;
    const std::string layer = "Layer_" + std::to_string(l) + "/TransformerLayer/";
    weights.push_back({enc + layer + norm + "scale" + concat, {in}});
    weights.push_back({enc + layer + norm + "bias" + concat, {in}});
    weights.push_back({enc + layer + "FFN/" + norm + "scale" + concat, {h}});
    weights.push_back({enc + layer + "FFN/" + norm + "bias" + concat, {h}});
    weights.push_back({var + layer + "MultiheadAttention/qkv_transform_single/kernel/part_0",
                       {1, 1, in, 3 * in}});
    weights.push_back(
        {enc + layer + "MultiheadAttention/qkv_transform_single/bias" + concat, {3 * in}});
    weights.push_back(
        {var + layer + "MultiheadAttention/output_transform_single/kernel/part_0", {1, 1, in, h}});
    weights.push_back(
        {enc + layer + "MultiheadAttention/output_transform_single/bias" + concat, {h}});
    weights.push_back(
        {enc + "TransformerStack/" + layer + "FFN/conv1/Tensordot/Reshape_1", {h, f}});
    weights.push_back({enc + layer + "FFN/conv1/bias" + concat, {f}});
    weights.push_back(
        {enc + "TransformerStack/" + layer + "FFN/conv2/Tensordot/Reshape_1", {f, h}});
    weights.push_back({enc + layer + "FFN/conv2/bias" + concat, {h}});
  }
  nlohmann::json manifest = nlohmann::json::array();
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 0.3f);
  std::ofstream shard(dir / "group1-shard1of1", std::ios::binary);
  for (const auto& [name, shape] : weights) {
    manifest.push_back({{"name", name}, {"shape", shape}, {"dtype", "float32"}});
    size_t n = 1;
    for (int64_t d : shape) n *= static_cast<size_t>(d);
    const bool scale = name.find("layer_norm_scale") != std::string::npos;
    for (size_t i = 0; i < n; ++i) {
      const float v = scale ? 1.0f : normal(rng);
      shard.write(reinterpret_cast<const char*>(&v), sizeof(v));
    }
  }
  shard.close();
  nlohmann::json model = {
      {"modelTopology", nlohmann::json::object()},
      {"weightsManifest", {{{"paths", {"group1-shard1of1"}}, {"weights", manifest}}}}};
  std::ofstream(dir / "model.json") << model.dump();
  std::ofstream(dir / "vocab.json") << vocab.dump();
}

// How many TinyData utterances `model` gives their intent (no threshold).
size_t RightIntents(const NluModel& model) {
  size_t right = 0;
  for (const auto& e : TinyData()) right += model.Predict(e.text, false)->intent == e.intent;
  return right;
}

// Saves `model` into `dir` and loads it back (nullptr, with a test failure, on an error).
std::unique_ptr<NluModel> SaveAndLoad(const NluModel& model, const std::filesystem::path& dir) {
  const absl::Status saved = model.Save(dir.string());
  EXPECT_TRUE(saved.ok()) << saved;
  auto loaded = NluModel::Load(dir.string());
  EXPECT_TRUE(loaded.ok()) << loaded.status();
  return loaded.ok() ? *std::move(loaded) : nullptr;
}

TrainOptions TinyOptions(uint64_t seed) {
  TrainOptions o;
  o.seed = seed;
  o.epochs = 30;
  o.batch_size = 8;
  o.learning_rate = 1e-2;
  o.config.embedding_dim = 16;
  o.config.hidden_dim = 16;
  o.config.sentence_dim = 8;
  o.config.dropout = 0.1;
  o.config.word_dropout = 0.0;
  return o;
}

// WriteTinyCheckpoint into dir/checkpoint, read back (empty, with a test failure, on an error).
TransformerCheckpoint ReadTinyCheckpoint(const std::filesystem::path& dir) {
  WriteTinyCheckpoint(dir / "checkpoint");
  auto checkpoint = TransformerCheckpoint::Read((dir / "checkpoint").string());
  EXPECT_TRUE(checkpoint.ok()) << checkpoint.status();
  return checkpoint.ok() ? *std::move(checkpoint) : TransformerCheckpoint{};
}

// TinyOptions that fine-tune `checkpoint` (which must outlive training) at 1e-3.
TrainOptions TinyTransformerOptions(uint64_t seed, const TransformerCheckpoint& checkpoint) {
  TrainOptions o = TinyOptions(seed);
  o.transformer = &checkpoint;
  o.transformer_learning_rate = 1e-3;
  return o;
}

// Word vectors of three training words and "lisbon" (no training text has it), written to
// dir/vectors.txt and read back.
absl::StatusOr<WordVectors> WriteTinyVectors(const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  const std::string file = (dir / "vectors.txt").string();
  std::ofstream(file) << "weather 1 0 0 0\nflight 0 1 0 0\nplay 0 0 1 0\nlisbon 0.5 0.25 0 -1\n";
  return WordVectors::Read(file);
}

class NluModelTest : public ::testing::Test {
 protected:
  void SetUp() override { SetTorchThreads(1); }
  std::filesystem::path TempDir(const std::string& name) {
    auto dir = std::filesystem::temp_directory_path() /
               ("nlu_model_test_" + name + "_" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    dirs_.push_back(dir);
    return dir;
  }
  void TearDown() override {
    for (const auto& d : dirs_) std::filesystem::remove_all(d);
  }
  std::vector<std::filesystem::path> dirs_;
};

TEST_F(NluModelTest, LearnsIntentsAndSlotsOfTheTrainingData) {
  TrainReport report;
  auto model = NluModel::Train(TinyData(), {}, "", {}, TinyOptions(7), &report);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_THAT((*model)->info().intents, ::testing::ElementsAre("flight", "music", "weather"));
  EXPECT_THAT((*model)->info().slot_types, ::testing::ElementsAre("city", "song"));
  size_t right = 0, spans_right = 0;
  const auto data = TinyData();
  for (const auto& e : data) {
    auto p = (*model)->Predict(e.text, false);
    ASSERT_TRUE(p.ok()) << p.status();
    right += p->intent == e.intent;
    spans_right += p->slots.size() == 1 && p->slots[0].slot == e.spans[0].slot &&
                   p->slots[0].begin == e.spans[0].begin && p->slots[0].end == e.spans[0].end;
    EXPECT_GT(p->confidence, 0.0f);
    EXPECT_LE(p->confidence, 1.0f);
    EXPECT_EQ(p->encoding.size(), static_cast<size_t>((*model)->info().config.encoding_dim()));
  }
  EXPECT_GE(right, data.size() * 9 / 10);
  EXPECT_GE(spans_right, data.size() * 8 / 10);
  // An unseen city in a seen frame is still tagged (character n-grams, context).
  auto p = (*model)->Predict("what is the weather in lisbon", false);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->intent, "weather");
  EXPECT_GT(report.seconds, 0.0);
  EXPECT_TRUE(report.dev_metrics.contains("intent_accuracy"));
  EXPECT_GT((*model)->info().temperature, 0.0);
}

TEST_F(NluModelTest, EmptyUtteranceHasNoIntent) {
  auto model = NluModel::Train(TinyData(), {}, "", {}, TinyOptions(1), nullptr);
  ASSERT_TRUE(model.ok()) << model.status();
  auto p = (*model)->Predict("   ");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->intent, "");
  EXPECT_TRUE(p->encoding.empty());
}

TEST_F(NluModelTest, SaveLoadRoundTripGivesIdenticalPredictions) {
  TrainOptions options = TinyOptions(3);
  options.config.ensemble = 2;
  options.epochs = 10;
  auto model = NluModel::Train(TinyData(), {}, "", {}, options, nullptr);
  ASSERT_TRUE(model.ok()) << model.status();
  const auto dir = TempDir("roundtrip");
  ASSERT_TRUE((*model)->Save(dir.string()).ok());
  auto loaded = NluModel::Load(dir.string());
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ((*loaded)->Weights(), (*model)->Weights());
  EXPECT_EQ((*loaded)->info().temperature, (*model)->info().temperature);
  EXPECT_EQ((*loaded)->info().oos_threshold, (*model)->info().oos_threshold);
  for (const std::string text :
       {"book a flight to rome", "play halo please", "rain in oslo?", "something else entirely"}) {
    auto a = (*model)->Predict(text);
    auto b = (*loaded)->Predict(text);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(a->intent, b->intent) << text;
    EXPECT_EQ(a->confidence, b->confidence) << text;
    EXPECT_EQ(a->slots, b->slots) << text;
    EXPECT_EQ(a->encoding, b->encoding) << text;
  }
}

TEST_F(NluModelTest, SameSeedSameWeightsOtherSeedOtherWeights) {
  TrainOptions options = TinyOptions(11);
  options.epochs = 3;
  auto a = NluModel::Train(TinyData(), {}, "", {}, options, nullptr);
  auto b = NluModel::Train(TinyData(), {}, "", {}, options, nullptr);
  options.seed = 12;
  auto c = NluModel::Train(TinyData(), {}, "", {}, options, nullptr);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ((*a)->Weights(), (*b)->Weights());
  EXPECT_NE((*a)->Weights(), (*c)->Weights());
  EXPECT_EQ((*a)->info().temperature, (*b)->info().temperature);
}

TEST_F(NluModelTest, ParallelMembersTrainExactlyTheSequentialWeights) {
  TrainOptions options = TinyOptions(21);
  options.epochs = 3;
  options.config.ensemble = 3;
  auto one_at_a_time = NluModel::Train(TinyData(), {}, "", {}, options, nullptr);
  options.parallel_members = 2;
  auto side_by_side = NluModel::Train(TinyData(), {}, "", {}, options, nullptr);
  ASSERT_TRUE(one_at_a_time.ok() && side_by_side.ok());
  EXPECT_EQ((*one_at_a_time)->Weights(), (*side_by_side)->Weights());
  EXPECT_EQ((*one_at_a_time)->info().temperature, (*side_by_side)->info().temperature);
  options.parallel_members = 0;
  EXPECT_EQ(NluModel::Train(TinyData(), {}, "", {}, options, nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(NluModelTest, RDropTrainsBothCopiesAndWithoutDropoutThePlainModel) {
  // Without dropout the two copies of a batch are the same: the KL term is 0 and the
  // doubled batch gives the plain model's losses, so its weights (to rounding). This checks
  // that both copies get their own gold intents and tags.
  TrainOptions options = TinyOptions(31);
  options.epochs = 4;
  options.config.dropout = 0.0;
  auto plain = NluModel::Train(TinyData(), {}, "", {}, options, nullptr);
  options.rdrop = 1.0;
  auto doubled = NluModel::Train(TinyData(), {}, "", {}, options, nullptr);
  ASSERT_TRUE(plain.ok() && doubled.ok());
  const auto plain_weights = (*plain)->Weights(), doubled_weights = (*doubled)->Weights();
  size_t compared = 0;
  for (const auto& [name, values] : plain_weights) {
    const std::vector<float>& other = doubled_weights.at(name);
    ASSERT_EQ(values.size(), other.size()) << name;
    float scale = 0, largest = 0;
    for (size_t i = 0; i < values.size(); ++i) {
      scale = std::max(scale, std::abs(values[i]));
      largest = std::max(largest, std::abs(values[i] - other[i]));
    }
    EXPECT_LE(largest, 1e-3f * std::max(scale, 1.0f)) << name;
    ++compared;
  }
  EXPECT_GT(compared, 5u);

  // With dropout the copies differ: other weights than without R-Drop, the data learned,
  // and the same seed gives the same weights.
  options = TinyOptions(32);
  options.rdrop = 1.0;
  auto a = NluModel::Train(TinyData(), {}, "", {}, options, nullptr);
  auto b = NluModel::Train(TinyData(), {}, "", {}, options, nullptr);
  options.rdrop = 0.0;
  auto without = NluModel::Train(TinyData(), {}, "", {}, options, nullptr);
  ASSERT_TRUE(a.ok() && b.ok() && without.ok());
  EXPECT_EQ((*a)->Weights(), (*b)->Weights());
  EXPECT_NE((*a)->Weights().at("m0.intent_out.weight"),
            (*without)->Weights().at("m0.intent_out.weight"));
  EXPECT_GE(RightIntents(**a), TinyData().size() * 9 / 10);
  size_t spans_right = 0;
  for (const auto& e : TinyData()) {
    auto p = (*a)->Predict(e.text, false);
    ASSERT_TRUE(p.ok());
    spans_right += p->slots.size() == 1 && p->slots[0].slot == e.spans[0].slot &&
                   p->slots[0].begin == e.spans[0].begin && p->slots[0].end == e.spans[0].end;
  }
  EXPECT_GE(spans_right, TinyData().size() * 8 / 10);

  options.rdrop = -0.5;
  auto refused = NluModel::Train(TinyData(), {}, "", {}, options, nullptr);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.status().message()), ::testing::HasSubstr("R-Drop"));
}

TEST_F(NluModelTest, DistillationLeavesOneStudentThatLearnedTheData) {
  TrainOptions options = TinyOptions(8);
  options.epochs = 15;
  options.config.ensemble = 2;
  options.distill = true;
  auto model = NluModel::Train(TinyData(), {}, "", {}, options, nullptr);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->info().config.ensemble, 1);
  for (const auto& [name, values] : (*model)->Weights()) {
    EXPECT_EQ(name.rfind("m0.", 0), 0u) << name;
  }
  size_t right = 0;
  for (const auto& e : TinyData()) {
    auto p = (*model)->Predict(e.text, false);
    ASSERT_TRUE(p.ok());
    right += p->intent == e.intent;
  }
  EXPECT_GE(right, TinyData().size() * 9 / 10);
  // The student is not one of the teachers: without distillation member 0 differs.
  options.distill = false;
  auto teachers = NluModel::Train(TinyData(), {}, "", {}, options, nullptr);
  ASSERT_TRUE(teachers.ok());
  EXPECT_NE((*teachers)->Weights().at("m0.intent_out.weight"),
            (*model)->Weights().at("m0.intent_out.weight"));
  // And it saves and loads as a one-member model.
  const auto dir = TempDir("distilled");
  ASSERT_TRUE((*model)->Save(dir.string()).ok());
  auto loaded = NluModel::Load(dir.string());
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ((*loaded)->Weights(), (*model)->Weights());
}

TEST_F(NluModelTest, TransferCopiesJoinTheStudentsTrainingSetForIntentDataOnly) {
  std::vector<data::UtteranceExample> intents_only = TinyData();
  for (auto& e : intents_only) e.spans.clear();
  TrainOptions options = TinyOptions(8);
  options.epochs = 15;
  options.distill = true;
  options.transfer_copies = 2;
  TrainReport report;
  auto model = NluModel::Train(intents_only, {}, "", {}, options, &report);
  ASSERT_TRUE(model.ok()) << model.status();
  // Every utterance has >= 3 words, so most get their two copies.
  EXPECT_GT(report.transfer_copies, intents_only.size());
  EXPECT_LE(report.transfer_copies, 2 * intents_only.size());
  EXPECT_GE(RightIntents(**model), intents_only.size() * 9 / 10);
  // The copies change what the student learned.
  options.transfer_copies = 0;
  auto plain = NluModel::Train(intents_only, {}, "", {}, options, nullptr);
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_NE((*plain)->Weights().at("m0.intent_out.weight"),
            (*model)->Weights().at("m0.intent_out.weight"));
  // A copy would have no gold tags; and without teachers there is nothing to label copies.
  options.transfer_copies = 1;
  auto tagged = NluModel::Train(TinyData(), {}, "", {}, options, nullptr);
  EXPECT_EQ(tagged.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(tagged.status().message(), ::testing::HasSubstr("slot types"));
  options.distill = false;
  auto undistilled = NluModel::Train(intents_only, {}, "", {}, options, nullptr);
  EXPECT_EQ(undistilled.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(NluModelTest, WordVectorsJoinTheVocabularyFrozenAndUnseenWordsShareUnk) {
  // Vectors: three training words and "lisbon", which no training text has.
  const auto dir = TempDir("vectors");
  auto vectors = WriteTinyVectors(dir);
  ASSERT_TRUE(vectors.ok()) << vectors.status();
  TrainOptions options = TinyOptions(9);
  options.word_vectors = &*vectors;
  auto model = NluModel::Train(TinyData(), {}, "", {}, options, nullptr);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->info().config.word_vectors_dim, 4);
  const auto weights = (*model)->Weights();
  const std::vector<float>& table = weights.at("m0.vectors.weight");
  const std::vector<float>& word = weights.at("m0.word.weight");
  const size_t dim = 4, emb = static_cast<size_t>(options.config.embedding_dim);
  const size_t rows = table.size() / dim;
  // The vector rows are the file's, untouched by training; lisbon's trained row is <unk>'s.
  size_t lisbon = 0, weather = 0;
  for (size_t r = 0; r < rows; ++r) {
    const std::vector<float> row(table.begin() + r * dim, table.begin() + (r + 1) * dim);
    if (row == std::vector<float>{0.5f, 0.25f, 0.0f, -1.0f}) lisbon = r;
    if (row == std::vector<float>{1.0f, 0.0f, 0.0f, 0.0f}) weather = r;
  }
  ASSERT_GT(lisbon, 1u);
  ASSERT_GT(weather, 1u);
  EXPECT_TRUE(std::equal(word.begin() + lisbon * emb, word.begin() + (lisbon + 1) * emb,
                         word.begin() + 1 * emb));
  EXPECT_FALSE(std::equal(word.begin() + weather * emb, word.begin() + (weather + 1) * emb,
                          word.begin() + 1 * emb));
  EXPECT_GE(RightIntents(**model), TinyData().size() * 9 / 10);
  std::unique_ptr<NluModel> loaded = SaveAndLoad(**model, dir / "model");
  ASSERT_NE(loaded, nullptr);
  EXPECT_EQ(loaded->Weights(), weights);
  auto a = (*model)->Predict("what is the weather in lisbon");
  auto b = loaded->Predict("what is the weather in lisbon");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->confidence, b->confidence);
  EXPECT_EQ(a->slots, b->slots);
}

TEST_F(NluModelTest, TransformerIsFineTunedAndTravelsWithTheFolder) {
  const auto dir = TempDir("transformer");
  WriteTinyCheckpoint(dir / "checkpoint");
  auto checkpoint = TransformerCheckpoint::Read((dir / "checkpoint").string());
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  EXPECT_EQ(checkpoint->embedding_dim, 8);
  EXPECT_EQ(checkpoint->hidden_dim, 12);
  EXPECT_EQ(checkpoint->ffn_dim, 16);

  // Learning rate 0 for the transformer: its weights stay the checkpoint's (the graph's
  // [in, out] kernels now [out, in]).
  TrainOptions frozen = TinyOptions(4);
  frozen.epochs = 2;
  frozen.transformer = &*checkpoint;
  frozen.transformer_learning_rate = 0.0;
  auto kept = NluModel::Train(TinyData(), {}, "", {}, frozen, nullptr);
  ASSERT_TRUE(kept.ok()) << kept.status();
  const auto& original = checkpoint->tensors.at("l1.ffn1.weight").values;
  EXPECT_EQ(kept.value()->Weights().at("m0.transformer.l1.ffn1.weight"), original);

  TrainOptions options = TinyOptions(4);
  options.transformer = &*checkpoint;
  options.transformer_learning_rate = 1e-3;
  auto model = NluModel::Train(TinyData(), {}, "", {}, options, nullptr);
  ASSERT_TRUE(model.ok()) << model.status();
  const NluModelConfig& c = (*model)->info().config;
  EXPECT_TRUE(c.has_transformer());
  EXPECT_EQ(c.encoding_dim(), 4 * 16 + 8 + 12);
  const auto weights = (*model)->Weights();
  EXPECT_NE(weights.at("m0.transformer.l1.ffn1.weight"), original);  // fine-tuned
  size_t right = 0, slots = 0;
  for (const auto& e : TinyData()) {
    auto p = (*model)->Predict(e.text, false);
    ASSERT_TRUE(p.ok());
    right += p->intent == e.intent;
    slots += p->slots.size() == 1 && p->slots[0].value == e.spans[0].value;
    EXPECT_EQ(p->encoding.size(), static_cast<size_t>(c.encoding_dim()));
  }
  EXPECT_GE(right, TinyData().size() * 9 / 10);
  EXPECT_GE(slots, TinyData().size() * 8 / 10);

  // The folder holds the pieces and the fine-tuned weights: no checkpoint needed to load.
  ASSERT_TRUE((*model)->Save((dir / "model").string()).ok());
  std::filesystem::remove_all(dir / "checkpoint");
  auto loaded = NluModel::Load((dir / "model").string());
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ((*loaded)->Weights(), weights);
  for (const std::string text : {"will it rain in lisbon", "play yellow please"}) {
    auto a = (*model)->Predict(text);
    auto b = (*loaded)->Predict(text);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(a->confidence, b->confidence) << text;
    EXPECT_EQ(a->slots, b->slots) << text;
  }

  // A folder whose config has a transformer but no pieces is refused, naming the field.
  const std::string json_path = (dir / "model" / "nlu_model.json").string();
  std::ifstream in(json_path);
  nlohmann::json json = nlohmann::json::parse(in);
  in.close();
  json.erase("pieces");
  std::ofstream(json_path) << json.dump();
  auto broken = NluModel::Load((dir / "model").string());
  ASSERT_FALSE(broken.ok());
  EXPECT_THAT(std::string(broken.status().message()), ::testing::HasSubstr("'pieces' missing"));
}

TEST_F(NluModelTest, StudentWithoutTransformerLearnsFromTransformerTeachers) {
  const auto dir = TempDir("transformer_student");
  const TransformerCheckpoint checkpoint = ReadTinyCheckpoint(dir);
  ASSERT_FALSE(HasFailure());
  TrainOptions options = TinyTransformerOptions(6, checkpoint);
  options.distill = true;
  options.distill_without_transformer = true;
  options.student_epochs = 20;
  options.length_buckets = true;
  auto model = NluModel::Train(TinyData(), {}, "", {}, options, nullptr);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_FALSE((*model)->info().config.has_transformer());
  EXPECT_EQ((*model)->info().config.ensemble, 1);
  for (const auto& [name, values] : (*model)->Weights()) {
    EXPECT_EQ(name.find("transformer"), std::string::npos) << name;
  }
  EXPECT_GE(RightIntents(**model), TinyData().size() * 9 / 10);
  std::unique_ptr<NluModel> loaded = SaveAndLoad(**model, dir / "model");
  ASSERT_NE(loaded, nullptr);
  EXPECT_EQ(loaded->Weights(), (*model)->Weights());
}

TEST_F(NluModelTest, Bf16InferenceStaysCloseToFloat32AndTravelsWithTheFolder) {
  const auto dir = TempDir("transformer_bf16");
  const TransformerCheckpoint checkpoint = ReadTinyCheckpoint(dir);
  ASSERT_FALSE(HasFailure());
  TrainOptions options = TinyTransformerOptions(4, checkpoint);
  options.transformer_bf16_inference = true;
  auto model = NluModel::Train(TinyData(), {}, "", {}, options, nullptr);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_TRUE((*model)->info().config.transformer_bf16_inference);
  EXPECT_GE(RightIntents(**model), TinyData().size() * 9 / 10);

  // The folder keeps float32 weights and the setting; the loaded model answers the same.
  std::unique_ptr<NluModel> loaded = SaveAndLoad(**model, dir / "model");
  ASSERT_NE(loaded, nullptr);
  EXPECT_TRUE(loaded->info().config.transformer_bf16_inference);
  EXPECT_EQ(loaded->Weights(), (*model)->Weights());
  for (const auto& e : TinyData()) {
    EXPECT_EQ(loaded->Predict(e.text)->confidence, (*model)->Predict(e.text)->confidence);
  }

  // The same weights in float32: the same intents, the utterance encodings (the
  // transformer's sentence vector among them) a little apart, so bfloat16 did run.
  const std::string json_path = (dir / "model" / "nlu_model.json").string();
  std::ifstream in(json_path);
  nlohmann::json json = nlohmann::json::parse(in);
  in.close();
  json["config"]["transformer_bf16_inference"] = false;
  std::ofstream(json_path) << json.dump();
  auto f32 = NluModel::Load((dir / "model").string());
  ASSERT_TRUE(f32.ok()) << f32.status();
  EXPECT_TRUE((*model)->PredictsOffLibtorch());
  EXPECT_FALSE((*f32)->PredictsOffLibtorch());
  float largest = 0, largest_diff = 0;
  for (const auto& e : TinyData()) {
    auto a = (*model)->Predict(e.text, false);
    auto b = (*f32)->Predict(e.text, false);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(a->intent, b->intent) << e.text;
    ASSERT_EQ(a->encoding.size(), b->encoding.size());
    for (size_t i = 0; i < a->encoding.size(); ++i) {
      largest = std::max(largest, std::abs(b->encoding[i]));
      largest_diff = std::max(largest_diff, std::abs(a->encoding[i] - b->encoding[i]));
    }
  }
  EXPECT_GT(largest_diff, 0.0f);
  EXPECT_LT(largest_diff, 0.05f * largest);
}

// Counts the libtorch operators this thread runs while it lives.
class TorchOperatorCounter {
 public:
  TorchOperatorCounter() {
    count() = 0;
    handle_ = at::addThreadLocalCallback(
        at::RecordFunctionCallback([](const at::RecordFunction&)
                                       -> std::unique_ptr<at::ObserverContext> {
          ++count();
          return nullptr;
        }).scopes({at::RecordScope::FUNCTION}));
  }
  ~TorchOperatorCounter() { at::removeCallback(handle_); }
  static int64_t& count() {
    thread_local int64_t n = 0;
    return n;
  }

 private:
  at::CallbackHandle handle_;
};

TEST_F(NluModelTest, OneUtteranceRunsOffLibtorchWithTheBatchedNetworksAnswers) {
  const auto dir = TempDir("off_libtorch");
  auto vectors = WriteTinyVectors(dir);
  ASSERT_TRUE(vectors.ok()) << vectors.status();
  const TransformerCheckpoint checkpoint = ReadTinyCheckpoint(dir);
  ASSERT_FALSE(HasFailure());
  // A softmax tagger; two CRF members with word vectors; a bfloat16 transformer.
  TrainOptions plain = TinyOptions(3);
  TrainOptions crf = TinyOptions(5);
  crf.config.crf = true;
  crf.config.ensemble = 2;
  crf.word_vectors = &*vectors;
  TrainOptions transformer = TinyTransformerOptions(6, checkpoint);
  transformer.transformer_bf16_inference = true;
  // The training texts, unseen words, one word, and a text longer than any seen.
  std::vector<std::string> texts;
  for (const auto& e : TinyData()) texts.push_back(e.text);
  for (const std::string t :
       {"what is the weather in lisbon", "paris", "zzz qqq!", "",
        "please book me a flight to rome and then play thriller and tell me whether it will "
        "rain in oslo tomorrow or the day after"}) {
    texts.push_back(t);
  }
  for (const TrainOptions* options : {&plain, &crf, &transformer}) {
    SCOPED_TRACE(options->config.crf               ? "crf"
                 : options->transformer != nullptr ? "transformer"
                                                   : "plain");
    auto model = NluModel::Train(TinyData(), {}, "", {}, *options, nullptr);
    ASSERT_TRUE(model.ok()) << model.status();
    EXPECT_TRUE((*model)->PredictsOffLibtorch());
    int64_t batch_operators = 0;
    absl::StatusOr<std::vector<NluPrediction>> batch;
    {
      TorchOperatorCounter counter;
      batch = (*model)->PredictBatch(texts, false);
      batch_operators = TorchOperatorCounter::count();
    }
    ASSERT_TRUE(batch.ok()) << batch.status();
    EXPECT_GT(batch_operators, 20);  // the counter sees libtorch's operators
    // The transformer's products: libtorch rounds their outputs to bfloat16, Predict does not.
    const float tolerance = options->transformer != nullptr ? 0.05f : 1e-5f;
    for (size_t i = 0; i < texts.size(); ++i) {
      SCOPED_TRACE(texts[i]);
      absl::StatusOr<NluPrediction> one;
      {
        TorchOperatorCounter counter;
        one = (*model)->Predict(texts[i], false);
        EXPECT_EQ(TorchOperatorCounter::count(), 0);
      }
      ASSERT_TRUE(one.ok()) << one.status();
      const NluPrediction& b = (*batch)[i];
      // (bfloat16 rounding may swap two intents that nearly tie)
      if (options->transformer == nullptr || b.confidence > 0.6) {
        EXPECT_EQ(one->intent, b.intent);
      }
      EXPECT_NEAR(one->confidence, b.confidence, tolerance);
      if (options->transformer == nullptr) {
        EXPECT_EQ(one->slots, b.slots);
      }
      ASSERT_EQ(one->encoding.size(), b.encoding.size());
      float largest = 1, largest_diff = 0;
      for (size_t j = 0; j < b.encoding.size(); ++j) {
        largest = std::max(largest, std::abs(b.encoding[j]));
        largest_diff = std::max(largest_diff, std::abs(one->encoding[j] - b.encoding[j]));
      }
      EXPECT_LE(largest_diff, tolerance * largest);
    }
  }
}

TEST_F(NluModelTest, TransformerCheckpointErrorsNameTheFileAndTheWeight) {
  const auto dir = TempDir("checkpoint_errors");
  auto missing = TransformerCheckpoint::Read((dir / "absent").string());
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);

  WriteTinyCheckpoint(dir / "bad_shape", /*break_shape=*/true);
  auto bad = TransformerCheckpoint::Read((dir / "bad_shape").string());
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()),
              ::testing::AllOf(::testing::HasSubstr("model.json"),
                               ::testing::HasSubstr("'pool.weight' has the wrong shape")));

  WriteTinyCheckpoint(dir / "short_shard");
  std::filesystem::resize_file(dir / "short_shard" / "group1-shard1of1", 100);
  auto short_shard = TransformerCheckpoint::Read((dir / "short_shard").string());
  ASSERT_FALSE(short_shard.ok());
  EXPECT_THAT(std::string(short_shard.status().message()),
              ::testing::HasSubstr("the shards hold 100 bytes"));
}

TEST_F(NluModelTest, TakeFineTunedTransformerStartsFromAnotherModelsTransformer) {
  const auto dir = TempDir("transformer_from");
  const TransformerCheckpoint checkpoint = ReadTinyCheckpoint(dir);
  ASSERT_FALSE(HasFailure());
  auto first =
      NluModel::Train(TinyData(), {}, "", {}, TinyTransformerOptions(4, checkpoint), nullptr);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE((*first)->Save((dir / "first").string()).ok());
  TransformerCheckpoint taken = checkpoint;
  const absl::Status took = TakeFineTunedTransformer((dir / "first").string(), taken);
  ASSERT_TRUE(took.ok()) << took;
  const auto weights = (*first)->Weights();
  for (const auto& [name, tensor] : taken.tensors) {
    EXPECT_EQ(tensor.values, weights.at("m0.transformer." + name)) << name;
    EXPECT_NE(tensor.values, checkpoint.tensors.at(name).values) << name;  // it was fine-tuned
  }
  // A model trained from it learns the data as well.
  auto second = NluModel::Train(TinyData(), {}, "", {}, TinyTransformerOptions(5, taken), nullptr);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_GE(RightIntents(**second), TinyData().size() * 9 / 10);

  // Refused, and the checkpoint left as it was: a missing folder, a model without a
  // transformer, a transformer over other pieces, a weight of another shape.
  const TransformerCheckpoint before = taken;
  auto unchanged = [&] {
    for (const auto& [name, tensor] : before.tensors) {
      EXPECT_EQ(taken.tensors.at(name).values, tensor.values) << name;
    }
  };
  absl::Status missing = TakeFineTunedTransformer((dir / "absent").string(), taken);
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  auto plain = NluModel::Train(TinyData(), {}, "", {}, TinyOptions(3), nullptr);
  ASSERT_TRUE(plain.ok()) << plain.status();
  ASSERT_TRUE((*plain)->Save((dir / "plain").string()).ok());
  absl::Status no_transformer = TakeFineTunedTransformer((dir / "plain").string(), taken);
  EXPECT_EQ(no_transformer.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(no_transformer.message()), ::testing::HasSubstr("has no transformer"));
  unchanged();

  std::filesystem::copy(dir / "first", dir / "other_pieces");
  const std::string json_path = (dir / "other_pieces" / "nlu_model.json").string();
  std::ifstream in(json_path);
  nlohmann::json json = nlohmann::json::parse(in);
  in.close();
  json["pieces"][3][0] = "\u2581elsewhere";
  std::ofstream(json_path) << json.dump();
  absl::Status other = TakeFineTunedTransformer((dir / "other_pieces").string(), taken);
  EXPECT_EQ(other.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(other.message()), ::testing::HasSubstr("other pieces"));
  unchanged();

  TransformerCheckpoint wider = taken;
  wider.tensors.at("pool.weight").shape[0] += 1;
  absl::Status shape = TakeFineTunedTransformer((dir / "first").string(), wider);
  EXPECT_EQ(shape.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(shape.message()),
              ::testing::HasSubstr("'m0.transformer.pool.weight' has another shape"));
  for (const auto& [name, tensor] : before.tensors) {
    EXPECT_EQ(wider.tensors.at(name).values, tensor.values) << name;
  }
}

TEST_F(NluModelTest, CrfTaggerLearnsSpansAndRoundTrips) {
  // Two-word values, so the tagger must continue a span (B-x I-x) and stop it.
  std::vector<data::UtteranceExample> data;
  const std::vector<std::string> cities = {"new york",    "le mans",   "san diego",
                                           "los angeles", "las vegas", "el paso"};
  for (const auto& c : cities) {
    data.push_back(Example("what is the weather in " + c + " today", "weather", "city", c));
    data.push_back(Example("book a flight to " + c + " please", "flight", "city", c));
    data.push_back(Example("i need a ticket to " + c, "flight", "city", c));
  }
  TrainOptions options = TinyOptions(4);
  options.config.crf = true;
  options.config.ensemble = 2;
  auto model = NluModel::Train(data, {}, "", {}, options, nullptr);
  ASSERT_TRUE(model.ok()) << model.status();
  const auto weights = (*model)->Weights();
  ASSERT_TRUE(weights.contains("m1.crf_transitions"));
  EXPECT_EQ(weights.at("m1.crf_transitions").size(), 9u);  // O, B-city, I-city
  size_t spans_right = 0;
  for (const auto& e : data) {
    auto p = (*model)->Predict(e.text, false);
    ASSERT_TRUE(p.ok()) << p.status();
    spans_right += p->slots.size() == 1 && p->slots[0].begin == e.spans[0].begin &&
                   p->slots[0].end == e.spans[0].end;
  }
  EXPECT_GE(spans_right, data.size() * 8 / 10);
  // The learned bigrams favour continuing a city (B -> I) over leaving it for O.
  const auto& t = weights.at("m0.crf_transitions");
  EXPECT_GT(t[1 * 3 + 2], t[1 * 3 + 0]);

  const auto dir = TempDir("crf");
  ASSERT_TRUE((*model)->Save(dir.string()).ok());
  auto loaded = NluModel::Load(dir.string());
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_TRUE((*loaded)->info().config.crf);
  EXPECT_EQ((*loaded)->Weights(), weights);
  for (const std::string text : {"book a flight to san diego please", "weather in new york",
                                 "a ticket to el paso", "nothing here"}) {
    auto a = (*model)->Predict(text);
    auto b = (*loaded)->Predict(text);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(a->slots, b->slots) << text;
    EXPECT_EQ(a->confidence, b->confidence) << text;
  }
}

TEST_F(NluModelTest, LoadRefusesAFolderOfAnotherDomainAndBrokenFolders) {
  TrainOptions options = TinyOptions(5);
  options.epochs = 1;
  auto model = NluModel::Train(TinyData(), {}, "", {}, options, nullptr);
  ASSERT_TRUE(model.ok());
  const auto dir = TempDir("mismatch");
  ASSERT_TRUE((*model)->Save(dir.string()).ok());
  auto loaded = NluModel::Load(dir.string());
  ASSERT_TRUE(loaded.ok());

  domain::Domain d;
  d.origin = "travel.yaml";
  for (const char* name : {"flight", "music", "hotel"}) d.intents.emplace_back().name = name;
  for (const char* name : {"city", "song"}) d.slots.emplace_back().name = name;
  const absl::Status s = CheckModelMatchesDomain((*loaded)->info(), d, dir.string());
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.message()),
              ::testing::HasSubstr("intents missing in the model: [hotel]"));
  EXPECT_THAT(std::string(s.message()),
              ::testing::HasSubstr("intents only in the model: [weather]"));
  d.intents[2].name = "weather";
  EXPECT_TRUE(CheckModelMatchesDomain((*loaded)->info(), d, dir.string()).ok());

  EXPECT_EQ(NluModel::Load((dir / "nowhere").string()).status().code(),
            absl::StatusCode::kNotFound);
  // Weights of another architecture: named as not fitting.
  TrainOptions bigger = options;
  bigger.config.hidden_dim = 24;
  auto other = NluModel::Train(TinyData(), {}, "", {}, bigger, nullptr);
  ASSERT_TRUE(other.ok());
  const auto other_dir = TempDir("other");
  ASSERT_TRUE((*other)->Save(other_dir.string()).ok());
  std::filesystem::copy_file(other_dir / kWeightsName, dir / kWeightsName,
                             std::filesystem::copy_options::overwrite_existing);
  const absl::Status bad = NluModel::Load(dir.string()).status();
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.message()), ::testing::HasSubstr("wrong shape"));
}

// Sum over batches of (batch size x longest length): the work when padding to the longest.
size_t PaddedWork(const EpochBatches& batches, const std::vector<size_t>& lengths) {
  size_t work = 0;
  for (size_t b = 0; b < batches.count(); ++b) {
    size_t longest = 0;
    for (size_t i = batches.begin(b); i < batches.end(b); ++i) {
      longest = std::max(longest, lengths[batches[i]]);
    }
    work += longest * (batches.end(b) - batches.begin(b));
  }
  return work;
}

TEST(EpochBatchesTest, LengthBucketsVisitEveryExampleOnceWithLessPadding) {
  // 1,000 examples (not a multiple of the batch size) of lengths 1..60.
  const size_t n = 1000, batch_size = 32;
  std::vector<size_t> lengths(n);
  std::mt19937_64 draw(5);
  for (size_t& l : lengths) l = 1 + draw() % 60;
  const size_t real_work = std::accumulate(lengths.begin(), lengths.end(), size_t{0});

  EpochBatches plain(n, batch_size), bucketed(n, batch_size), again(n, batch_size);
  std::mt19937_64 rng_plain(1), rng_bucketed(1), rng_again(1);
  plain.Shuffle(rng_plain);
  std::vector<size_t> previous;
  for (int epoch = 0; epoch < 3; ++epoch) {
    bucketed.ShuffleInLengthBuckets(rng_bucketed, lengths);
    again.ShuffleInLengthBuckets(rng_again, lengths);
    std::vector<size_t> seen;
    for (size_t i = 0; i < n; ++i) {
      seen.push_back(bucketed[i]);
      EXPECT_EQ(bucketed[i], again[i]);  // the same seed, the same order
    }
    EXPECT_NE(seen, previous);  // each epoch its own order
    previous = seen;
    std::sort(seen.begin(), seen.end());
    for (size_t i = 0; i < n; ++i) ASSERT_EQ(seen[i], i);
    EXPECT_EQ(bucketed.count(), plain.count());
    EXPECT_EQ(bucketed.end(bucketed.count() - 1) - bucketed.begin(bucketed.count() - 1),
              n % batch_size);
    // Random batches pad to nearly 60 everywhere (about twice the real work); buckets of
    // similar lengths waste under a tenth.
    EXPECT_GT(PaddedWork(plain, lengths), real_work * 17 / 10);
    EXPECT_LT(PaddedWork(bucketed, lengths), real_work * 11 / 10);
  }
}

// PieceTransformerInference (bfloat16 products, no libtorch) against libtorch's float32
// PieceTransformer with the same random weights, at the real network's head sizes (64 and
// 128) and at odd ones (the attention's plain C++ path).
TEST(PieceTransformerInferenceTest, MatchesLibtorchsFloat32NetworkToBfloat16Rounding) {
  torch::manual_seed(3);
  for (auto [e, h, f] : {std::tuple{256, 512, 1536}, std::tuple{20, 36, 44}}) {
    PieceTransformer net(100, e, h, f);
    {
      torch::NoGradGuard no_grad;
      for (auto& p : net->named_parameters()) {
        const bool gain = p.key().find("norm") != std::string::npos &&
                          p.key().find("weight") != std::string::npos;
        // Weights a little larger than the checkpoint's so that the attention is not uniform.
        p.value().copy_(gain ? 1.0 + 0.1 * torch::randn(p.value().sizes())
                             : torch::randn(p.value().sizes()) * (1.5 / std::sqrt(e)));
      }
    }
    net->eval();
    PieceTransformerInference fast;
    EXPECT_FALSE(fast.ready());
    CopyTransformerWeights(net, fast);
    ASSERT_TRUE(fast.ready());
    EXPECT_EQ(fast.hidden(), h);
    for (int64_t p : {1, 7, 25}) {
      torch::Tensor ids = torch::randint(100, {1, p}, torch::kInt64);
      torch::Tensor mask = torch::ones({1, p}, torch::kBool);
      torch::NoGradGuard no_grad;
      torch::Tensor want = net->States(ids, mask, [](const torch::Tensor& t) { return t; });
      torch::Tensor want_sentence = net->Pool(want, mask);
      auto [got, got_sentence] = RunTransformer(fast, ids);
      ASSERT_EQ(got.sizes(), want.sizes());
      // libtorch's own bfloat16 path (--transformer-bf16-inference) with the same weights.
      net->UseBf16ForInference();
      torch::Tensor bf16 = net->States(ids, mask, [](const torch::Tensor& t) { return t; });
      torch::Tensor bf16_sentence = net->Pool(bf16, mask);
      net->l0->bf16_.clear();
      net->l1->bf16_.clear();
      auto largest = [](const torch::Tensor& t) { return t.abs().max().item<double>(); };
      // bfloat16 keeps 8 bits of mantissa: every piece state within 1% of the states' scale
      // and pointing the same way, and no further from float32 than libtorch's bfloat16
      // (which also rounds the products' outputs and runs the attention in bfloat16).
      const double scale = largest(want);
      const std::string where = std::to_string(e) + " wide, " + std::to_string(p) + " pieces";
      EXPECT_GT(largest(got - want), 0.0) << where;  // bfloat16 did run
      EXPECT_LT(largest(got - want), 0.01 * scale) << where;
      EXPECT_GT(torch::cosine_similarity(got, want, 2).min().item<double>(), 0.9999) << where;
      EXPECT_LT(largest(got - want), 1.5 * largest(bf16 - want) + 0.01) << where;
      EXPECT_LT(largest(got_sentence - want_sentence),
                1.5 * largest(bf16_sentence - want_sentence) + 0.01)
          << where;
    }
  }
}

TEST(TransferSetTest, CopiesAreAlteredInOrderSubsequencesOfTheirSource) {
  const std::vector<std::string> texts = {"i lost my card yesterday evening", "hello",
                                          "Where is my refund, please?", "card"};
  const std::vector<TransferCopy> copies = MakeTransferCopies(texts, 3, 0.15, 5);
  ASSERT_FALSE(copies.empty());
  EXPECT_EQ(MakeTransferCopies(texts, 3, 0.15, 5).size(), copies.size());
  auto words = [](const std::string& text) {
    std::vector<std::string> out;
    for (const Token& t : Tokenize(text)) out.push_back(text.substr(t.begin, t.end - t.begin));
    return out;
  };
  std::map<size_t, std::vector<std::string>> by_source;
  for (const TransferCopy& c : copies) {
    ASSERT_LT(c.source, texts.size());
    // One-word texts have no copy.
    EXPECT_TRUE(c.source == 0 || c.source == 2) << c.text;
    // The copy's words appear in its source in the same order, and it is not the source.
    const std::vector<std::string> source_words = words(texts[c.source]);
    const std::vector<std::string> copy_words = words(c.text);
    ASSERT_FALSE(copy_words.empty());
    EXPECT_LT(copy_words.size(), source_words.size()) << c.text;
    size_t at = 0;
    for (const std::string& w : copy_words) {
      while (at < source_words.size() && source_words[at] != w) ++at;
      ASSERT_LT(at, source_words.size()) << "'" << w << "' out of order in " << c.text;
      ++at;
    }
    by_source[c.source].push_back(c.text);
  }
  for (const auto& [source, made] : by_source) {
    EXPECT_LE(made.size(), 3u);
    EXPECT_EQ(std::set<std::string>(made.begin(), made.end()).size(), made.size());
  }
  // Same seed, same copies; another seed, other copies.
  std::vector<std::string> a, b;
  for (const auto& c : MakeTransferCopies(texts, 3, 0.15, 5)) a.push_back(c.text);
  for (const auto& c : MakeTransferCopies(texts, 3, 0.15, 6)) b.push_back(c.text);
  std::vector<std::string> first;
  for (const auto& c : copies) first.push_back(c.text);
  EXPECT_EQ(a, first);
  EXPECT_NE(a, b);
}

}  // namespace
}  // namespace helpline::nlu::model
