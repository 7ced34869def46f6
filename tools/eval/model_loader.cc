#include "tools/eval/model_loader.h"

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/domain/domain.h"
#include "tools/eval/rule_predictor.h"

namespace helpline::eval {
namespace {

bool IsDomainFile(const std::string& model) {
  return absl::EndsWith(model, ".yaml") || absl::EndsWith(model, ".yml");
}

absl::Status NotImplemented(const std::string& model) {
  return absl::UnimplementedError(absl::StrCat(
      "--model ", model, ": only 'rule' and domain files (*.yaml) are supported so far"));
}

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
  return NotImplemented(model);
}

}  // namespace helpline::eval
