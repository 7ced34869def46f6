// helpline-train: trainers of Helpline's reply model. Subcommands:
//   bpe   learn byte-level BPE merges (vocab.json + merges.txt)
//   text  turn a dialogue data set into training text in the serving prompt layout
//   lm    train a GPT-2-architecture model and write the Hugging Face folder
//   nlu   intent classifier + slot tagger, or the dialogue state tracker (nlu/)
#include "CLI/CLI.hpp"
#include "tools/train/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"helpline-train: trainers of the reply model (bpe, text, lm) and of the NLU / DST models (nlu)"};
  app.require_subcommand(1);
  helpline::train::cli::AddBpeCommand(app);
  helpline::train::cli::AddTextCommand(app);
  helpline::train::cli::AddLmCommand(app);
  helpline::train::cli::AddNluCommand(app);
  CLI11_PARSE(app, argc, argv);
  return 0;
}
