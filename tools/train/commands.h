// The subcommands of helpline-train, one file each. Each Add*Command registers its
// subcommand on `app`; its callback runs the command and throws CLI::RuntimeError(code) on
// failure (after printing the error), so main stays a dispatcher.
#pragma once

#include "CLI/CLI.hpp"

namespace helpline::train::cli {

void AddBpeCommand(CLI::App& app);   // bpe_command.cc
void AddTextCommand(CLI::App& app);  // text_command.cc
void AddLmCommand(CLI::App& app);    // lm_command.cc
void AddNluCommand(CLI::App& app);   // nlu_command.cc

}  // namespace helpline::train::cli
