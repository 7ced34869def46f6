// helpline-train nlu: the utterance models of nlu/model (intent classifier + slot tagger) from
// a data set or a domain file's examples, and the dialogue state tracker of nlu/dst from a
// dialogue data set (sgd, multiwoz21). Progress on stderr, the final report on stdout.
// Exit codes: 0 done, 1 unreadable data / training or write failure, 2 bad usage.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/domain/domain.h"
#include "nlohmann/json.hpp"
#include "nlu/data/readers.h"
#include "nlu/dst/dst_model.h"
#include "nlu/model/nlu_model.h"
#include "nlu/model/pretrain.h"
#include "nlu/model/transformer_checkpoint.h"
#include "nlu/model/word_vectors.h"
#include "services/dst/extractors.h"
#include "tools/train/commands.h"
#include "train/dialogue_text.h"

namespace helpline::train::cli {
namespace {

namespace data = nlu::data;
namespace model = nlu::model;

struct NluFlags {
  std::string data_path, format_name, domain_path, dev_path, out_dir;
  model::TrainOptions options;
  nlu::dst::DstTrainOptions dst;
  int epochs = 0;  // 0: the default of the kind of model (15 utterance, 3 dialogue, 1 pretraining)
  std::string init_encoder;                  // utterance models: pretrained encoder folder
  std::string word_vectors;                  // utterance models and trackers: GloVe text file
  size_t word_vectors_max = 50000;
  std::string transformer;  // utterance models: pretrained sentence transformer folder
  std::string transformer_from;  // with transformer: start from the one fine-tuned in this model
  std::vector<std::string> pretrain_corpus;  // FORMAT=PATH: pretrain an encoder instead
  model::PretrainOptions pretrain;
  double pretrain_minutes = 0;
  int threads = 1;  // 2 threads were 50x slower on this loaded 2-core machine (OpenMP spinning)
};

std::string Duration(double seconds) {
  const int s = static_cast<int>(seconds + 0.5);
  return s >= 60 ? absl::StrFormat("%dm%02ds", s / 60, s % 60) : absl::StrFormat("%ds", s);
}

// Draws the bar at most 5 times a second, and always at the last step.
class ProgressBar {
 public:
  explicit ProgressBar(std::string accuracy_name) : accuracy_name_(std::move(accuracy_name)) {}

  void Update(const model::TrainProgress& p) {
    const auto now = std::chrono::steady_clock::now();
    const bool last = p.step == p.steps;
    // ETA over all members (some may train at once): steps done so far vs all steps.
    if (member_steps_.size() != static_cast<size_t>(std::max(1, p.members))) {
      member_steps_.assign(std::max(1, p.members), 0);
    }
    member_steps_[std::clamp(p.member, 0, std::max(1, p.members) - 1)] = p.step;
    if (!last && now - last_draw_ < std::chrono::milliseconds(200)) return;
    last_draw_ = now;
    double done = 0;
    for (size_t steps : member_steps_) done += static_cast<double>(steps);
    const double total = static_cast<double>(p.members * p.steps);
    const double eta = done > 0 ? p.elapsed_seconds * (total - done) / done : 0;
    const int width = 30;
    const int filled = static_cast<int>(width * p.step / std::max<size_t>(1, p.steps));
    std::fprintf(stderr,
                 "\r[model %d/%d] epoch %2d/%d [%s%s] %3d%%  loss %.4f  %s %.3f  elapsed %s  "
                 "ETA %s   ",
                 p.member + 1, p.members, p.epoch, p.epochs, std::string(filled, '#').c_str(),
                 std::string(width - filled, '.').c_str(),
                 static_cast<int>(100 * p.step / std::max<size_t>(1, p.steps)), p.loss,
                 accuracy_name_.c_str(), p.intent_accuracy, Duration(p.elapsed_seconds).c_str(),
                 Duration(eta).c_str());
    if (last) std::fprintf(stderr, "\n");
    std::fflush(stderr);
  }

