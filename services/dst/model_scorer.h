// The trained utterance model (nlu/model) as the tracker's UtteranceModel: the service loads
// a model folder at start and passes it through TrackerOptions::model. model_scorer.cc is the
// only libtorch translation unit of the dst service; this header has no libtorch types.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/domain/domain.h"
#include "nlu/model/model_info.h"
#include "services/dst/extractors.h"
#include "services/dst/tracker.h"

namespace helpline::nlu::model {
class NluModel;
}  // namespace helpline::nlu::model

namespace helpline::dst {

// Thread-safe after Load (Analyze is const; libtorch inference without autograd). Analyze
// blocks for one forward pass on the calling thread (about 1 ms for 20 words on one core,
// see README.md), so callers run it off gRPC's callback threads.
class ModelUtteranceModel final : public UtteranceModel {
 public:
  // Loads the folder `dir` (nlu_model.json + model.safetensors) and checks that its intents
  // (without an out-of-scope class) and slot types are exactly the domain's. Sets libtorch to
  // one intra-op thread for the process (parallelism comes from concurrent requests).
  // NOT_FOUND naming the folder or file when missing; INVALID_ARGUMENT for malformed files;
  // FAILED_PRECONDITION naming the difference when the model does not match the domain.
  static absl::StatusOr<std::unique_ptr<ModelUtteranceModel>> Load(
      const std::string& dir, std::shared_ptr<const domain::Domain> domain);
  ~ModelUtteranceModel() override;

  // Intents: the model's most probable in-scope intent with its calibrated probability (none
  // when the model's explicit out-of-scope class won). out_of_scope: that class won or the
  // probability is below the model's threshold. Slots: each tagged span whose text the
  // slot's typed extractor accepts, with the extractor's canonical value ("broken" ->
  // "damaged") and confidence 0.8; spans it rejects are dropped (a model cannot invent a
  // categorical value). Empty for a text without tokens or when libtorch fails (logged).
  UtteranceAnalysis Analyze(absl::string_view text, absl::string_view language) const override;

  const nlu::model::NluModelInfo& info() const;

 private:
  ModelUtteranceModel(std::unique_ptr<nlu::model::NluModel> model,
                      std::shared_ptr<const domain::Domain> domain);

  std::unique_ptr<nlu::model::NluModel> model_;
  std::shared_ptr<const domain::Domain> domain_;
  SlotExtractor extractor_;
};

}  // namespace helpline::dst
