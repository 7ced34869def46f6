#include "nlu/model/featurizer.h"

#include <cmath>
#include <filesystem>
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "nlu/model/model_info.h"
#include "nlu/model/word_vectors.h"

namespace helpline::nlu::model {
namespace {

using ::testing::ElementsAre;

std::vector<std::string> Norms(const std::vector<Token>& tokens) {
  std::vector<std::string> out;
  for (const Token& t : tokens) out.push_back(t.norm);
  return out;
}

TEST(TokenizeTest, WordsPunctuationDigitsAndCjk) {
  const std::string text = "Where's order AB123, 12 pm?  你好";
  const std::vector<Token> tokens = Tokenize(text);
  EXPECT_THAT(Norms(tokens),
              ElementsAre("where", "'", "s", "order", "ab000", ",", "00", "pm", "?", "你", "好"));
  EXPECT_EQ(tokens[0].shape, 1);  // Capitalized
  EXPECT_EQ(tokens[4].shape, 4);  // letters + digits
  EXPECT_EQ(tokens[6].shape, 3);  // digits
  EXPECT_EQ(tokens[5].shape, 5);  // punctuation
  EXPECT_EQ(tokens[9].shape, 6);  // CJK
  for (const Token& t : tokens) {
    EXPECT_LT(t.begin, t.end);
    EXPECT_LE(t.end, text.size());
  }
  EXPECT_EQ(text.substr(tokens[4].begin, tokens[4].end - tokens[4].begin), "AB123");
  EXPECT_EQ(text.substr(tokens[10].begin, tokens[10].end - tokens[10].begin), "好");
  EXPECT_TRUE(Tokenize("   ").empty());
  EXPECT_TRUE(Tokenize("").empty());
}

TEST(CharNgramsTest, PaddedNgramsOfThreeToFive) {
  EXPECT_THAT(CharNgrams("ab"), ElementsAre("<ab>", "<ab", "ab>"));
  const std::vector<std::string> grams = CharNgrams("card");
  EXPECT_THAT(grams, ::testing::Contains("<ca"));
  EXPECT_THAT(grams, ::testing::Contains("ard>"));
  EXPECT_THAT(grams, ::testing::Contains("<card"));
  EXPECT_THAT(grams, ::testing::Not(::testing::Contains("<card>")));
}

TEST(FeaturizerTest, VocabularyUnknownWordsAndJsonRoundTrip) {
  const Featurizer f = Featurizer::Build({"top up my card", "my card is lost"});
  const Features known = f.Featurize("my card");
  ASSERT_EQ(known.word_ids.size(), 2u);
  EXPECT_GT(known.word_ids[0], Featurizer::kUnknown);
  EXPECT_FALSE(known.char_ngrams[1].empty());
  // my, card, "<s> my", "my card", "card </s>": all seen in training.
  EXPECT_EQ(known.sentence_ngrams.size(), 5u);
  const Features unknown = f.Featurize("cards zzz");
  EXPECT_EQ(unknown.word_ids[0], Featurizer::kUnknown);
  EXPECT_FALSE(unknown.char_ngrams[0].empty());  // shares n-grams with "card"
  EXPECT_TRUE(unknown.char_ngrams[1].empty());

  absl::StatusOr<Featurizer> back = Featurizer::FromJson(f.ToJson());
  ASSERT_TRUE(back.ok()) << back.status();
  const Features again = back->Featurize("my card");
  EXPECT_EQ(again.word_ids, known.word_ids);
  EXPECT_EQ(again.char_ngrams, known.char_ngrams);
  EXPECT_EQ(again.sentence_ngrams, known.sentence_ngrams);
  EXPECT_FALSE(Featurizer::FromJson(nlohmann::json{{"words", 3}}).ok());
}

TEST(BioTest, TagsFromSpansAndBack) {
  const std::string text = "book a table at the red lion tonight";
  const std::vector<Token> tokens = Tokenize(text);
  const std::vector<std::string> types = {"restaurant", "time"};
  const std::vector<data::SlotSpan> gold = {{"restaurant", 16, 28, "the red lion"},
                                            {"time", 29, 36, "tonight"}};
  const std::vector<int> tags = TagsFromSpans(tokens, gold, types);
  EXPECT_THAT(tags, ElementsAre(0, 0, 0, 0, 1, 2, 2, 3));
  EXPECT_THAT(TagNames(types),
              ElementsAre("O", "B-restaurant", "I-restaurant", "B-time", "I-time"));
  EXPECT_EQ(SpansFromTags(text, tokens, tags, types), gold);
  // A span starting inside a token is not taggable: all O.
  EXPECT_THAT(TagsFromSpans(tokens, {{"time", 30, 36, ""}}, types), ::testing::Each(0));
}

TEST(BioTest, DecodeNeverStartsWithInsideTag) {
  // Tags: O, B-x, I-x. Token 0 prefers I-x (invalid at start), token 1 prefers I-x.
  auto lp = [](float o, float b, float i) {
    return std::vector<float>{std::log(o), std::log(b), std::log(i)};
  };
  std::vector<float> scores;
  for (const auto& row : {lp(0.2f, 0.3f, 0.5f), lp(0.1f, 0.1f, 0.8f), lp(0.7f, 0.1f, 0.2f)}) {
    scores.insert(scores.end(), row.begin(), row.end());
  }
  EXPECT_THAT(DecodeBio(scores, 3, 3), ElementsAre(1, 2, 0));
  // I-x after O is invalid: O, then I-x preferred -> becomes B-x or stays O.
  scores.clear();
  for (const auto& row : {lp(0.9f, 0.05f, 0.05f), lp(0.3f, 0.2f, 0.5f)}) {
    scores.insert(scores.end(), row.begin(), row.end());
  }
  EXPECT_THAT(DecodeBio(scores, 2, 3), ElementsAre(0, 0));
  EXPECT_TRUE(DecodeBio({}, 0, 3).empty());
}

TEST(BioTest, CrfTransitionsCanOverruleTheTokenScores) {
  // Tags O, B-x, I-x. By the token scores alone: B-x O. A B-x -> I-x bigram worth 1 makes it
  // B-x I-x; end and start scores of O then pull the sequence back to O.
  const std::vector<float> scores = {0.0f, 2.0f, -5.0f,  // token 0: B-x
                                     1.0f, 0.0f, 0.5f};  // token 1: O slightly
  EXPECT_THAT(DecodeBio(scores, 2, 3), ElementsAre(1, 0));
  TagTransitions t;
  t.transition.assign(9, 0.0f);
  t.start.assign(3, 0.0f);
  t.end.assign(3, 0.0f);
  EXPECT_THAT(DecodeBio(scores, 2, 3, &t), ElementsAre(1, 0));  // zeros: no change
  t.transition[1 * 3 + 2] = 1.0f;                               // B-x -> I-x
  EXPECT_THAT(DecodeBio(scores, 2, 3, &t), ElementsAre(1, 2));
  t.end[0] = 2.0f;  // ending on O is worth more than the bigram
  EXPECT_THAT(DecodeBio(scores, 2, 3, &t), ElementsAre(1, 0));
  t.start[0] = 3.0f;  // and starting on O more than token 0's B-x
  EXPECT_THAT(DecodeBio(scores, 2, 3, &t), ElementsAre(0, 0));
  // Transitions never make an invalid sequence: O -> I-x stays forbidden however scored.
  t = TagTransitions{std::vector<float>(9, 0.0f), std::vector<float>(3, 0.0f),
                     std::vector<float>(3, 0.0f)};
  t.transition[0 * 3 + 2] = 100.0f;
  EXPECT_THAT(DecodeBio({5.0f, 0.0f, 0.0f, 0.0f, 0.0f, 1.0f}, 2, 3, &t), ElementsAre(0, 0));
}

TEST(ModelInfoTest, JsonRoundTripAndDomainCheck) {
  NluModelInfo info;
  info.intents = {"greet", "oos", "refund"};
  info.oos_label = "oos";
  info.slot_types = {"order_id"};
  info.temperature = 1.5;
  info.oos_threshold = 0.3;
  absl::StatusOr<NluModelInfo> back = NluModelInfoFromJson(ToJson(info));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->intents, info.intents);
  EXPECT_DOUBLE_EQ(back->temperature, 1.5);
  nlohmann::json broken = ToJson(info);
  broken.erase("intents");
  EXPECT_THAT(std::string(NluModelInfoFromJson(broken).status().message()),
              ::testing::HasSubstr("'intents' missing"));