 private:
  std::string accuracy_name_;
  std::chrono::steady_clock::time_point last_draw_{};
  std::vector<size_t> member_steps_;  // steps done per member
};

// "[AB123456](order_id)" marks a slot value in a domain example: the text keeps "AB123456"
// and gains the span. Returns false (and leaves `out` alone) when a bracket is not closed
// the way the markup wants; the example is then used as written.
bool ParseAnnotated(const std::string& text, data::UtteranceExample& out) {
  std::string plain;
  std::vector<data::SlotSpan> spans;
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] != '[') {
      plain.push_back(text[i++]);
      continue;
    }
    const size_t close = text.find("](", i);
    const size_t end = close == std::string::npos ? close : text.find(')', close);
    if (close == std::string::npos || end == std::string::npos) return false;
    const std::string value = text.substr(i + 1, close - i - 1);
    const std::string slot = text.substr(close + 2, end - close - 2);
    if (value.empty() || slot.empty()) return false;
    spans.push_back({slot, plain.size(), plain.size() + value.size(), value});
    plain += value;
    i = end + 1;
  }
  out.text = plain;
  out.spans = spans;
  return true;
}

struct DomainExamples {
  std::vector<data::UtteranceExample> examples;
  size_t annotated_spans = 0;  // from [value](slot) markup
  size_t extracted_spans = 0;  // found by the domain's typed extractors
};

// A domain's examples as training data: one example per example utterance (every language).
// Slot spans: the example's [value](slot) markup when it has some (gold), else the domain's
// typed extractors (silver labels; free text excluded).
absl::StatusOr<DomainExamples> ExamplesFromDomain(const domain::Domain& d) {
  auto shared = std::make_shared<const domain::Domain>(d);
  dst::SlotExtractor extractor(shared);
  dst::ExtractOptions options;
  options.allow_free_text = false;
  DomainExamples out;
  for (const domain::Intent& intent : d.intents) {
    for (const auto& [language, examples] : intent.examples) {
      for (size_t i = 0; i < examples.size(); ++i) {
        data::UtteranceExample e;
        e.origin =
            absl::StrCat(d.origin, ": intents.", intent.name, ".examples.", language, "[", i, "]");
        e.text = examples[i];
        e.intent = intent.name;
        if (examples[i].find("](") != std::string::npos && ParseAnnotated(examples[i], e)) {
          for (const data::SlotSpan& span : e.spans) {
            if (d.FindSlot(span.slot) == nullptr) {
              return absl::InvalidArgumentError(
                  absl::StrCat(e.origin, ": unknown slot '", span.slot, "' in the markup"));
            }
          }
          out.annotated_spans += e.spans.size();
        } else {
          for (const dst::SlotCandidate& c : extractor.Extract(e.text, options)) {
            e.spans.push_back({c.slot, c.begin, c.end, c.value});
          }
          out.extracted_spans += e.spans.size();
        }
        std::sort(e.spans.begin(), e.spans.end(),
                  [](const auto& a, const auto& b) { return a.begin < b.begin; });
        out.examples.push_back(std::move(e));
      }
    }
  }
  return out;
}

int Fail(absl::string_view message, int code) {
  std::fprintf(stderr, "helpline-train nlu: %s\n", std::string(message).c_str());
  return code;
}

// --word-vectors when given (nullptr when not), its size told on stderr.
absl::StatusOr<std::unique_ptr<model::WordVectors>> LoadWordVectors(const NluFlags& f) {
  if (f.word_vectors.empty()) return nullptr;
  auto read = model::WordVectors::Read(f.word_vectors, f.word_vectors_max);
  if (!read.ok()) {
    return absl::Status(read.status().code(),
                        absl::StrCat("--word-vectors: ", read.status().message()));
  }
  std::fprintf(stderr, "word vectors: %zu words x %lld from %s\n", read->words().size(),
               static_cast<long long>(read->dim()), f.word_vectors.c_str());
  return std::make_unique<model::WordVectors>(*std::move(read));
}

// What the training record keeps of the word vectors.
nlohmann::json WordVectorsRecord(const NluFlags& f, const model::WordVectors& vectors) {
  return {{"file", f.word_vectors}, {"words", vectors.words().size()}, {"dim", vectors.dim()}};
}

