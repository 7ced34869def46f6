// helpline-train: trainers of Helpline's reply model. Subcommands:
//   bpe   learn byte-level BPE merges (vocab.json + merges.txt)
//   text  turn a dialogue data set into training text in the serving prompt layout
//   lm    train a GPT-2-architecture model and write the Hugging Face folder
#include "CLI/CLI.hpp"
#include "tools/train/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"helpline-train: BPE and language-model trainers of the reply model"};
  app.require_subcommand(1);
  helpline::train::cli::AddBpeCommand(app);
  helpline::train::cli::AddTextCommand(app);
  helpline::train::cli::AddLmCommand(app);
  CLI11_PARSE(app, argc, argv);
  return 0;
}
