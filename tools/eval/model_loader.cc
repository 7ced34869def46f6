#include "tools/eval/model_loader.h"

#include <filesystem>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/domain/domain.h"
#include "nlu/dst/dst_model.h"
#include "nlu/model/nlu_model.h"
#include "tools/eval/rule_predictor.h"

namespace helpline::eval {
namespace {

bool IsDomainFile(const std::string& model) {
  return absl::EndsWith(model, ".yaml") || absl::EndsWith(model, ".yml");
}

absl::Status NotImplemented(const std::string& model) {
  return absl::UnimplementedError(absl::StrCat(
      "--model ", model,
      ": not 'rule', a domain file (*.yaml), an utterance model folder (nlu_model.json) or a "
      "tracker folder (dst_model.json)"));
}

bool IsNluModelFolder(const std::string& model) {
  std::error_code ec;
  return std::filesystem::is_regular_file(
      std::filesystem::path(model) / nlu::model::kModelJsonName, ec);
}

bool IsDstModelFolder(const std::string& model) {
  std::error_code ec;
  return std::filesystem::is_regular_file(
      std::filesystem::path(model) / nlu::dst::kDstModelJsonName, ec);
}

// A trained tracker folder (nlu/dst): one DstSession per dialogue.
class DstModelSession : public DialogueSession {
 public:
  explicit DstModelSession(std::unique_ptr<nlu::dst::DstSession> session)
      : session_(std::move(session)) {}

  absl::Status SystemTurn(const data::Turn& turn) override { return session_->SystemTurn(turn); }

  absl::StatusOr<metrics::DialogueStatePrediction> UserTurn(absl::string_view utterance) override {
    return session_->UserTurn(utterance);
  }

 private:
  std::unique_ptr<nlu::dst::DstSession> session_;
};

class DstModelPredictor : public DialoguePredictor {
 public:
  DstModelPredictor(std::unique_ptr<nlu::dst::DstModel> model, std::string dir)
      : model_(std::move(model)), dir_(std::move(dir)) {}

  absl::StatusOr<std::unique_ptr<DialogueSession>> NewSession(
      const std::vector<const data::ServiceSchema*>& services) override {
    absl::StatusOr<std::unique_ptr<nlu::dst::DstSession>> session = model_->NewSession(services);
    if (!session.ok()) return session.status();
    return std::make_unique<DstModelSession>(*std::move(session));
  }

  std::string Describe() const override {
    const nlohmann::json& t = model_->training();
    return absl::StrFormat("dst model %s (BiGRU %d + context GRU %d; trained on %s, %s)", dir_,
                           model_->config().hidden_dim, model_->config().model_dim(),
                           t.value("source", std::string("?")),
                           t.contains("dialogues") ? absl::StrCat(t["dialogues"].dump(), " dialogues")
                                                   : std::string("?"));
  }

 private:
  std::unique_ptr<nlu::dst::DstModel> model_;
  std::string dir_;
};

// A trained utterance model folder (nlu/model). The confidence threshold applies only to data
// with an out-of-scope label, like the rule adapter's closed-set rule: closed-set data answer
// the best intent.
class NluModelPredictor : public UtterancePredictor {
 public:
  NluModelPredictor(std::unique_ptr<nlu::model::NluModel> model, std::string dir,
                    bool use_threshold)
      : model_(std::move(model)), dir_(std::move(dir)), use_threshold_(use_threshold) {}

  absl::StatusOr<metrics::UtterancePrediction> Predict(absl::string_view text) override {
    absl::StatusOr<nlu::model::NluPrediction> p = model_->Predict(text, use_threshold_);
    if (!p.ok()) return p.status();
    metrics::UtterancePrediction out;
    out.intent = std::move(p->intent);
    out.confidence = p->confidence;
    out.slots = std::move(p->slots);
    return out;
  }