// sgd / multiwoz21: the dialogue state tracker.
int RunDialogue(NluFlags& f, data::Format format) {
  if (!f.domain_path.empty()) return Fail("--domain trains utterance models, not a tracker", 2);
  absl::StatusOr<data::DialogueDataset> train =
      data::ReadDialogues(f.data_path, format, {.split = "train"});
  if (!train.ok()) return Fail(train.status().message(), 1);
  f.dst.epochs = f.epochs > 0 ? f.epochs : 3;
  f.dst.seed = f.options.seed;
  f.dst.learning_rate = f.options.learning_rate;
  auto vectors = LoadWordVectors(f);
  if (!vectors.ok()) return Fail(vectors.status().message(), 1);
  f.dst.word_vectors = vectors->get();
  model::SetTorchThreads(f.threads);
  std::fprintf(stderr, "training the tracker on %s (%s, train split): %zu dialogues, %zu services\n",
               train->origin.c_str(), f.format_name.c_str(), train->dialogues.size(),
               train->services.size());
  ProgressBar bar("status acc");
  f.dst.progress = [&bar](const model::TrainProgress& p) { bar.Update(p); };
  nlu::dst::DstTrainReport report;
  auto trained = nlu::dst::DstModel::Train(*train, f.dst, &report);
  if (!trained.ok()) return Fail(trained.status().message(), 1);
  (*trained)->mutable_training()["threads"] = f.threads;
  if (*vectors != nullptr) {
    (*trained)->mutable_training()["word_vectors"] = WordVectorsRecord(f, **vectors);
  }
  if (absl::Status s = (*trained)->Save(f.out_dir); !s.ok()) return Fail(s.message(), 1);
  std::printf("trained the dialogue state tracker on %s (%s, train split)\n", train->origin.c_str(),
              f.format_name.c_str());
  std::printf("  dialogues %zu, user turns %zu, slot decisions %zu\n", report.dialogues,
              report.user_turns, report.slot_instances);
  std::vector<std::string> counts;
  for (const auto& [name, n] : report.status_counts) counts.push_back(absl::StrCat(name, " ", n));
  std::printf("  slot labels: %s\n", absl::StrJoin(counts, ", ").c_str());
  std::printf("  %d epochs, batch %d dialogues, status weight %g, seed %llu, %d thread(s): %s "
              "(preparing %s), final loss %.4f\n",
              f.dst.epochs, f.dst.batch_dialogues, f.dst.status_weight,
              static_cast<unsigned long long>(f.dst.seed),
              f.threads, Duration(report.seconds).c_str(), Duration(report.prepare_seconds).c_str(),
              report.final_loss);
  std::printf("  wrote %s\n", f.out_dir.c_str());
  return 0;
}

// The texts of one FORMAT=PATH corpus: the train split's utterances (banking77, clinc150,
// snips, bitext) or the customer turns of the train split's dialogues (sgd, multiwoz21,
// taskmaster, camrest).
absl::StatusOr<std::vector<std::string>> ReadCorpus(const std::string& spec) {
  const size_t eq = spec.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--pretrain-corpus '", spec, "': expected FORMAT=PATH"));
  }
  const std::string name = spec.substr(0, eq), path = spec.substr(eq + 1);
  std::vector<std::string> texts;
  absl::StatusOr<data::Format> format = data::ParseFormat(name);
  if (format.ok() && !data::IsDialogueFormat(*format)) {
    auto set = data::ReadUtterances(path, *format, {.split = "train"});
    if (!set.ok()) return set.status();
    for (auto& e : set->examples) texts.push_back(std::move(e.text));
    return texts;
  }
  absl::StatusOr<TextFormat> text_format = ParseTextFormat(name);
  if (!text_format.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--pretrain-corpus '", spec,
        "': format must be banking77, clinc150, snips, bitext, sgd, multiwoz21, taskmaster or "
        "camrest"));
  }
  TextOptions options;
  options.split = "train";
  auto dialogues = ReadTextDialogues(path, *text_format, options);
  if (!dialogues.ok()) return dialogues.status();
  for (auto& d : *dialogues) {
    for (auto& turn : d.turns) {
      if (!turn.user.empty()) texts.push_back(std::move(turn.user));
    }
  }
  return texts;
}

