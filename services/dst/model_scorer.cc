#include "services/dst/model_scorer.h"

#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/log/log.h"
#include "nlu/model/nlu_model.h"

namespace helpline::dst {

namespace model = nlu::model;

// A tagged span whose value the extractor confirmed; below typed extraction (0.85-0.95)
// because the tagger's spans are guesses from context, not a pattern.
constexpr float kModelSlotConfidence = 0.8f;

absl::StatusOr<std::unique_ptr<ModelUtteranceModel>> ModelUtteranceModel::Load(
    const std::string& dir, std::shared_ptr<const domain::Domain> domain) {
  std::error_code error;
  if (!std::filesystem::is_directory(dir, error)) {
    return absl::NotFoundError(absl::StrCat("model folder ", dir, " does not exist"));
  }
  absl::StatusOr<std::unique_ptr<model::NluModel>> loaded = model::NluModel::Load(dir);
  if (!loaded.ok()) return loaded.status();
  if (absl::Status s = model::CheckModelMatchesDomain((*loaded)->info(), *domain, dir); !s.ok()) {
    return s;
  }
  // Requests run concurrently on the service's workers; one intra-op thread each keeps a
  // forward pass from fighting the others for the two cores (nlu/model/README.md).
  model::SetTorchThreads(1);
  return std::unique_ptr<ModelUtteranceModel>(
      new ModelUtteranceModel(*std::move(loaded), std::move(domain)));
}

ModelUtteranceModel::ModelUtteranceModel(std::unique_ptr<model::NluModel> model,
                                         std::shared_ptr<const domain::Domain> domain)
    : model_(std::move(model)), domain_(domain), extractor_(std::move(domain)) {}

ModelUtteranceModel::~ModelUtteranceModel() = default;

const model::NluModelInfo& ModelUtteranceModel::info() const { return model_->info(); }

UtteranceAnalysis ModelUtteranceModel::Analyze(absl::string_view text,
                                               absl::string_view language) const {
  UtteranceAnalysis analysis;
  // Without the threshold: the in-scope winner and its probability; the threshold is applied
  // here so that the intent's score is known either way.
  absl::StatusOr<model::NluPrediction> p = model_->Predict(text, /*use_threshold=*/false);
  if (!p.ok()) {
    log::Error("utterance model failed", {{"status", p.status().ToString()}});
    return analysis;
  }
  if (p->best_intent.empty()) return analysis;  // No tokens.
  const bool explicit_oos = p->intent.empty();  // The model's out-of-scope class won.
  if (!explicit_oos) analysis.intents.push_back({p->intent, p->confidence});
  analysis.out_of_scope = explicit_oos || p->confidence < model_->info().oos_threshold;

  ExtractOptions options;
  for (const auto& span : p->slots) {
    const domain::Slot* slot = domain_->FindSlot(span.slot);
    if (slot == nullptr || span.end > text.size() || span.begin >= span.end) continue;
    std::optional<SlotCandidate> c =
        extractor_.ExtractSlot(*slot, text.substr(span.begin, span.end - span.begin), options);
    if (!c.has_value()) continue;
    c->begin += span.begin;
    c->end += span.begin;
    c->confidence = kModelSlotConfidence;
    analysis.slots.push_back(*std::move(c));
  }
  return analysis;
}

}  // namespace helpline::dst
