#include "tools/train_nlu/train_nlu.h"

#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/domain/domain.h"
#include "nlohmann/json.hpp"
#include "nlu/data/readers.h"
#include "nlu/model/nlu_model.h"
#include "services/dst/extractors.h"

namespace helpline::tools {
namespace {

namespace data = nlu::data;
namespace model = nlu::model;

std::string Duration(double seconds) {
  const int s = static_cast<int>(seconds + 0.5);
  return s >= 60 ? absl::StrFormat("%dm%02ds", s / 60, s % 60) : absl::StrFormat("%ds", s);
}

// Draws the bar at most 5 times a second, and always at the last step.
class ProgressBar {
 public:
  void Update(const model::TrainProgress& p) {
    const auto now = std::chrono::steady_clock::now();
    const bool last = p.step == p.steps;
    if (!last && now - last_draw_ < std::chrono::milliseconds(200)) return;
    last_draw_ = now;
    // ETA over all members: steps done so far vs all steps.
    const double done = static_cast<double>(p.member * p.steps + p.step);
    const double total = static_cast<double>(p.members * p.steps);
    const double eta = done > 0 ? p.elapsed_seconds * (total - done) / done : 0;
    const int width = 30;
    const int filled = static_cast<int>(width * p.step / std::max<size_t>(1, p.steps));
    std::fprintf(stderr,
                 "\r[model %d/%d] epoch %2d/%d [%s%s] %3d%%  loss %.4f  acc %.3f  elapsed %s  "
                 "ETA %s   ",
                 p.member + 1, p.members, p.epoch, p.epochs, std::string(filled, '#').c_str(),
                 std::string(width - filled, '.').c_str(),
                 static_cast<int>(100 * p.step / std::max<size_t>(1, p.steps)), p.loss,
                 p.intent_accuracy, Duration(p.elapsed_seconds).c_str(), Duration(eta).c_str());
    if (last) std::fprintf(stderr, "\n");
    std::fflush(stderr);
  }