// --pretrain-corpus: the encoder of the utterance models, pretrained on unlabeled text.
int RunPretrain(NluFlags& f) {
  std::vector<std::string> texts;
  std::set<std::string> seen;
  nlohmann::json corpora = nlohmann::json::array();
  for (const std::string& spec : f.pretrain_corpus) {
    absl::StatusOr<std::vector<std::string>> corpus = ReadCorpus(spec);
    if (!corpus.ok()) return Fail(corpus.status().message(), 1);
    size_t added = 0;
    for (std::string& t : *corpus) {
      if (seen.insert(t).second) {
        texts.push_back(std::move(t));
        ++added;
      }
    }
    std::fprintf(stderr, "corpus %s: %zu texts, %zu new\n", spec.c_str(), corpus->size(), added);
    corpora.push_back({{"corpus", spec}, {"texts", corpus->size()}, {"new", added}});
  }
  model::PretrainOptions& o = f.pretrain;
  o.epochs = f.epochs > 0 ? f.epochs : 1;
  o.seed = f.options.seed;
  o.learning_rate = f.options.learning_rate;
  o.embedding_dim = f.options.config.embedding_dim;
  o.hidden_dim = f.options.config.hidden_dim;
  o.max_seconds = 60 * f.pretrain_minutes;
  model::SetTorchThreads(f.threads);
  ProgressBar bar("next-word acc");
  o.progress = [&bar](const model::TrainProgress& p) { bar.Update(p); };
  model::PretrainReport report;
  auto encoder = model::PretrainedEncoder::Train(texts, o, &report);
  if (!encoder.ok()) return Fail(encoder.status().message(), 1);
  (*encoder)->training()["corpora"] = corpora;
  (*encoder)->training()["threads"] = f.threads;
  if (absl::Status s = (*encoder)->Save(f.out_dir); !s.ok()) return Fail(s.message(), 1);
  std::printf("pretrained the utterance encoder (forward + backward language model)\n");
  std::printf("  sentences %zu (deduplicated), tokens %zu, vocabulary %zu words, %zu character "
              "n-grams\n",
              report.sentences, report.tokens, report.words, report.char_ngrams);
  std::printf("  %d epoch(s), batch %d, %d negatives, seed %llu, %d thread(s): %s\n", o.epochs,
              o.batch_size, o.negatives, static_cast<unsigned long long>(o.seed), f.threads,
              Duration(report.seconds).c_str());
  std::printf("  steps %zu%s\n", report.steps,
              report.stopped_by_time ? " (stopped by the time budget)" : "");
  std::printf("  sampled-softmax loss: first epoch %.4f, last epoch %.4f\n",
              report.first_epoch_loss, report.final_epoch_loss);
  std::printf("  wrote %s\n", f.out_dir.c_str());
  return 0;
}

