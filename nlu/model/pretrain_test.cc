// Pretrains tiny encoders on inline text (seconds, one thread): the language-model loss
// falls, save/load round trip, the utterance model starts from the encoder (vocabulary
// union, copied rows, dims checked), load errors.
#include "nlu/model/pretrain.h"

#include <filesystem>
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace helpline::nlu::model {
namespace {

using ::testing::HasSubstr;

// Sentences with a strong word order: "<name> wants to <verb> the <thing> today".
std::vector<std::string> Corpus() {
  const std::vector<std::string> names = {"anna", "bob", "carla", "dmitri", "eve"};
  const std::vector<std::string> verbs = {"cancel", "check", "change", "pay"};
  const std::vector<std::string> things = {"card", "order", "transfer", "account", "invoice"};
  std::vector<std::string> out;
  for (const auto& n : names) {
    for (const auto& v : verbs) {
      for (const auto& t : things) out.push_back(n + " wants to " + v + " the " + t + " today");
    }
  }
  return out;
}

PretrainOptions TinyOptions() {
  PretrainOptions o;
  o.embedding_dim = 16;
  o.hidden_dim = 16;
  o.batch_size = 16;
  o.learning_rate = 1e-2;
  o.negatives = 8;
  o.min_count = 1;
  o.epochs = 8;
  o.dropout = 0.0;
  return o;
}

std::string TempDir(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("helpline_pretrain_test_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  return dir.string();
}

data::UtteranceExample Example(const std::string& text, const std::string& intent) {
  data::UtteranceExample e;
  e.text = text;
  e.intent = intent;
  return e;
}

class PretrainTest : public ::testing::Test {
 protected:
  void SetUp() override { SetTorchThreads(1); }
};

TEST_F(PretrainTest, LanguageModelLossFallsAndVocabularyIsCapped) {
  PretrainOptions o = TinyOptions();
  o.max_words = 10;  // of 5 + 4 + 5 + 5 fixed words: the most frequent ones
  PretrainReport report;
  auto encoder = PretrainedEncoder::Train(Corpus(), o, &report);
  ASSERT_TRUE(encoder.ok()) << encoder.status();
  EXPECT_EQ(report.sentences, 100u);
  EXPECT_EQ(report.tokens, 700u);
  EXPECT_EQ(report.words, 12u);  // <pad>, <unk> and 10 words
  // "wants", "to", "the", "today" occur in every sentence: always kept.
  for (const char* w : {"wants", "to", "the", "today"}) {
    EXPECT_GE((*encoder)->featurizer().FindWord(w), 2) << w;
  }
  EXPECT_GT(report.first_epoch_loss, 0.0);
  EXPECT_LT(report.final_epoch_loss, 0.6 * report.first_epoch_loss);
  const auto& tensors = (*encoder)->tensors();
  ASSERT_TRUE(tensors.count("word.weight"));
  EXPECT_EQ(tensors.at("word.weight").shape, (std::vector<int64_t>{12, 16}));
  EXPECT_TRUE(tensors.count("gru.weight_ih_l0_reverse"));
  EXPECT_FALSE(tensors.count("out_weight"));  // the language-model head is not kept
}

TEST_F(PretrainTest, SaveLoadRoundTrip) {
  auto encoder = PretrainedEncoder::Train(Corpus(), TinyOptions(), nullptr);
  ASSERT_TRUE(encoder.ok()) << encoder.status();
  (*encoder)->training()["note"] = "tiny";
  const std::string dir = TempDir("roundtrip");
  ASSERT_TRUE((*encoder)->Save(dir).ok());
  auto loaded = PretrainedEncoder::Load(dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ((*loaded)->embedding_dim(), 16);
  EXPECT_EQ((*loaded)->featurizer().words(), (*encoder)->featurizer().words());
  EXPECT_EQ((*loaded)->featurizer().char_ngrams(), (*encoder)->featurizer().char_ngrams());
  ASSERT_EQ((*loaded)->tensors().size(), (*encoder)->tensors().size());
  for (const auto& [name, t] : (*encoder)->tensors()) {
    EXPECT_EQ((*loaded)->tensors().at(name).values, t.values) << name;
  }
  EXPECT_EQ((*loaded)->training().value("note", ""), "tiny");
  std::filesystem::remove_all(dir);
}

TEST_F(PretrainTest, UtteranceModelStartsFromTheEncoder) {
  auto encoder = PretrainedEncoder::Train(Corpus(), TinyOptions(), nullptr);
  ASSERT_TRUE(encoder.ok()) << encoder.status();
  std::vector<data::UtteranceExample> train = {
      Example("cancel my card", "cancel"), Example("please cancel the order", "cancel"),
      Example("pay the invoice", "pay"), Example("i want to pay now", "pay")};
  TrainOptions o;
  o.epochs = 3;
  o.batch_size = 2;
  o.config.embedding_dim = 16;
  o.config.hidden_dim = 16;
  o.config.sentence_dim = 4;
  o.init_encoder = encoder->get();
  auto model = NluModel::Train(train, {}, "", {}, o, nullptr);
  ASSERT_TRUE(model.ok()) << model.status();
  const std::map<std::string, std::vector<float>> weights = (*model)->Weights();
  const Featurizer& source = (*encoder)->featurizer();
  // The model's vocabulary includes words it never saw in training ("dmitri"): their rows
  // get no gradient, so they are exactly the pretrained ones.
  const nlohmann::json vocab = nlohmann::json::parse([&] {
    const std::string dir = TempDir("init");
    EXPECT_TRUE((*model)->Save(dir).ok());
    std::ifstream in(dir + "/nlu_model.json");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::filesystem::remove_all(dir);
    return text;
  }())["vocabulary"];
  const std::vector<std::string> words = vocab["words"].get<std::vector<std::string>>();
  const auto at = std::find(words.begin(), words.end(), "dmitri");
  ASSERT_NE(at, words.end());
  const int64_t model_row = at - words.begin();
  const int64_t encoder_row = source.FindWord("dmitri");
  const auto& model_word = weights.at("m0.word.weight");
  const auto& encoder_word = (*encoder)->tensors().at("word.weight").values;
  for (int64_t d = 0; d < 16; ++d) {
    EXPECT_EQ(model_word[model_row * 16 + d], encoder_word[encoder_row * 16 + d]);
  }
  // Words of the training texts moved away from their pretrained start ("cancel").
  const int64_t trained_row =
      std::find(words.begin(), words.end(), "cancel") - words.begin();
  const int64_t trained_source = source.FindWord("cancel");
  float moved = 0;
  for (int64_t d = 0; d < 16; ++d) {
    moved += std::abs(model_word[trained_row * 16 + d] - encoder_word[trained_source * 16 + d]);
  }
  EXPECT_GT(moved, 1e-4f);
  // "i", "my", "now", "please", "want" are only in the training texts and are in the model.
  for (const char* w : {"please", "now"}) {
    EXPECT_NE(std::find(words.begin(), words.end(), w), words.end()) << w;
  }
}

TEST_F(PretrainTest, WithoutVocabularyExtensionOnlySharedRowsAreCopied) {
  auto encoder = PretrainedEncoder::Train(Corpus(), TinyOptions(), nullptr);
  ASSERT_TRUE(encoder.ok()) << encoder.status();
  TrainOptions o;
  o.epochs = 1;
  o.learning_rate = 0;  // the weights stay where they started
  o.config.embedding_dim = 16;
  o.config.hidden_dim = 16;
  o.init_encoder = encoder->get();
  o.extend_vocabulary = false;
  auto model = NluModel::Train({Example("cancel my card", "cancel"), Example("pay it", "pay")},
                               {}, "", {}, o, nullptr);
  ASSERT_TRUE(model.ok()) << model.status();
  const std::string dir = TempDir("noextend");
  ASSERT_TRUE((*model)->Save(dir).ok());
  std::ifstream in(dir + "/nlu_model.json");
  const nlohmann::json json = nlohmann::json::parse(in);
  std::filesystem::remove_all(dir);
  const auto words = json["vocabulary"]["words"].get<std::vector<std::string>>();
  EXPECT_EQ(words, (std::vector<std::string>{"<pad>", "<unk>", "cancel", "card", "it", "my",
                                             "pay"}));
  const auto weights = (*model)->Weights();
  const auto& model_word = weights.at("m0.word.weight");
  const auto& encoder_word = (*encoder)->tensors().at("word.weight").values;
  const int64_t source = (*encoder)->featurizer().FindWord("card");
  for (int64_t d = 0; d < 16; ++d) {
    EXPECT_EQ(model_word[3 * 16 + d], encoder_word[source * 16 + d]);
  }
  EXPECT_EQ(weights.at("m0.gru.weight_hh_l0"),
            (*encoder)->tensors().at("gru.weight_hh_l0").values);
}

TEST_F(PretrainTest, EncoderOfOtherDimsIsRefused) {
  auto encoder = PretrainedEncoder::Train(Corpus(), TinyOptions(), nullptr);
  ASSERT_TRUE(encoder.ok()) << encoder.status();
  TrainOptions o;
  o.epochs = 1;
  o.config.embedding_dim = 16;
  o.config.hidden_dim = 32;
  o.init_encoder = encoder->get();
  auto model = NluModel::Train({Example("cancel my card", "cancel")}, {}, "", {}, o, nullptr);
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(model.status().message(), HasSubstr("hidden dim 16"));
}

TEST_F(PretrainTest, LoadErrorsNameTheProblem) {
  EXPECT_EQ(PretrainedEncoder::Load(TempDir("missing")).status().code(),
            absl::StatusCode::kNotFound);
  const std::string dir = TempDir("bad");
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/encoder.json") << R"({"format": "something-else"})";
  auto bad = PretrainedEncoder::Load(dir);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("encoder.json: 'format'"));
  // A good encoder.json with the weights of another vocabulary size.
  PretrainOptions small = TinyOptions();
  small.epochs = 1;
  auto a = PretrainedEncoder::Train(Corpus(), small, nullptr);
  small.max_words = 5;
  auto b = PretrainedEncoder::Train(Corpus(), small, nullptr);
  ASSERT_TRUE(a.ok() && b.ok());
  const std::string dir_a = TempDir("a"), dir_b = TempDir("b");
  ASSERT_TRUE((*a)->Save(dir_a).ok());
  ASSERT_TRUE((*b)->Save(dir_b).ok());
  std::filesystem::copy_file(dir_b + "/encoder.safetensors", dir_a + "/encoder.safetensors",
                             std::filesystem::copy_options::overwrite_existing);
  auto mixed = PretrainedEncoder::Load(dir_a);
  EXPECT_EQ(mixed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(mixed.status().message(), HasSubstr("'word.weight' has the wrong shape"));
  EXPECT_EQ(PretrainedEncoder::Train({"", "  "}, TinyOptions(), nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
  for (const auto& d : {dir, dir_a, dir_b}) std::filesystem::remove_all(d);
}

}  // namespace
}  // namespace helpline::nlu::model