  std::string Describe() const override {
    const nlu::model::NluModelInfo& info = model_->info();
    return absl::StrFormat(
        "nlu model %s (%d x BiGRU %d, %d intents, %d slot types, T %.2f, OOS threshold %.3f%s)",
        dir_, info.config.ensemble, info.config.hidden_dim, info.intents.size(),
        info.slot_types.size(), info.temperature, info.oos_threshold,
        use_threshold_ ? "" : " unused");
  }

 private:
  std::unique_ptr<nlu::model::NluModel> model_;
  std::string dir_;
  bool use_threshold_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<UtterancePredictor>> LoadUtterancePredictor(
    const std::string& model, const data::UtteranceDataset* train,
    const data::UtteranceDataset& eval) {
  // Closed-set data: the best intent is the answer; with an out-of-scope label the tracker's
  // threshold decides.
  const bool closed_set = eval.oos_label.empty();
  if (model == "rule") {
    if (train == nullptr) {
      return absl::InvalidArgumentError(
          "--model rule needs the training split to build its domain from (--train PATH)");
    }
    absl::StatusOr<domain::Domain> domain = DomainFromUtterances(*train);
    if (!domain.ok()) return domain.status();
    size_t examples = 0;
    for (const auto& intent : domain->intents) {
      for (const auto& [lang, list] : intent.examples) examples += list.size();
    }
    const std::string description =
        absl::StrCat("rule (domain from ", train->origin, ": ", domain->intents.size(),
                     " intents, ", examples, " examples, ", domain->slots.size(), " slots)");
    return MakeRuleUtterancePredictor(std::make_shared<const domain::Domain>(*std::move(domain)),
                                      closed_set, description);
  }
  if (IsDomainFile(model)) {
    absl::StatusOr<domain::Domain> domain = domain::LoadDomainFile(model);
    if (!domain.ok()) return domain.status();
    return MakeRuleUtterancePredictor(std::make_shared<const domain::Domain>(*std::move(domain)),
                                      closed_set, absl::StrCat("rule (domain ", model, ")"));
  }
  if (IsNluModelFolder(model)) {
    absl::StatusOr<std::unique_ptr<nlu::model::NluModel>> loaded = nlu::model::NluModel::Load(model);
    if (!loaded.ok()) return loaded.status();
    return std::make_unique<NluModelPredictor>(*std::move(loaded), model, !closed_set);
  }
  if (IsDstModelFolder(model)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--model ", model, ": a dialogue state tracker folder (dst_model.json) scores dialogue "
        "data sets: use 'helpline-eval dst'"));
  }
  return NotImplemented(model);
}

absl::StatusOr<std::unique_ptr<DialoguePredictor>> LoadDialoguePredictor(
    const std::string& model, const data::DialogueDataset* train,
    const data::DialogueDataset& eval) {
  if (model == "rule") {
    absl::StatusOr<domain::Domain> domain = DomainFromDialogues(eval, train);
    if (!domain.ok()) return domain.status();
    const std::string description = absl::StrCat(
        "rule (domain from the schema of ", eval.origin,
        train != nullptr ? absl::StrCat(" and the dialogues of ", train->origin) : "", ": ",
        domain->intents.size(), " intents, ", domain->slots.size(), " slots)");
    return MakeRuleDialoguePredictor(std::make_shared<const domain::Domain>(*std::move(domain)),
                                     eval.format != "multiwoz21", description);
  }
  if (IsDomainFile(model)) {
    return absl::InvalidArgumentError(
        "--model: a domain file cannot track a dialogue data set (its schema is the data "
        "set's); use --model rule");
  }
  if (IsDstModelFolder(model)) {
    absl::StatusOr<std::unique_ptr<nlu::dst::DstModel>> loaded = nlu::dst::DstModel::Load(model);
    if (!loaded.ok()) return loaded.status();
    return std::make_unique<DstModelPredictor>(*std::move(loaded), model);
  }
  if (IsNluModelFolder(model)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--model ", model, ": an utterance model folder (nlu_model.json) cannot track dialogues; "
        "train a tracker with helpline-train nlu --format ", eval.format));
  }
  return NotImplemented(model);
}

}  // namespace helpline::eval