int RunUtterance(NluFlags& f) {
  std::vector<data::UtteranceExample> train, dev;
  std::string oos_label, source;
  std::vector<std::string> slot_types;
  std::string domain_note;
  if (!f.domain_path.empty()) {
    absl::StatusOr<domain::Domain> d = domain::LoadDomainFile(f.domain_path);
    if (!d.ok()) return Fail(d.status().message(), 1);
    absl::StatusOr<DomainExamples> examples = ExamplesFromDomain(*d);
    if (!examples.ok()) return Fail(examples.status().message(), 1);
    train = std::move(examples->examples);
    for (const domain::Slot& slot : d->slots) slot_types.push_back(slot.name);
    source = absl::StrCat("domain ", f.domain_path);
    if (examples->annotated_spans + examples->extracted_spans == 0) {
      domain_note =
          "no example carries a slot value ([value](slot) markup or a value the extractors "
          "find): the intent classifier is trained, the slot tagger learns nothing";
    } else {
      domain_note = absl::StrFormat(
          "slot spans: %zu annotated ([value](slot)), %zu found by the typed extractors (silver)",
          examples->annotated_spans, examples->extracted_spans);
    }
  } else {
    absl::StatusOr<data::Format> format = data::ParseFormat(f.format_name);
    auto train_set = data::ReadUtterances(f.data_path, *format, {.split = "train"});
    if (!train_set.ok()) return Fail(train_set.status().message(), 1);
    train = std::move(train_set->examples);
    oos_label = train_set->oos_label;
    auto dev_set = data::ReadUtterances(f.dev_path.empty() ? f.data_path : f.dev_path, *format,
                                        {.split = "dev"});
    if (dev_set.ok()) {
      dev = std::move(dev_set->examples);
      f.dev_path = dev_set->origin + " (" + dev_set->split + ")";
    } else if (!f.dev_path.empty() || dev_set.status().code() != absl::StatusCode::kNotFound) {
      return Fail(dev_set.status().message(), 1);
    }
    source = absl::StrCat(train_set->origin, " (", f.format_name, ", train split)");
  }
  model::TrainOptions& options = f.options;
  options.epochs = f.epochs > 0 ? f.epochs : 15;
  std::unique_ptr<model::PretrainedEncoder> encoder;
  if (!f.init_encoder.empty()) {
    auto loaded = model::PretrainedEncoder::Load(f.init_encoder);
    if (!loaded.ok()) return Fail(loaded.status().message(), 1);
    encoder = *std::move(loaded);
    options.init_encoder = encoder.get();
    std::fprintf(stderr, "encoder initialised from %s (%lld words, %lld character n-grams)\n",
                 f.init_encoder.c_str(), static_cast<long long>(encoder->featurizer().num_words()),
                 static_cast<long long>(encoder->featurizer().num_char_ngrams()));
  }
  auto loaded_vectors = LoadWordVectors(f);
  if (!loaded_vectors.ok()) return Fail(loaded_vectors.status().message(), 1);
  std::unique_ptr<model::WordVectors> vectors = *std::move(loaded_vectors);
  options.word_vectors = vectors.get();
  std::unique_ptr<model::TransformerCheckpoint> transformer;
  if (f.transformer.empty() && (options.transformer_bf16 || options.transformer_bf16_inference ||
                                !f.transformer_from.empty())) {
    return Fail(
        "--transformer-bf16, --transformer-bf16-inference and --transformer-from need "
        "--transformer",
        2);
  }
  if (options.transformer_bf16_inference && options.distill &&
      options.distill_without_transformer) {
    return Fail(
        "--transformer-bf16-inference: the student of --distill-without-transformer has no "
        "transformer",
        2);
  }
  if (!f.transformer.empty()) {
    auto read = model::TransformerCheckpoint::Read(f.transformer);
    if (!read.ok()) return Fail(absl::StrCat("--transformer: ", read.status().message()), 1);
    transformer = std::make_unique<model::TransformerCheckpoint>(*std::move(read));
    if (!f.transformer_from.empty()) {
      if (absl::Status s = model::TakeFineTunedTransformer(f.transformer_from, *transformer);
          !s.ok()) {
        return Fail(absl::StrCat("--transformer-from: ", s.message()), 1);
      }
      std::fprintf(stderr, "transformer weights from the model %s\n", f.transformer_from.c_str());
    }
    options.transformer = transformer.get();
    std::fprintf(stderr, "transformer from %s (%lld pieces, width %lld/%lld), fine-tuned at %g\n",
                 f.transformer.c_str(), static_cast<long long>(transformer->pieces.size()),
                 static_cast<long long>(transformer->embedding_dim),
                 static_cast<long long>(transformer->hidden_dim),
                 options.transformer_learning_rate);
  }
  // Ensemble members train side by side, one libtorch thread each, as far as --threads goes.
  options.parallel_members = std::max(1, std::min(f.threads, options.config.ensemble));
  model::SetTorchThreads(std::max(1, f.threads / options.parallel_members));
  std::fprintf(stderr, "training on %s: %zu examples; calibration on %s\n", source.c_str(),
               train.size(), dev.empty() ? "a tenth of the training data" : f.dev_path.c_str());
  if (!domain_note.empty()) std::fprintf(stderr, "%s\n", domain_note.c_str());
  ProgressBar bar("acc");
  options.progress = [&bar](const model::TrainProgress& p) { bar.Update(p); };
  model::TrainReport report;
  auto trained = model::NluModel::Train(train, dev, oos_label, slot_types, options, &report);
  if (!trained.ok()) return Fail(trained.status().message(), 1);
  model::NluModelInfo& info = (*trained)->mutable_info();
  info.training = {
      {"source", source},
      {"calibration", dev.empty() ? "held-out tenth of the training data" : f.dev_path},
      {"examples", train.size()},
      {"seed", options.seed},
      {"epochs", options.epochs},
      {"batch_size", options.batch_size},
      {"learning_rate", options.learning_rate},
      {"threads", f.threads},
      {"seconds", report.seconds},
      {"dev_metrics", report.dev_metrics},
      {"dev_nll_before_calibration", report.dev_nll_before},
      {"dev_nll_after_calibration", report.dev_nll_after},
      {"label_smoothing", options.label_smoothing},
      {"rdrop", options.rdrop},
      {"length_buckets", options.length_buckets},
  };
  if (options.distill) {
    info.training["distilled_from_members"] = options.config.ensemble;
    info.training["student_epochs"] =
        options.student_epochs > 0 ? options.student_epochs : options.epochs;
    if (transformer != nullptr) {
      info.training["student_has_transformer"] = !options.distill_without_transformer;
    }
    if (options.transfer_copies > 0) {
      info.training["transfer_set"] = {{"copies_per_utterance", options.transfer_copies},
                                       {"drop", options.transfer_drop},
                                       {"copies", report.transfer_copies}};
    }
  }
  if (vectors != nullptr) {
    info.training["word_vectors"] = WordVectorsRecord(f, *vectors);
  }
  if (transformer != nullptr) {
    info.training["transformer"] = {{"dir", f.transformer},
                                    {"learning_rate", options.transformer_learning_rate}};
    if (!f.transformer_from.empty()) {
      info.training["transformer"]["weights_from_model"] = f.transformer_from;
    }
  }
  if (encoder != nullptr) {
    info.training["init_encoder"] = {{"dir", f.init_encoder},
                                     {"extend_vocabulary", options.extend_vocabulary},
                                     {"training", encoder->training()}};
  }
  if (!domain_note.empty()) info.training["slots"] = domain_note;
  if (absl::Status s = (*trained)->Save(f.out_dir); !s.ok()) return Fail(s.message(), 1);
  std::printf("trained on %s\n", source.c_str());
  std::printf("  examples %zu, intents %zu%s, slot types %zu (%s)\n", train.size(),
              info.intents.size(),
              oos_label.empty() ? "" : absl::StrCat(" (incl. '", oos_label, "')").c_str(),
              info.slot_types.size(), absl::StrJoin(info.slot_types, ", ").c_str());
  if (!domain_note.empty()) std::printf("  %s\n", domain_note.c_str());
  if (encoder != nullptr) std::printf("  encoder initialised from %s\n", f.init_encoder.c_str());
  if (options.transfer_copies > 0) {
    std::printf("  student's transfer set: %zu altered copies labelled by the teachers\n",
                report.transfer_copies);
  }
  std::printf("  ensemble %d x BiGRU %lld%s%s, %d epochs, seed %llu, %d thread(s): %s\n",
              info.config.ensemble, static_cast<long long>(info.config.hidden_dim),
              info.config.crf ? ", CRF tagger" : "",
              options.distill
                  ? absl::StrCat(", distilled from ", options.config.ensemble, " members").c_str()
                  : "",
              options.epochs, static_cast<unsigned long long>(options.seed), f.threads,
              Duration(report.seconds).c_str());
  std::printf(
      "  calibration: temperature %.2f (dev NLL %.4f -> %.4f), out-of-scope threshold %.4f\n",
      info.temperature, report.dev_nll_before, report.dev_nll_after, info.oos_threshold);
  for (const auto& [name, value] : report.dev_metrics) {
    std::printf("  dev %-18s %.2f%%\n", name.c_str(), 100 * value);
  }
  std::printf("  wrote %s\n", f.out_dir.c_str());
  return 0;
}

