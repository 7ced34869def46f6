// helpline-train: trainers of Helpline's reply model. Subcommands:
//   bpe   learn byte-level BPE merges (vocab.json + merges.txt)
//   text  turn a dialogue data set into training text in the serving prompt layout
//   lm    train a GPT-2-architecture model and write the Hugging Face folder
//   nlu   intent classifier + slot tagger, or the dialogue state tracker (nlu/)
#include <malloc.h>

#include "CLI/CLI.hpp"
#include "tools/train/commands.h"

int main(int argc, char** argv) {
  // Every training step frees and reallocates gradients and optimizer temporaries of up to
  // tens of megabytes. With glibc's defaults these go back to the kernel and fault in again
  // each step: a transformer model with word vectors trained 2.3x slower (CLINC150, 8% of
  // 8 epochs in 43 s with these settings, 7% in 88 s without). Keep blocks up to 32 MB on the
  // heap (the largest threshold glibc allows) and never trim it.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  CLI::App app{"helpline-train: trainers of the reply model (bpe, text, lm) and of the NLU / DST models (nlu)"};
  app.require_subcommand(1);
  helpline::train::cli::AddBpeCommand(app);
  helpline::train::cli::AddTextCommand(app);
  helpline::train::cli::AddLmCommand(app);
  helpline::train::cli::AddNluCommand(app);
  CLI11_PARSE(app, argc, argv);
  return 0;
}
