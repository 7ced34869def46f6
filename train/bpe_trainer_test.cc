#include "train/bpe_trainer.h"

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "lm/tokenizer/bpe.h"

namespace helpline::train {
namespace {

std::string TempDir(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() /
                   absl::StrCat("train_bpe_test_", name, "_", ::getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

std::vector<std::string> SmallCorpus() {
  std::vector<std::string> texts;
  const char* lines[] = {
      "Customer: Where is my order A-1234567?\nAgent: Your order {{order_id}} is on its way.",
      "Customer: I want to return the shoes, they are too small.\nAgent: I am sorry to hear that.",
      "Customer: Can I get a refund of $49.90?\nAgent: Your refund of {{amount}} is being processed.",
      "Customer: 我的订单在哪里？\nAgent: 您的订单正在配送中。 Thanks!!  \n\n  ok   ",
      "Customer: hello there, hello again, hellooo\nAgent: Hello! How can I help you today?"};
  for (int i = 0; i < 30; ++i) {
    for (const char* l : lines) texts.push_back(absl::StrCat(l, " #", i % 7, "<|endoftext|>\n"));
  }
  return texts;
}

TEST(BpeTrainerTest, LoadsInTheTokenizerAndEncodesLikeItsOwnMerges) {
  BpeTrainOptions options;
  options.vocab_size = 420;
  absl::StatusOr<BpeModel> model = TrainBpeOnTexts(SmallCorpus(), options);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(model->tokens.size(), 420u);
  ASSERT_EQ(model->special_ids.size(), 1u);
  EXPECT_EQ(model->special_ids[0], 419);
  EXPECT_EQ(model->merges.size(), 420u - 256 - 1);  // no two merges gave the same bytes here
  const std::string dir = TempDir("load");
  ASSERT_TRUE(WriteBpeModel(*model, dir).ok());
  absl::StatusOr<std::unique_ptr<lm::BpeTokenizer>> tok = lm::BpeTokenizer::Load(dir);
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ((*tok)->vocab_size(), 420);
  EXPECT_EQ((*tok)->eos_id(), 419);

  const std::vector<std::string> texts = {
      SmallCorpus()[3], "Where is my order B-7654321? Your refund is on its way.",
      "unseen wörds ünïcode 🙂 and\ttabs\n\n  trailing  ", "", "a", "helloooooo hello"};
  for (const std::string& text : texts) {
    const std::vector<int32_t> ids = (*tok)->Encode(text);
    EXPECT_EQ((*tok)->Decode(ids), text);
    EXPECT_EQ(ids, SegmentWithMerges(*model, text)) << text;
  }
  // Frequent words became single tokens.
  EXPECT_EQ((*tok)->Encode(" order").size(), 1u);
  EXPECT_EQ((*tok)->Encode("Customer").size(), 1u);
  // The special token is recognised only on request.
  const std::vector<int32_t> special = (*tok)->EncodeWithSpecialTokens("hi<|endoftext|>");
  EXPECT_EQ(special.back(), 419);
  std::filesystem::remove_all(dir);
}

TEST(BpeTrainerTest, IsDeterministicAndStopsWhenNothingRepeats) {
  BpeTrainOptions options;
  options.vocab_size = 350;
  absl::StatusOr<BpeModel> a = TrainBpeOnTexts(SmallCorpus(), options);
  absl::StatusOr<BpeModel> b = TrainBpeOnTexts(SmallCorpus(), options);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->merges, b->merges);
  EXPECT_EQ(a->tokens, b->tokens);

  options.vocab_size = 5000;  // more than the corpus can give with pairs seen twice
  absl::StatusOr<BpeModel> c = TrainBpeOnTexts({"abcd abcd xyz"}, options);
  ASSERT_TRUE(c.ok());
  EXPECT_LT(c->tokens.size(), 300u);
  EXPECT_EQ(c->tokens.back(), "<|endoftext|>");
}

TEST(BpeTrainerTest, FilesAndBadInputs) {
  const std::string dir = TempDir("files");
  const std::string a = dir + "/a.txt", empty = dir + "/empty.txt";
  {
    std::ofstream(a) << SmallCorpus()[0] << SmallCorpus()[1];
    std::ofstream(empty) << "<|endoftext|>\n<|endoftext|>";
  }
  BpeTrainOptions options;
  options.vocab_size = 300;
  EXPECT_TRUE(TrainBpe({a}, options).ok());

  options.vocab_size = 256;  // no room for <|endoftext|>
  absl::StatusOr<BpeModel> small = TrainBpe({a}, options);
  EXPECT_EQ(small.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(small.status().message().find("smaller than the byte alphabet"), std::string::npos);

  options.vocab_size = 300;
  absl::StatusOr<BpeModel> missing = TrainBpe({a, dir + "/nope.txt"}, options);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("nope.txt"), std::string::npos);

  absl::StatusOr<BpeModel> none = TrainBpe({empty}, options);
  EXPECT_EQ(none.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(none.status().message().find("empty"), std::string::npos);
  EXPECT_EQ(TrainBpe({}, options).status().code(), absl::StatusCode::kInvalidArgument);
  std::filesystem::remove_all(dir);
}

TEST(BpeTrainerTest, ByteLevelStringIsGpt2Alphabet) {
  EXPECT_EQ(ByteLevelString(" the"), "\xC4\xA0the");  // "Ġthe"
  EXPECT_EQ(ByteLevelString("\n"), "\xC4\x8A");       // "Ċ"
}

}  // namespace
}  // namespace helpline::train
