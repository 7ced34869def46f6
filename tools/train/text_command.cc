#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tools/train/commands.h"
#include "train/dialogue_text.h"

namespace helpline::train::cli {
namespace {

struct TextFlags {
  std::vector<std::string> data;
  std::vector<std::string> formats;
  std::vector<double> weights;
  std::string split = "train";
  std::string out;
  int max_history = 3;
  std::string system_prompt;
  bool no_placeholders = false;
  size_t max_reply_bytes = 1200;
  bool exemplars = false;
  double exemplar_drop = 0.2;
  uint64_t exemplar_seed = 1;
};

// The examples of one data set, with exemplars when asked (the pool: the train split).
absl::StatusOr<std::vector<TrainingExample>> ReadExamples(const std::string& path,
                                                          TextFormat format,
                                                          const TextOptions& options,
                                                          const TextFlags& flags) {
  if (!flags.exemplars) return ReadTrainingExamples(path, format, options);
  absl::StatusOr<std::vector<ExampleRecord>> records = ReadExampleRecords(path, format, options);
  if (!records.ok()) return records.status();
  std::vector<ExampleRecord> train_split;
  if (options.split != "train") {
    TextOptions train = options;
    train.split = "train";
    absl::StatusOr<std::vector<ExampleRecord>> pool = ReadExampleRecords(path, format, train);
    if (!pool.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--exemplars: the train split of ", path, " is the exemplar pool: ", pool.status().message()));
    }
    train_split = *std::move(pool);
  }
  ExemplarOptions exemplar;
  exemplar.drop_share = flags.exemplar_drop;
  exemplar.seed = flags.exemplar_seed;
  absl::Status s = AddExemplars(*records, options.split == "train" ? *records : train_split, exemplar);
  if (!s.ok()) return s;
  std::vector<TrainingExample> out;
  out.reserve(records->size());
  for (ExampleRecord& r : *records) out.push_back(std::move(r.example));
  return out;
}

}  // namespace

void AddTextCommand(CLI::App& app) {
  auto flags = std::make_shared<TextFlags>();
  CLI::App* cmd = app.add_subcommand(
      "text", "dialogue data sets -> training text in the serving prompt layout (one example per agent turn)");
  cmd->add_option("--data", flags->data, "data set paths (as in shared/data)")->required();
  cmd->add_option("--format", flags->formats,
                  "sgd|multiwoz21|taskmaster|bitext|camrest, one per --data (or one for all)")
      ->required();
  cmd->add_option("--weights", flags->weights,
                  "one per --data: each example appears about w times (4: four times, 0.5: every "
                  "second one); default 1 each");
  cmd->add_option("--split", flags->split, "train, dev, ...")->capture_default_str();
  cmd->add_option("--out", flags->out, "output text file")->required();
  cmd->add_option("--max-history", flags->max_history, "earlier turns per example")->capture_default_str();
  cmd->add_option("--system-prompt", flags->system_prompt, "system prompt of every example (default: per data set)");
  cmd->add_flag("--no-placeholders", flags->no_placeholders, "keep slot values in the replies");
  cmd->add_option("--max-reply-bytes", flags->max_reply_bytes, "skip longer replies (0: keep all)")
      ->capture_default_str();
  cmd->add_flag("--exemplars", flags->exemplars,
                 "show each example the reply of the nearest training turn of another dialogue "
                 "of the same data set (an Example: line; other splits draw on the train split)");
  cmd->add_option("--exemplar-drop", flags->exemplar_drop,
                  "share of the examples without an exemplar")
      ->capture_default_str();
  cmd->add_option("--exemplar-seed", flags->exemplar_seed, "which examples go without")
      ->capture_default_str();
  cmd->final_callback([flags] {
    if (!(flags->exemplar_drop >= 0.0 && flags->exemplar_drop <= 1.0)) {
      std::fprintf(stderr, "helpline-train text: --exemplar-drop: %g is not in [0, 1]\n",
                   flags->exemplar_drop);
      throw CLI::RuntimeError(2);
    }
    if (flags->formats.size() != 1 && flags->formats.size() != flags->data.size()) {
      std::fprintf(stderr, "helpline-train text: give one --format, or one per --data\n");
      throw CLI::RuntimeError(2);
    }
    if (!flags->weights.empty() && flags->weights.size() != flags->data.size()) {
      std::fprintf(stderr, "helpline-train text: --weights: give one per --data (%zu), not %zu\n",
                   flags->data.size(), flags->weights.size());
      throw CLI::RuntimeError(2);
    }
    for (double w : flags->weights) {  // before any data is read
      if (!(w >= 0.0) || !std::isfinite(w)) {
        std::fprintf(stderr, "helpline-train text: --weights: %g is not a number >= 0\n", w);
        throw CLI::RuntimeError(2);
      }
    }
    TextOptions options;
    options.split = flags->split;
    options.max_history_turns = flags->max_history;
    options.system_prompt = flags->system_prompt;
    options.placeholders = !flags->no_placeholders;
    options.max_reply_bytes = flags->max_reply_bytes;
    std::vector<TrainingExample> all;
    for (size_t i = 0; i < flags->data.size(); ++i) {
      absl::StatusOr<TextFormat> format = ParseTextFormat(flags->formats[flags->formats.size() == 1 ? 0 : i]);
      absl::StatusOr<std::vector<TrainingExample>> examples =
          format.ok() ? ReadExamples(flags->data[i], *format, options, *flags)
                      : absl::StatusOr<std::vector<TrainingExample>>(format.status());
      if (!examples.ok()) {
        std::fprintf(stderr, "helpline-train text: %s\n", std::string(examples.status().message()).c_str());
        throw CLI::RuntimeError(2);
      }
      const size_t read = examples->size();
      if (!flags->weights.empty()) {
        examples = WeightExamples(*std::move(examples), flags->weights[i]);
        if (!examples.ok()) {
          std::fprintf(stderr, "helpline-train text: --weights for %s: %s\n", flags->data[i].c_str(),
                       std::string(examples.status().message()).c_str());
          throw CLI::RuntimeError(2);
        }
      }
      size_t bytes = 0;
      for (const TrainingExample& e : *examples) bytes += e.prompt.size() + e.reply.size();
      std::fprintf(stderr, "helpline-train text: %s (%s): %zu examples, %zu in the text, %zu bytes\n",
                   flags->data[i].c_str(), std::string(TextFormatName(*format)).c_str(), read,
                   examples->size(), bytes);
      all.insert(all.end(), std::make_move_iterator(examples->begin()), std::make_move_iterator(examples->end()));
    }
    if (absl::Status s = WriteTrainingText(all, flags->out); !s.ok()) {
      std::fprintf(stderr, "helpline-train text: %s\n", std::string(s.message()).c_str());
      throw CLI::RuntimeError(1);
    }
  });
}

}  // namespace helpline::train::cli
