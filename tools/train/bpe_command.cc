#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "tools/train/commands.h"
#include "train/bpe_trainer.h"

namespace helpline::train::cli {

void AddBpeCommand(CLI::App& app) {
  struct Flags {
    std::vector<std::string> corpus;
    int vocab_size = 8192;
    std::string out;
    std::vector<std::string> special = {"<|endoftext|>"};
    int64_t min_count = 2;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand("bpe", "learn byte-level BPE merges (GPT-2 pre-tokenizer)");
  cmd->add_option("--corpus", flags->corpus, "text files")->required();
  cmd->add_option("--vocab-size", flags->vocab_size, "256 bytes + merges + special tokens")
      ->capture_default_str();
  cmd->add_option("--out", flags->out, "folder for vocab.json and merges.txt")->required();
  cmd->add_option("--special", flags->special, "special tokens (the first is end-of-text)")
      ->capture_default_str();
  cmd->add_option("--min-count", flags->min_count, "least count of a merged pair")->capture_default_str();
  cmd->final_callback([flags] {
    BpeTrainOptions options;
    options.vocab_size = flags->vocab_size;
    options.special_tokens = flags->special;
    options.min_pair_count = flags->min_count;
    options.progress_every = 1000;
    const auto start = std::chrono::steady_clock::now();
    absl::StatusOr<BpeModel> model = TrainBpe(flags->corpus, options);
    if (!model.ok()) {
      std::fprintf(stderr, "helpline-train bpe: %s\n", std::string(model.status().message()).c_str());
      throw CLI::RuntimeError(2);
    }
    if (absl::Status s = WriteBpeModel(*model, flags->out); !s.ok()) {
      std::fprintf(stderr, "helpline-train bpe: %s\n", std::string(s.message()).c_str());
      throw CLI::RuntimeError(1);
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::fprintf(stderr,
                 "helpline-train bpe: %zu tokens (%zu merges) from %lld bytes, %lld pieces (%lld distinct) "
                 "in %.1f s -> %s\n",
                 model->tokens.size(), model->merges.size(), static_cast<long long>(model->corpus_bytes),
                 static_cast<long long>(model->pieces), static_cast<long long>(model->distinct_pieces),
                 seconds, flags->out.c_str());
  });
}

}  // namespace helpline::train::cli
