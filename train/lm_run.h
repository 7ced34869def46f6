// The whole `helpline-train lm` run: tokenize the training and dev text, train with
// progress on stderr, evaluate, checkpoint, resume, export the Hugging Face folder and write
// the report. No libtorch here (lm_trainer.cc holds it).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "lm/tokenizer/bpe.h"
#include "train/lm_trainer.h"

namespace helpline::train {

struct LmRunOptions {
  // shape.vocab_size is taken from the tokenizer (its vocab_size rounded up to a multiple
  // of 64 when round_vocab is set); eos_id from the tokenizer.
  LmTrainOptions train;
  bool round_vocab = false;
  std::string train_file;
  std::string dev_file;
  std::string tokenizer_dir;
  std::string out_dir;
  // A folder with checkpoint.pt (usually out_dir of the interrupted run); "" = fresh start.
  std::string resume_dir;
  int64_t eval_every = 200;       // 0: only at the end
  int64_t eval_tokens = 262144;   // dev tokens per evaluation (0: all)
  int64_t checkpoint_every = 200; // 0: none
  int64_t log_every = 10;
  bool f16 = false;  // model.safetensors in F16
};

// Text of a training file to ids: examples are separated by "<|endoftext|>" (one "\n"
// after it is dropped); each example is encoded and followed by the eos id.
// INVALID_ARGUMENT naming the file when it holds no example; NOT_FOUND when unreadable.
absl::StatusOr<std::vector<int32_t>> TokenizeTrainingText(const std::string& path,
                                                          const lm::BpeTokenizer& tokenizer);

// Runs the training. Every input problem (missing or empty file, a tokenizer without
// <|endoftext|>, a bad shape, a --resume checkpoint of another shape or seed) is reported
// before the first step. Writes into out_dir: checkpoint.pt (every checkpoint_every steps
// and at the end), history.json, config.json, model.safetensors, the tokenizer files,
// report.json, report.txt, loss.tsv and loss.png (when gnuplot is installed).
absl::Status RunLmTraining(const LmRunOptions& options);

}  // namespace helpline::train
