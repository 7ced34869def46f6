// helpline-eval: scores an intent / slot model or a dialogue state tracker on a public data
// set and prints the metrics; --report writes them as one flat JSON object.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <set>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/strings/str_format.h"
#include "nlu/data/readers.h"
#include "tools/eval/evaluate.h"
#include "tools/eval/generation_eval.h"
#include "tools/eval/model_loader.h"
#include "tools/eval/rule_predictor.h"

namespace helpline::eval {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

int Fail(const absl::Status& status, int code) {
  std::cerr << "helpline-eval: " << status.message() << "\n";
  return code;
}

struct Args {
  std::string mode;
  std::string model;
  std::string data;
  std::string format;
  std::string train;
  std::string split;
  std::string report;
  size_t limit = 0;
  bool quiet = false;
  // dst with --model rule: the learned tracker fused into the rule tracker (the service's).
  std::string dialogue_model;
  // With dialogue_model: rules (default), learned-intent, learned-values, learned (both).
  std::string fusion = "rules";
};

// Reads the training split: --train, or (--model rule, or dst) the train split of a --data folder.
template <typename Dataset, typename ReadFn>
absl::StatusOr<std::unique_ptr<Dataset>> ReadTrain(const Args& args, const Dataset& eval,
                                                   ReadFn read) {
  std::string path = args.train;
  if (path.empty()) {
    std::error_code ec;
    if ((args.model != "rule" && args.mode != "dst") || !std::filesystem::is_directory(args.data, ec)) return nullptr;
    path = args.data;
  }
  absl::StatusOr<Dataset> train = read(path, data::ReadOptions{"train"});
  if (!train.ok()) {
    if (args.train.empty()) return nullptr;  // The folder has no train split: fine.
    return train.status();
  }
  if (train->origin == eval.origin && train->split == eval.split) {
    return absl::InvalidArgumentError(
        absl::StrCat("the training data (", train->origin, ") is the evaluated data"));
  }
  return std::make_unique<Dataset>(*std::move(train));
}

int Run(const Args& args) {
  absl::StatusOr<data::Format> format = data::ParseFormat(args.format);
  if (!format.ok()) return Fail(format.status(), 2);
  const bool dialogue = data::IsDialogueFormat(*format);
  if (!args.dialogue_model.empty() && (args.mode != "dst" || args.model != "rule")) {
    return Fail(absl::InvalidArgumentError(
                    "--dialogue-model fuses a learned tracker into the rule tracker: use it "
                    "with 'helpline-eval dst --model rule'"),
                2);
  }
  if (dialogue != (args.mode == "dst")) {
    return Fail(absl::InvalidArgumentError(absl::StrCat(
                    args.format, " is ", dialogue ? "a dialogue" : "an utterance",
                    " data set: use 'helpline-eval ", dialogue ? "dst" : "nlu", "'")),
                2);
  }
  std::ostream* progress = args.quiet ? nullptr : &std::cerr;
  EvalOptions options;
  options.limit = args.limit;
  options.progress = progress;
  absl::StatusOr<EvalResult> result;
  std::string header;
  double read_seconds = 0;
  double build_seconds = 0;
  Clock::time_point start = Clock::now();
  if (!dialogue) {
    auto read = [&](const std::string& path, const data::ReadOptions& o) {
      return data::ReadUtterances(path, *format, o);
    };
    absl::StatusOr<data::UtteranceDataset> eval = read(args.data, data::ReadOptions{args.split});
    if (!eval.ok()) return Fail(eval.status(), 1);
    absl::StatusOr<std::unique_ptr<data::UtteranceDataset>> train = ReadTrain(args, *eval, read);
    if (!train.ok()) return Fail(train.status(), 1);
    read_seconds = SecondsSince(start);
    start = Clock::now();
    absl::StatusOr<std::unique_ptr<UtterancePredictor>> predictor =
        LoadUtterancePredictor(args.model, train->get(), *eval);
    if (!predictor.ok()) return Fail(predictor.status(), 1);
    build_seconds = SecondsSince(start);
    header = absl::StrFormat("data:  %s (%s, split %s, %zu utterances)\nmodel: %s\n", eval->origin,
                             eval->format, eval->split.empty() ? "?" : eval->split,
                             eval->examples.size(), (*predictor)->Describe());
    if (progress) *progress << header << std::flush;
    result = EvaluateUtterances(**predictor, *eval, options);
  } else {
    auto read = [&](const std::string& path, const data::ReadOptions& o) {
      return data::ReadDialogues(path, *format, o);
    };
    absl::StatusOr<data::DialogueDataset> eval = read(args.data, data::ReadOptions{args.split});
    if (!eval.ok()) return Fail(eval.status(), 1);
    absl::StatusOr<std::unique_ptr<data::DialogueDataset>> train = ReadTrain(args, *eval, read);
    if (!train.ok()) return Fail(train.status(), 1);
    read_seconds = SecondsSince(start);
    std::set<std::string> seen;
    if (*train != nullptr && eval->format == "sgd") {
      for (const data::ServiceSchema& s : (*train)->services) seen.insert(s.name);
    }
    start = Clock::now();
    absl::StatusOr<std::unique_ptr<DialoguePredictor>> predictor =
        args.dialogue_model.empty()
            ? LoadDialoguePredictor(args.model, train->get(), *eval)
            : MakeFusedDialoguePredictor(
                  args.dialogue_model, *eval, train->get(),
                  {args.fusion == "learned" || args.fusion == "learned-intent",
                   args.fusion == "learned" || args.fusion == "learned-values"});
    if (!predictor.ok()) return Fail(predictor.status(), 1);
    build_seconds = SecondsSince(start);
    header = absl::StrFormat("data:  %s (%s, split %s, %zu dialogues)\nmodel: %s\n", eval->origin,
                             eval->format, eval->split.empty() ? "?" : eval->split,
                             eval->dialogues.size(), (*predictor)->Describe());
    if (!seen.empty()) {
      header += absl::StrFormat("seen services: those of %s (%zu)\n", (*train)->origin,
                                (*train)->services.size());
    }
    if (progress) *progress << header << std::flush;
    result = EvaluateDialogues(**predictor, *eval, seen, options);
  }
  if (!result.ok()) return Fail(result.status(), 1);
  std::cout << header;
  if (args.limit > 0) std::cout << "limit: " << args.limit << " (spread evenly)\n";
  std::cout << FormatTable(*result)
            << absl::StrFormat("read %.1f s, model build %.1f s\n", read_seconds, build_seconds);
  if (!args.report.empty()) {
    std::ofstream out(args.report);
    out << ReportJson(result->metrics);
    out.close();
    if (!out) {
      return Fail(absl::UnavailableError(absl::StrCat(args.report, ": cannot write the report")),
                  1);
    }
  }
  return 0;
}

}  // namespace
}  // namespace helpline::eval

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "generation") {
    return helpline::eval::RunGenerationEval(argc - 1, argv + 1);
  }
  helpline::eval::Args args;
  CLI::App app{"helpline-eval: score an NLU model or a dialogue state tracker on a data set"};
  app.add_option("mode", args.mode, "nlu (utterance data sets) or dst (dialogue data sets)")
      ->required()
      ->check(CLI::IsMember({"nlu", "dst"}));
  app.add_option("--model", args.model,
                 "'rule' (the rule-based tracker, domain built from the training split) or a "
                 "domain file (*.yaml)")
      ->required();
  app.add_option("--data", args.data, "data set file or folder (gzip files are read as well)")
      ->required();
  app.add_option("--format", args.format, "banking77, clinc150, snips, bitext, sgd, multiwoz21")
      ->required();
  app.add_option("--train", args.train,
                 "training split (file or folder): the rule model's domain; SGD seen services "
                 "(default for --model rule: the train split of a --data folder)");
  app.add_option("--split", args.split,
                 "split of --data to evaluate: train, dev, test (default: test, else dev)");
  app.add_option("--report", args.report, "write the metrics to this file as one JSON object");
  app.add_option("--limit", args.limit,
                 "evaluate at most N utterances / dialogues, spread evenly (0: all)");
  app.add_flag("--quiet", args.quiet, "no progress on stderr");
  app.add_option("--dialogue-model", args.dialogue_model,
                 "dst with --model rule: fuse this learned tracker folder (dst_model.json) "
                 "into the rule tracker, as helpline-dst's dialogue_model_dir does");
  app.add_option("--fusion", args.fusion,
                 "with --dialogue-model, who wins where both found something: rules "
                 "(default), learned-intent, learned-values, learned (both; helpline-dst's "
                 "dialogue_model_first)")
      ->check(CLI::IsMember({"rules", "learned-intent", "learned-values", "learned"}));
  CLI11_PARSE(app, argc, argv);
  return helpline::eval::Run(args);
}