  domain::Domain d;
  d.origin = "shop.yaml";
  d.intents.resize(2);
  d.intents[0].name = "greet";
  d.intents[1].name = "refund";
  d.slots.resize(1);
  d.slots[0].name = "order_id";
  EXPECT_TRUE(CheckModelMatchesDomain(info, d, "m").ok());
  d.intents[1].name = "track_order";
  d.slots[0].name = "email";
  const absl::Status s = CheckModelMatchesDomain(info, d, "m");
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.message()),
              ::testing::HasSubstr("intents missing in the model: [track_order]"));
  EXPECT_THAT(std::string(s.message()),
              ::testing::HasSubstr("intents only in the model: [refund]"));
  EXPECT_THAT(std::string(s.message()),
              ::testing::HasSubstr("slots missing in the model: [email]"));
  EXPECT_THAT(std::string(s.message()),
              ::testing::HasSubstr("slots only in the model: [order_id]"));
}

// Writes `text` to a fresh file under the temp directory and returns its path.
std::string TempFile(const std::string& name, const std::string& text) {
  const auto path = std::filesystem::temp_directory_path() /
                    ("featurizer_test_" + name + "_" + std::to_string(::getpid()) + ".txt");
  std::ofstream(path) << text;
  return path.string();
}

TEST(WordVectorsTest, ReadsGloveTextKeyedByNormalizedWord) {
  const std::string path = TempFile("vectors",
                                    "the 0.1 0.2 0.3\n"
                                    "Paris -1 0.5 2e-1\n"
                                    "n't 9 9 9\n"  // two tokens: skipped
                                    "2015 1 1 1\n"
                                    "1999 2 2 2\n"  // same normal form 0000: the first kept
                                    "\n"
                                    "lisbon 3 3 3\n");
  auto v = WordVectors::Read(path);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->dim(), 3);
  EXPECT_THAT(v->words(), ElementsAre("the", "paris", "0000", "lisbon"));
  ASSERT_NE(v->Find("paris"), nullptr);
  EXPECT_FLOAT_EQ(v->Find("paris")[2], 0.2f);
  EXPECT_FLOAT_EQ(v->Find("0000")[0], 1.0f);
  EXPECT_EQ(v->Find("n"), nullptr);
  auto two = WordVectors::Read(path, 2);
  ASSERT_TRUE(two.ok());
  EXPECT_THAT(two->words(), ElementsAre("the", "paris"));
  std::filesystem::remove(path);
}

