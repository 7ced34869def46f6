#include "train/lm_trainer.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "lm/model/gpt2.h"
#include "lm/tokenizer/bpe.h"
#include "train/bpe_trainer.h"
#include "train/lm_run.h"

namespace helpline::train {
namespace {

namespace fs = std::filesystem;

std::string TempDir(const std::string& name) {
  const auto dir = fs::temp_directory_path() / absl::StrCat("train_lm_test_", name, "_", ::getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

LmTrainOptions TinyOptions() {
  LmTrainOptions o;
  o.shape = {.vocab_size = 64, .n_positions = 16, .n_embd = 32, .n_layer = 2, .n_head = 4};
  o.steps = 8;
  o.batch_tokens = 64;  // 4 rows
  o.micro_rows = 2;
  o.lr = 3e-3;
  o.warmup = 2;
  o.seed = 7;
  o.threads = 2;
  o.eos_id = 63;
  return o;
}

// A repetitive stream the model can learn quickly.
std::vector<int32_t> Stream(size_t n, int offset) {
  std::vector<int32_t> ids;
  for (size_t i = 0; i < n; ++i) ids.push_back(static_cast<int32_t>((i * 7 + offset + (i / 5) % 3) % 60));
  return ids;
}

TEST(LearningRateTest, WarmupThenCosineToTheFloor) {
  LmTrainOptions o;
  o.lr = 1e-3;
  o.warmup = 10;
  o.steps = 110;
  o.min_lr_ratio = 0.1;
  EXPECT_DOUBLE_EQ(LearningRate(o, 0), 1e-4);
  EXPECT_DOUBLE_EQ(LearningRate(o, 9), 1e-3);
  EXPECT_NEAR(LearningRate(o, 10), 1e-3, 1e-12);
  EXPECT_NEAR(LearningRate(o, 60), 0.55e-3, 1e-12);  // half way: the mean of lr and the floor
  EXPECT_NEAR(LearningRate(o, 110), 1e-4, 1e-12);
  EXPECT_NEAR(LearningRate(o, 500), 1e-4, 1e-12);  // past the end: stays at the floor
  for (int64_t s = 11; s < 110; ++s) EXPECT_LE(LearningRate(o, s), LearningRate(o, s - 1));
}

TEST(LmTrainerTest, LossFallsAndTheExportedModelGivesTheSameLogits) {
  LmTrainOptions o = TinyOptions();
  o.steps = 30;
  const std::vector<int32_t> all = Stream(2400, 0);
  auto trainer = LmTrainer::Create(o, std::vector<int32_t>(all.begin(), all.begin() + 2000),
                                   std::vector<int32_t>(all.begin() + 2000, all.end()));
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  const double before = (*trainer)->EvalLoss(0);
  double first = 0, last = 0;
  for (int i = 0; i < o.steps; ++i) {
    const StepStats s = (*trainer)->Step();
    if (i == 0) first = s.loss;
    last = s.loss;
    EXPECT_EQ(s.tokens, 64);
  }
  EXPECT_LT(last, first - 0.5);
  EXPECT_LT((*trainer)->EvalLoss(0), before - 0.5);

  for (bool f16 : {false, true}) {
    const std::string dir = TempDir(f16 ? "export16" : "export32");
    ASSERT_TRUE((*trainer)->ExportHf(dir, f16).ok());
    auto model = lm::Gpt2Model::Load(dir, {.threads = 2});
    ASSERT_TRUE(model.ok()) << model.status();
    EXPECT_EQ((*model)->config().n_layer, 2);
    EXPECT_EQ((*model)->config().eos_token_id, 63);
    const std::vector<int32_t> prompt = {5, 12, 19, 26, 40, 1, 2, 3, 9, 0, 63, 17};
    auto cache = (*model)->NewCache();
    std::vector<float> served;
    lm::StepInput in{cache.get(), prompt};
    ASSERT_TRUE((*model)->Step({&in, 1}, served).ok());
    const std::vector<float> own = (*trainer)->LastLogits(prompt);
    ASSERT_EQ(served.size(), own.size());
    double worst = 0;
    for (size_t i = 0; i < own.size(); ++i) worst = std::max(worst, std::abs(double(served[i]) - own[i]));
    EXPECT_LT(worst, f16 ? 5e-2 : 1e-4) << (f16 ? "F16" : "F32");
    fs::remove_all(dir);
  }
}

TEST(LmTrainerTest, ResumeGivesTheSameWeightsAsAStraightRun) {
  const LmTrainOptions o = TinyOptions();
  auto straight = LmTrainer::Create(o, Stream(500, 0), Stream(100, 1));  // ~31 windows: 2 epochs in 8 steps
  ASSERT_TRUE(straight.ok());
  for (int i = 0; i < 8; ++i) (*straight)->Step();

  const std::string dir = TempDir("resume");
  {
    auto first = LmTrainer::Create(o, Stream(500, 0), Stream(100, 1));
    for (int i = 0; i < 4; ++i) (*first)->Step();
    (*first)->EvalLoss(0);  // evaluation must not disturb anything
    ASSERT_TRUE((*first)->SaveCheckpoint(dir).ok());
  }
  auto second = LmTrainer::Create(o, Stream(500, 0), Stream(100, 1));
  ASSERT_TRUE((*second)->LoadCheckpoint(dir).ok());
  EXPECT_EQ((*second)->step(), 4);
  for (int i = 0; i < 4; ++i) (*second)->Step();
  EXPECT_EQ((*second)->ParameterValues(), (*straight)->ParameterValues());

  // A checkpoint of another shape or seed is refused and changes nothing.
  LmTrainOptions wide = o;
  wide.shape.n_embd = 64;
  auto other = LmTrainer::Create(wide, Stream(500, 0), Stream(100, 1));
  const auto before = (*other)->ParameterValues();
  absl::Status st = (*other)->LoadCheckpoint(dir);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("2 layers x 32"), std::string::npos) << st;
  EXPECT_EQ((*other)->ParameterValues(), before);
  LmTrainOptions seeded = o;
  seeded.seed = 8;
  EXPECT_EQ((*LmTrainer::Create(seeded, Stream(500, 0), Stream(100, 1)))->LoadCheckpoint(dir).code(),
            absl::StatusCode::kInvalidArgument);
  fs::remove_all(dir);
}

TEST(LmTrainerTest, BadShapesAndData) {
  LmTrainOptions o = TinyOptions();
  o.shape.n_head = 5;
  EXPECT_EQ(LmTrainer::Create(o, Stream(500, 0), {}).status().code(), absl::StatusCode::kInvalidArgument);
  o = TinyOptions();
  EXPECT_EQ(LmTrainer::Create(o, std::vector<int32_t>{1, 2, 99}, {}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(LmTrainer::Create(o, std::vector<int32_t>{1, 2, 3}, {}).status().code(), absl::StatusCode::kInvalidArgument);
}

// With context_weight 0 the loss is the mean cross-entropy of the reply targets only,
// computed here position by position from the trainer's own logits.
TEST(LmTrainerTest, ContextWeightZeroScoresTheReplyTokensOnly) {
  LmTrainOptions o = TinyOptions();
  o.context_weight = 0;
  const std::vector<int32_t> ids = Stream(17, 3);  // one dev window of 16 targets
  std::vector<uint8_t> reply(ids.size(), 0);
  for (size_t i : {5, 6, 7, 12, 16}) reply[i] = 1;
  auto trainer = LmTrainer::Create(o, Stream(500, 0), TokenStream(ids, reply));
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  double expected = 0;
  int n = 0;
  for (size_t t = 1; t < ids.size(); ++t) {
    if (!reply[t]) continue;
    const std::vector<float> logits =
        (*trainer)->LastLogits(absl::MakeConstSpan(ids.data(), t));
    double max = logits[0], sum = 0;
    for (float l : logits) max = std::max<double>(max, l);
    for (float l : logits) sum += std::exp(l - max);
    expected += -(logits[ids[t]] - max - std::log(sum));
    ++n;
  }
  EXPECT_NEAR((*trainer)->EvalLoss(0), expected / n, 1e-4);

  // Marks every token as a reply: the plain mean over all targets again.
  auto all = LmTrainer::Create(o, Stream(500, 0), TokenStream(ids, std::vector<uint8_t>(ids.size(), 1)));
  LmTrainOptions plain_options = TinyOptions();
  auto plain = LmTrainer::Create(plain_options, Stream(500, 0), ids);
  EXPECT_NEAR((*all)->EvalLoss(0), (*plain)->EvalLoss(0), 1e-5);

  // Training on the reply tokens only changes the weights and lowers the reply loss.
  std::vector<uint8_t> train_reply(500, 0);
  for (size_t i = 0; i < 500; i += 3) train_reply[i] = 1;
  auto masked = LmTrainer::Create(o, TokenStream(Stream(500, 0), train_reply), TokenStream(ids, reply));
  const double before = (*masked)->EvalLoss(0);
  for (int i = 0; i < 8; ++i) (*masked)->Step();
  EXPECT_LT((*masked)->EvalLoss(0), before);

  LmTrainOptions bad = o;
  bad.context_weight = 1.5;
  EXPECT_EQ(LmTrainer::Create(bad, Stream(500, 0), {}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(LmTrainer::Create(o, TokenStream(Stream(500, 0), {1, 0}), {}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(LmTrainerTest, InitFromCheckpointTakesTheWeightsAndStartsAFreshSchedule) {
  const LmTrainOptions o = TinyOptions();
  const std::string dir = TempDir("init");
  auto first = LmTrainer::Create(o, Stream(500, 0), Stream(100, 1));
  for (int i = 0; i < 3; ++i) (*first)->Step();
  ASSERT_TRUE((*first)->SaveCheckpoint(dir).ok());

  LmTrainOptions other_seed = o;
  other_seed.seed = 99;  // another data order is fine for fine-tuning
  auto second = LmTrainer::Create(other_seed, Stream(500, 0), Stream(100, 1));
  ASSERT_NE((*second)->ParameterValues(), (*first)->ParameterValues());
  ASSERT_TRUE((*second)->InitFromCheckpoint(dir).ok());
  EXPECT_EQ((*second)->ParameterValues(), (*first)->ParameterValues());
  EXPECT_EQ((*second)->step(), 0);

  LmTrainOptions wide = o;
  wide.shape.n_embd = 64;
  auto other = LmTrainer::Create(wide, Stream(500, 0), Stream(100, 1));
  const auto before = (*other)->ParameterValues();
  absl::Status st = (*other)->InitFromCheckpoint(dir);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*other)->ParameterValues(), before);
  EXPECT_EQ((*other)->InitFromCheckpoint(dir + "/none").code(), absl::StatusCode::kNotFound);
  fs::remove_all(dir);
}

TEST(LmRunTest, TokenizeMarksTheTextAfterTheLastAgentCue) {
  const std::string dir = TempDir("marks");
  std::ofstream(dir + "/t.txt") << "Customer: hi\nAgent: hello\nCustomer: where is it?\nAgent: It ships today."
                                   "<|endoftext|>\nno cue at all<|endoftext|>\n";
  BpeTrainOptions bpe;
  bpe.vocab_size = 300;
  auto model = TrainBpe({dir + "/t.txt"}, bpe);
  ASSERT_TRUE(model.ok());
  ASSERT_TRUE(WriteBpeModel(*model, dir + "/tok").ok());
  auto tokenizer = lm::BpeTokenizer::Load(dir + "/tok");
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  absl::StatusOr<TokenStream> stream = TokenizeTrainingText(dir + "/t.txt", **tokenizer);
  ASSERT_TRUE(stream.ok()) << stream.status();
  ASSERT_EQ(stream->reply.size(), stream->ids.size());
  std::vector<int32_t> marked, unmarked;
  for (size_t i = 0; i < stream->ids.size(); ++i) (stream->reply[i] ? marked : unmarked).push_back(stream->ids[i]);
  EXPECT_EQ((*tokenizer)->Decode(marked), " It ships today.<|endoftext|>");
  EXPECT_EQ((*tokenizer)->Decode(unmarked),
            "Customer: hi\nAgent: hello\nCustomer: where is it?\nAgent:no cue at all<|endoftext|>");
  fs::remove_all(dir);
}

// The whole run on files: BPE, text, training, export, report, resume and its errors.
TEST(LmRunTest, TrainsFromFilesAndRefusesBadInputsBeforeWork) {
  const std::string dir = TempDir("run");
  std::string text;
  for (int i = 0; i < 40; ++i) {
    absl::StrAppend(&text, "Customer: where is order ", 1000 + i, "?\nAgent: It ships today.<|endoftext|>\n",
                    "Customer: refund please\nAgent: Your refund is on its way.<|endoftext|>\n");
  }
  std::ofstream(dir + "/train.txt") << text;
  std::ofstream(dir + "/dev.txt") << text.substr(0, 800);
  std::ofstream(dir + "/empty.txt") << "\n<|endoftext|>\n";
  BpeTrainOptions bpe;
  bpe.vocab_size = 300;
  auto model = TrainBpe({dir + "/train.txt"}, bpe);
  ASSERT_TRUE(model.ok());
  ASSERT_TRUE(WriteBpeModel(*model, dir + "/tok").ok());

  LmRunOptions run;
  run.train = TinyOptions();
  run.train.steps = 6;
  run.train_file = dir + "/train.txt";
  run.dev_file = dir + "/dev.txt";
  run.tokenizer_dir = dir + "/tok";
  run.out_dir = dir + "/out";
  run.eval_every = 3;
  run.checkpoint_every = 3;
  run.log_every = 2;
  ASSERT_TRUE(RunLmTraining(run).ok());
  for (const char* f : {"config.json", "model.safetensors", "vocab.json", "merges.txt", "checkpoint.pt",
                        "report.json", "report.txt", "loss.tsv", "history.json"}) {
    EXPECT_TRUE(fs::exists(fs::path(run.out_dir) / f)) << f;
  }
  EXPECT_TRUE(lm::Gpt2Model::Load(run.out_dir).ok());
  EXPECT_TRUE(lm::BpeTokenizer::Load(run.out_dir).ok());

  // Resume to more steps from the finished run.
  LmRunOptions more = run;
  more.train.steps = 8;
  more.resume_dir = run.out_dir;
  EXPECT_TRUE(RunLmTraining(more).ok());

  // Fine-tune on the replies only, from the run's weights, into another folder.
  LmRunOptions fine = run;
  fine.init_dir = run.out_dir;
  fine.out_dir = dir + "/fine";
  fine.train.seed = 3;
  fine.train.context_weight = 0;
  EXPECT_TRUE(RunLmTraining(fine).ok());
  EXPECT_TRUE(lm::Gpt2Model::Load(fine.out_dir).ok());
  fine.resume_dir = run.out_dir;
  absl::Status both = RunLmTraining(fine);
  EXPECT_EQ(both.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(both.message().find("--init-from and --resume"), std::string::npos) << both;

  LmRunOptions bad = run;
  bad.train.shape.n_layer = 3;
  bad.train.steps = 20;
  bad.resume_dir = run.out_dir;
  absl::Status st = RunLmTraining(bad);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("this run asks for 3 x 32"), std::string::npos) << st;

  bad = run;
  bad.train_file = dir + "/empty.txt";
  st = RunLmTraining(bad);
  EXPECT_NE(st.message().find("empty.txt: empty"), std::string::npos) << st;
  bad = run;
  bad.dev_file = dir + "/missing.txt";
  EXPECT_EQ(RunLmTraining(bad).code(), absl::StatusCode::kNotFound);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace helpline::train
