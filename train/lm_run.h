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
  // A folder with checkpoint.pt of another run whose parameters this run starts from, with a
  // fresh optimizer and schedule (fine-tuning); "" = random initialisation. Not with resume_dir.
  std::string init_dir;
  int64_t eval_every = 200;       // 0: only at the end
  int64_t eval_tokens = 262144;   // dev tokens per evaluation (0: all)
  int64_t checkpoint_every = 200; // 0: none
  int64_t log_every = 10;
  bool f16 = false;  // model.safetensors in F16
};

// The line cue before an agent's reply in the training text (train/dialogue_text.h).
inline constexpr absl::string_view kReplyCue = "Agent:";

// Text of a training file to ids: examples are separated by "<|endoftext|>" (one "\n"
// after it is dropped); each example is encoded and followed by the eos id. The text after
// the example's last line that starts with kReplyCue, and the eos, are marked as reply
// tokens; the part up to and including the cue is encoded on its own, as the service
// encodes a prompt. INVALID_ARGUMENT naming the file when it holds no example; NOT_FOUND
// when unreadable.
absl::StatusOr<TokenStream> TokenizeTrainingText(const std::string& path, const lm::BpeTokenizer& tokenizer);

// Runs the training. Every input problem (missing or empty file, a tokenizer without
// <|endoftext|>, a bad shape, a --resume checkpoint of another shape or seed) is reported
// before the first step. Writes into out_dir: checkpoint.pt (every checkpoint_every steps
// and at the end), history.json, config.json, model.safetensors, the tokenizer files,
// report.json, report.txt, loss.tsv and loss.png (when gnuplot is installed).
absl::Status RunLmTraining(const LmRunOptions& options);

}  // namespace helpline::train
