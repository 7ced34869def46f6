// The shared folder beside the checkout (data sets, GPT-2's tokenizer files, the llama.cpp
// tools) and tiny random GPT-2 models made with its make_tiny_gpt2.py, for tests of the
// model, the engine and the generation service. Header-only.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace helpline::testutil {

// $HELPLINE_SHARED_DIR, else $HELPLINE_SOURCE_DIR/../shared, else ../shared.
inline std::string SharedDir() {
  if (const char* dir = std::getenv("HELPLINE_SHARED_DIR"); dir != nullptr && *dir != '\0') {
    return dir;
  }
  const char* source = std::getenv("HELPLINE_SOURCE_DIR");
  return absl::StrCat(source != nullptr ? source : ".", "/../shared");
}

// GPT-2's tokenizer files: $HELPLINE_GPT2_BPE_DIR, else <shared>/data/gpt2_bpe.
inline std::string Gpt2BpeDir() {
  if (const char* dir = std::getenv("HELPLINE_GPT2_BPE_DIR"); dir != nullptr && *dir != '\0') {
    return dir;
  }
  return SharedDir() + "/data/gpt2_bpe";
}

// Writes a random-weight GPT-2 folder at `out_dir` with make_tiny_gpt2.py (numpy), passing
// `args` (e.g. "--merges all --positions 512"). FAILED_PRECONDITION naming what is missing
// when the tool or the tokenizer files are not there (callers skip), INTERNAL when it fails.
inline absl::Status MakeTinyGpt2(const std::string& out_dir, const std::string& args) {
  const std::string tool = SharedDir() + "/tools/llamacpp/make_tiny_gpt2.py";
  if (!std::filesystem::exists(tool)) {
    return absl::FailedPreconditionError(absl::StrCat("no ", tool));
  }
  if (!std::filesystem::exists(Gpt2BpeDir())) {
    return absl::FailedPreconditionError(absl::StrCat("no ", Gpt2BpeDir()));
  }
  const std::string command = absl::StrCat("/usr/bin/python3 ", tool, " ", out_dir, " --bpe-dir ",
                                           Gpt2BpeDir(), " ", args, " > /dev/null");
  if (std::system(command.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("failed: ", command));
  }
  return absl::OkStatus();
}

}  // namespace helpline::testutil