TEST(WordVectorsTest, BadFilesAreNamedWithTheLine) {
  EXPECT_EQ(WordVectors::Read("/nonexistent/vectors.txt").status().code(),
            absl::StatusCode::kNotFound);
  auto expect_bad = [](const std::string& name, const std::string& text,
                       const std::string& message) {
    const std::string path = TempFile(name, text);
    const absl::Status s = WordVectors::Read(path).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << name;
    EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr(path + message)) << name;
    std::filesystem::remove(path);
  };
  expect_bad("nan", "the 0.1 0.2\ncat 0.3 x1\n", ":2: value 2 is not a number");
  expect_bad("dims", "the 0.1 0.2\ncat 0.3\n", ":2: 1 values, the first line has 2");
  expect_bad("bare", "the\n", ":1: expected a word followed by its values");
  expect_bad("empty", "", ": no word vectors");
}

}  // namespace
}  // namespace helpline::nlu::model

namespace helpline::nlu::model {
namespace {

SentencePieces TinyPieces() {
  nlohmann::json vocab = nlohmann::json::array();
  for (const char* reserved : {"<unk>", "<s>", "</s>", "r3", "r4", "r5"}) {
    vocab.push_back({reserved, 0});
  }
  const std::string w = "\xE2\x96\x81";  // U+2581, the word-start mark
  for (const auto& [piece, score] : std::vector<std::pair<std::string, double>>{{w + "he", -1},
                                                                                {"llo", -1},
                                                                                {w + "hello", -2.5},
                                                                                {w, -4},
                                                                                {"h", -3},
                                                                                {"e", -3},
                                                                                {"l", -3},
                                                                                {"o", -3},
                                                                                {"fi", -2},
                                                                                {",", -1}}) {
    vocab.push_back({piece, score});
  }
  vocab.push_back({"x", nullptr});  // a null score counts 0
  auto pieces = SentencePieces::FromJson(vocab);
  EXPECT_TRUE(pieces.ok()) << pieces.status();
  return *pieces;
}

TEST(SentencePiecesTest, BestScoringSegmentationAndOneUnknownPerRun) {
  const SentencePieces p = TinyPieces();
  std::vector<int64_t> ids;
  p.Encode("hello", true, ids);  // ▁he + llo (-2) beats ▁hello (-2.5)
  EXPECT_EQ(ids, (std::vector<int64_t>{6, 7}));
  ids.clear();
  p.Encode("hello", false, ids);  // no word start: h e llo
  EXPECT_EQ(ids, (std::vector<int64_t>{10, 11, 7}));
  ids.clear();
  p.Encode("he#$%x", true, ids);  // three uncovered characters: one unknown
  EXPECT_EQ(ids, (std::vector<int64_t>{6, SentencePieces::kUnknown, 16}));
  ids.clear();
  p.Encode("\xEF\xAC\x81", false, ids);  // U+FB01 (the fi ligature) is "fi" after NFKC
  EXPECT_EQ(ids, (std::vector<int64_t>{14}));
  ids.clear();
  p.Encode("", true, ids);
  EXPECT_TRUE(ids.empty());
  EXPECT_EQ(SentencePieces::FromJson(p.ToJson())->ToJson(), p.ToJson());
}

TEST(SentencePiecesTest, BadVocabulariesNameTheEntry) {
  nlohmann::json vocab = TinyPieces().ToJson();
  vocab[8] = {"llo"};
  EXPECT_THAT(std::string(SentencePieces::FromJson(vocab).status().message()),
              ::testing::HasSubstr("entry 8 is not [piece, score]"));
  vocab[8] = {"", -1};
  EXPECT_THAT(std::string(SentencePieces::FromJson(vocab).status().message()),
              ::testing::HasSubstr("entry 8 is empty"));
  EXPECT_FALSE(SentencePieces::FromJson(nlohmann::json::array({{"a", 0}})).ok());
  EXPECT_FALSE(SentencePieces::FromJson(nlohmann::json::object()).ok());
}

TEST(SentencePiecesTest, TokensPointAtTheirFirstPiece) {
  const SentencePieces p = TinyPieces();
  Featurizer f = Featurizer::Build({"hello, hello"});
  const std::string text = "hello, hello";
  Features features = f.Featurize(text);
  AddSentencePieces(p, text, features);
  // ▁he llo , ▁he llo: the comma follows a word without a space, so no word start.
  EXPECT_EQ(features.pieces, (std::vector<int64_t>{6, 7, 15, 6, 7}));
  EXPECT_EQ(features.first_piece, (std::vector<int64_t>{0, 2, 3}));
}

}  // namespace
}  // namespace helpline::nlu::model