 private:
  std::chrono::steady_clock::time_point last_draw_{};
};

// A domain's examples as training data: one example per example utterance (every language),
// slot spans found by the domain's typed extractors (silver labels; most examples have none).
std::vector<data::UtteranceExample> ExamplesFromDomain(const domain::Domain& d) {
  auto shared = std::make_shared<const domain::Domain>(d);
  dst::SlotExtractor extractor(shared);
  dst::ExtractOptions options;
  options.allow_free_text = false;
  std::vector<data::UtteranceExample> out;
  for (const domain::Intent& intent : d.intents) {
    for (const auto& [language, examples] : intent.examples) {
      for (size_t i = 0; i < examples.size(); ++i) {
        data::UtteranceExample e;
        e.origin =
            absl::StrCat(d.origin, ": intents.", intent.name, ".examples.", language, "[", i, "]");
        e.text = examples[i];
        e.intent = intent.name;
        for (const dst::SlotCandidate& c : extractor.Extract(e.text, options)) {
          e.spans.push_back({c.slot, c.begin, c.end, c.value});
        }
        std::sort(e.spans.begin(), e.spans.end(),
                  [](const auto& a, const auto& b) { return a.begin < b.begin; });
        out.push_back(std::move(e));
      }
    }
  }
  return out;
}

}  // namespace

int RunTrainNlu(int argc, char** argv) {
  CLI::App app{"Trains the intent classifier + slot tagger (nlu/model) and writes a model folder"};
  std::string data_path, format_name, domain_path, dev_path, out_dir;
  model::TrainOptions options;
  int threads = 1;  // 2 threads were 50x slower on this loaded 2-core machine (OpenMP spinning)
  app.add_option("--data", data_path,
                 "data set file or folder (its train split; dev split for "
                 "calibration when present)");
  app.add_option("--format", format_name, "banking77 | clinc150 | snips | bitext");
  app.add_option("--domain", domain_path, "train from a domain file's examples instead");
  app.add_option("--dev", dev_path,
                 "calibration data (default: the dev split of --data, else "
                 "a tenth of the training data held out)");
  app.add_option("--out", out_dir, "model folder to write")->required();
  app.add_option("--seed", options.seed, "random seed")->capture_default_str();
  app.add_option("--epochs", options.epochs, "epochs")->capture_default_str();
  app.add_option("--batch-size", options.batch_size, "batch size")->capture_default_str();
  app.add_option("--lr", options.learning_rate, "Adam learning rate (decays linearly to 0)")
      ->capture_default_str();
  app.add_option("--threads", threads, "libtorch threads")->capture_default_str();
  app.add_option("--ensemble", options.config.ensemble, "models averaged")->capture_default_str();
  app.add_option("--embedding-dim", options.config.embedding_dim)->capture_default_str();
  app.add_option("--hidden-dim", options.config.hidden_dim, "BiGRU size per direction")
      ->capture_default_str();
  app.add_option("--sentence-dim", options.config.sentence_dim)->capture_default_str();
  app.add_option("--dropout", options.config.dropout)->capture_default_str();
  app.add_option("--word-dropout", options.config.word_dropout)->capture_default_str();
  app.add_option("--oos-recall-target", options.oos_recall_target,
                 "data with an out-of-scope class: threshold = best in-scope dev accuracy with "
                 "at least this OOS recall")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  if (domain_path.empty() == data_path.empty()) {
    std::fprintf(stderr, "give either --data PATH --format F or --domain FILE\n");
    return 2;
  }
  std::vector<data::UtteranceExample> train, dev;
  std::string oos_label, source;
  std::vector<std::string> slot_types;
  std::string slot_metric_name = "slot_f1";
  if (!domain_path.empty()) {
    absl::StatusOr<domain::Domain> d = domain::LoadDomainFile(domain_path);
    if (!d.ok()) {
      std::fprintf(stderr, "%s\n", std::string(d.status().message()).c_str());
      return 1;
    }
    train = ExamplesFromDomain(*d);
    for (const domain::Slot& slot : d->slots) slot_types.push_back(slot.name);
    source = absl::StrCat("domain ", domain_path);
  } else {
    absl::StatusOr<data::Format> format = data::ParseFormat(format_name);
    if (!format.ok() || data::IsDialogueFormat(*format)) {
      std::fprintf(stderr, "--format: %s\n",
                   format.ok() ? "a dialogue format; helpline-train-nlu trains utterance models"
                               : std::string(format.status().message()).c_str());
      return 2;
    }
    auto train_set = data::ReadUtterances(data_path, *format, {.split = "train"});
    if (!train_set.ok()) {
      std::fprintf(stderr, "%s\n", std::string(train_set.status().message()).c_str());
      return 1;
    }
    train = std::move(train_set->examples);
    oos_label = train_set->oos_label;
    auto dev_set =
        data::ReadUtterances(dev_path.empty() ? data_path : dev_path, *format, {.split = "dev"});
    if (dev_set.ok()) {
      dev = std::move(dev_set->examples);
      dev_path = dev_set->origin + " (" + dev_set->split + ")";
    } else if (!dev_path.empty() || dev_set.status().code() != absl::StatusCode::kNotFound) {
      std::fprintf(stderr, "%s\n", std::string(dev_set.status().message()).c_str());
      return 1;
    }
    source = absl::StrCat(train_set->origin, " (", format_name, ", train split)");
  }
  model::SetTorchThreads(threads);
  std::fprintf(stderr, "training on %s: %zu examples; calibration on %s\n", source.c_str(),
               train.size(), dev.empty() ? "a tenth of the training data" : dev_path.c_str());
  ProgressBar bar;
  options.progress = [&bar](const model::TrainProgress& p) { bar.Update(p); };
  model::TrainReport report;
  auto trained = model::NluModel::Train(train, dev, oos_label, slot_types, options, &report);
  if (!trained.ok()) {
    std::fprintf(stderr, "training failed: %s\n", std::string(trained.status().message()).c_str());
    return 1;
  }
  model::NluModelInfo& info = (*trained)->mutable_info();
  info.training = {
      {"source", source},
      {"calibration", dev.empty() ? "held-out tenth of the training data" : dev_path},
      {"examples", train.size()},
      {"seed", options.seed},
      {"epochs", options.epochs},
      {"batch_size", options.batch_size},
      {"learning_rate", options.learning_rate},
      {"threads", threads},
      {"seconds", report.seconds},
      {"dev_metrics", report.dev_metrics},
      {"dev_nll_before_calibration", report.dev_nll_before},
      {"dev_nll_after_calibration", report.dev_nll_after},
  };
  if (absl::Status s = (*trained)->Save(out_dir); !s.ok()) {
    std::fprintf(stderr, "%s\n", std::string(s.message()).c_str());
    return 1;
  }
  std::printf("trained on %s\n", source.c_str());
  std::printf("  examples %zu, intents %zu%s, slot types %zu (%s)\n", train.size(),
              info.intents.size(),
              oos_label.empty() ? "" : absl::StrCat(" (incl. '", oos_label, "')").c_str(),
              info.slot_types.size(), absl::StrJoin(info.slot_types, ", ").c_str());
  std::printf("  ensemble %d x BiGRU %lld, %d epochs, seed %llu, %d thread(s): %s\n",
              info.config.ensemble, static_cast<long long>(info.config.hidden_dim), options.epochs,
              static_cast<unsigned long long>(options.seed), threads,
              Duration(report.seconds).c_str());
  std::printf(
      "  calibration: temperature %.2f (dev NLL %.4f -> %.4f), out-of-scope threshold %.4f\n",
      info.temperature, report.dev_nll_before, report.dev_nll_after, info.oos_threshold);
  for (const auto& [name, value] : report.dev_metrics) {
    std::printf("  dev %-18s %.2f%%\n", name.c_str(), 100 * value);
  }
  std::printf("  wrote %s\n", out_dir.c_str());
  return 0;
}

}  // namespace helpline::tools