int RunNlu(NluFlags& f) {
  if (!f.pretrain_corpus.empty()) {
    if (!f.data_path.empty() || !f.domain_path.empty() || !f.init_encoder.empty() ||
        !f.transformer.empty()) {
      return Fail(
          "--pretrain-corpus pretrains an encoder: no --data, --domain, --init-encoder or "
          "--transformer",
          2);
    }
    return RunPretrain(f);
  }
  if (f.domain_path.empty() == f.data_path.empty()) {
    return Fail("give either --data PATH --format F or --domain FILE", 2);
  }
  if (!f.data_path.empty()) {
    if (f.format_name.empty()) return Fail("--data needs --format", 2);
    absl::StatusOr<data::Format> format = data::ParseFormat(f.format_name);
    if (!format.ok()) return Fail(absl::StrCat("--format: ", format.status().message()), 2);
    if (data::IsDialogueFormat(*format)) {
      if (!f.transformer.empty()) {
        return Fail("--transformer serves utterance models only, not the dialogue state tracker",
                    2);
      }
      return RunDialogue(f, *format);
    }
  }
  return RunUtterance(f);
}

}  // namespace

void AddNluCommand(CLI::App& app) {
  auto f = std::make_shared<NluFlags>();
  CLI::App* cmd = app.add_subcommand(
      "nlu",
      "intent classifier + slot tagger (banking77, clinc150, snips, bitext, or --domain), or the "
      "dialogue state tracker (sgd, multiwoz21); writes a model folder");
  cmd->add_option("--data", f->data_path,
                  "data set file or folder (its train split; utterance data: the dev split "
                  "calibrates when present)");
  cmd->add_option("--format", f->format_name,
                  "banking77 | clinc150 | snips | bitext | sgd | multiwoz21");
  cmd->add_option("--domain", f->domain_path,
                  "train the utterance model from a domain file's examples instead");
  cmd->add_option("--dev", f->dev_path,
                  "calibration data of utterance models (default: the dev split of --data, else "
                  "a tenth of the training data held out)");
  cmd->add_option("--out", f->out_dir, "model (or encoder) folder to write")->required();
  cmd->add_option("--seed", f->options.seed, "random seed")->capture_default_str();
  cmd->add_option("--epochs", f->epochs, "epochs (default 15 utterance models, 3 trackers)");
  cmd->add_option("--batch-size", f->options.batch_size, "utterances per batch")
      ->capture_default_str();
  cmd->add_option("--batch-dialogues", f->dst.batch_dialogues, "tracker: dialogues per batch")
      ->capture_default_str();
  cmd->add_option("--lr", f->options.learning_rate, "Adam learning rate (decays linearly to 0)")
      ->capture_default_str();
  cmd->add_option("--threads", f->threads,
                  "libtorch threads (utterance models with --ensemble N: up to N members train "
                  "at once, one thread each; the weights are the same)")
      ->capture_default_str();
  cmd->add_option("--ensemble", f->options.config.ensemble, "utterance models averaged")
      ->capture_default_str();
  cmd->add_option("--embedding-dim", f->options.config.embedding_dim)->capture_default_str();
  cmd->add_option("--hidden-dim", f->options.config.hidden_dim, "BiGRU size per direction")
      ->capture_default_str();
  cmd->add_option("--sentence-dim", f->options.config.sentence_dim)->capture_default_str();
  cmd->add_option("--dropout", f->options.config.dropout)->capture_default_str();
  cmd->add_option("--word-dropout", f->options.config.word_dropout)->capture_default_str();
  cmd->add_option("--word-vectors", f->word_vectors,
                  "pretrained word vectors (utterance models and trackers), GloVe text format "
                  "(word v1 v2 ...; "
                  "scripts/fetch-word-vectors writes one); frozen, projected, beside the trained "
                  "embedding");
  cmd->add_option("--word-vectors-max", f->word_vectors_max,
                  "with --word-vectors: the first (most frequent) N words join the vocabulary "
                  "(0: all)")
      ->capture_default_str();
  cmd->add_option("--transformer", f->transformer,
                  "utterance models: fine-tune this pretrained sentence-piece transformer inside "
                  "every member (scripts/fetch-sentence-encoder writes one)");
  cmd->add_option("--transformer-from", f->transformer_from,
                  "with --transformer: start from the transformer fine-tuned inside this utterance "
                  "model folder (trained from the same checkpoint, e.g. on another data set) "
                  "instead of the checkpoint's weights");
  cmd->add_option("--transformer-lr", f->options.transformer_learning_rate,
                  "with --transformer: its Adam learning rate (decays linearly to 0)")
      ->capture_default_str();
  cmd->add_option("--transformer-bf16", f->options.transformer_bf16,
                  "with --transformer: train its matrix products in bfloat16 (autocast)")
      ->capture_default_str();
  cmd->add_option("--transformer-bf16-inference", f->options.transformer_bf16_inference,
                  "with --transformer: the model runs its linear maps in bfloat16 (one "
                  "utterance off libtorch: ~0.9-1.2 ms for 20 words on a core with AVX-512 BF16 "
                  "against ~4.7 in float32; the folder keeps float32 weights)")
      ->capture_default_str();
  cmd->add_option("--distill", f->options.distill,
                  "utterance models: the --ensemble members teach one student (their softened "
                  "intent probabilities + the gold labels); the folder holds the student only")
      ->capture_default_str();
  cmd->add_option("--distill-without-transformer", f->options.distill_without_transformer,
                  "with --distill and --transformer: the student has no transformer (the "
                  "members, its teachers, do)")
      ->capture_default_str();
  cmd->add_option("--student-epochs", f->options.student_epochs,
                  "with --distill: the student's epochs (0: --epochs)")
      ->capture_default_str();
  cmd->add_option("--transfer-copies", f->options.transfer_copies,
                  "with --distill, intent data: up to N altered copies of every training "
                  "utterance (word windows, dropped words), labelled by the teachers, join the "
                  "student's training set")
      ->capture_default_str();
  cmd->add_option("--transfer-drop", f->options.transfer_drop,
                  "with --transfer-copies: the probability that a copy drops each word")
      ->capture_default_str();
  cmd->add_option("--length-buckets", f->options.length_buckets,
                  "utterance models: batches of utterances of similar length (less padding; "
                  "faster, above all with --transformer)")
      ->capture_default_str();
  cmd->add_option("--crf", f->options.config.crf,
                  "utterance models: slot tagger with a linear-chain CRF (learned tag bigrams, "
                  "sequence likelihood) instead of per-token softmax")
      ->capture_default_str();
  cmd->add_option("--oos-recall-target", f->options.oos_recall_target,
                  "data with an out-of-scope class: threshold = best in-scope dev accuracy with "
                  "at least this OOS recall")
      ->capture_default_str();
  cmd->add_option("--label-smoothing", f->options.label_smoothing,
                  "utterance models: label smoothing of the intent loss")
      ->capture_default_str();
  cmd->add_option("--rdrop", f->options.rdrop,
                  "utterance models: R-Drop weight (each batch twice, symmetric KL between the "
                  "copies' intent and tag distributions; 0: off; ~1.3x the time per epoch)")
      ->capture_default_str();
  cmd->add_option("--init-encoder", f->init_encoder,
                  "utterance models: start from a pretrained encoder folder (--pretrain-corpus)");
  cmd->add_option("--extend-vocabulary", f->options.extend_vocabulary,
                  "with --init-encoder: add the encoder's words and character n-grams to the "
                  "vocabulary (true), or keep the training texts' and copy the shared rows (false)")
      ->capture_default_str();
  cmd->add_option("--pretrain-corpus", f->pretrain_corpus,
                  "pretrain the utterance encoder instead (forward + backward language model) on "
                  "FORMAT=PATH corpora (repeatable; train splits: utterances of banking77, "
                  "clinc150, snips, bitext; customer turns of sgd, multiwoz21, taskmaster, "
                  "camrest); --epochs defaults to 1");
  cmd->add_option("--pretrain-batch-size", f->pretrain.batch_size)->capture_default_str();
  cmd->add_option("--pretrain-negatives", f->pretrain.negatives,
                  "sampled softmax: words drawn per step")
      ->capture_default_str();
  cmd->add_option("--pretrain-max-words", f->pretrain.max_words, "encoder vocabulary: words")
      ->capture_default_str();
  cmd->add_option("--pretrain-max-char-ngrams", f->pretrain.max_char_ngrams,
                  "encoder vocabulary: character n-grams")
      ->capture_default_str();
  cmd->add_option("--pretrain-min-count", f->pretrain.min_count)->capture_default_str();
  cmd->add_option("--pretrain-dropout", f->pretrain.dropout)->capture_default_str();
  cmd->add_option("--pretrain-minutes", f->pretrain_minutes,
                  "time budget of the pretraining (0: none; the learning rate decays with the "
                  "larger of the step and the time fraction)")
      ->capture_default_str();
  cmd->add_option("--max-dialogues", f->dst.max_dialogues,
                  "tracker: train on at most N dialogues, spread evenly (0: all)")
      ->capture_default_str();
  cmd->add_option("--dst-hidden-dim", f->dst.config.hidden_dim,
                  "tracker: utterance BiGRU size per direction (model dimension = twice it)")
      ->capture_default_str();
  cmd->add_option("--dst-status-weight", f->dst.status_weight,
                  "tracker: weight of the statuses other than 'none' in the status loss")
      ->capture_default_str();
  cmd->final_callback([f] {
    const int code = RunNlu(*f);
    if (code != 0) throw CLI::RuntimeError(code);
  });
}

}  // namespace helpline::train::cli
