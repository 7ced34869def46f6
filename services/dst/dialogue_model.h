// The learned dialogue state tracker (nlu/dst: schema-guided, with a context GRU over the
// conversation) as the tracker's DialogueModel. The service is stateless, so every turn
// resumes an nlu/dst session from the prior DialogueState (its slots, and its `context`: the
// GRU vector, the tracker's intents, the acts of the reply being answered, the values met so
// far), tracks the turn, and returns the changes and the new context.
//
// No libtorch here: nlu/dst/dst_model.cc is the one libtorch translation unit of the tracker.
// Thread-safe after construction (Analyze is const; a session lives for one call).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/domain/domain.h"
#include "nlu/data/dataset.h"
#include "services/dst/tracker.h"

namespace helpline::nlu::dst {
class DstModel;
}  // namespace helpline::nlu::dst

namespace helpline::dst {

// The domain as one schema-guided service named after the domain: its slots (description,
// or the name in words; enum slots are categorical with their values) and intents
// (description, required and optional slots, transactional).
nlu::data::ServiceSchema ServiceFromDomain(const domain::Domain& domain);

class LearnedDialogueModel final : public DialogueModel {
 public:
  // Loads the folder `dir` (dst_model.json + model.safetensors) to track `domain` as one
  // service (ServiceFromDomain). NOT_FOUND naming the folder when it does not exist;
  // INVALID_ARGUMENT naming the file for malformed content.
  static absl::StatusOr<std::unique_ptr<LearnedDialogueModel>> Load(
      const std::string& dir, const domain::Domain& domain);

  // A loaded model over `services` whose slots and intents are the domain's
  // "<service>.<name>" (helpline-eval's domains built from a data set's schema). The schema
  // is the data set's own: its non-categorical slots are open (any value).
  static std::unique_ptr<LearnedDialogueModel> ForServices(
      std::shared_ptr<const nlu::dst::DstModel> model, std::string name,
      std::vector<nlu::data::ServiceSchema> services);

  ~LearnedDialogueModel() override;

  absl::StatusOr<DialogueAnalysis> Analyze(const common::v1::DialogueState& prior,
                                           absl::string_view text) const override;

  // "helpline-dst-1 <folder name> (<context size>)": DialogueContext.model.
  const std::string& name() const { return name_; }
  // The context vector's size.
  size_t context_size() const;

 private:
  LearnedDialogueModel(std::shared_ptr<const nlu::dst::DstModel> model, std::string name,
                       std::vector<nlu::data::ServiceSchema> services, bool prefixed);

  // Domain slot / intent name <-> (service index, name within the service).
  std::pair<int, std::string> Split(const std::string& domain_name) const;
  std::string Join(int service, const std::string& name) const;
  // The services a state's context follows (all when it names none it knows).
  std::vector<int> TrackedServices(const common::v1::DialogueContext& context) const;

  std::shared_ptr<const nlu::dst::DstModel> model_;
  std::string name_;
  std::vector<nlu::data::ServiceSchema> services_;
  // True: domain names are "<service>.<name>"; false: one service, names as they are.
  bool prefixed_ = false;
};

}  // namespace helpline::dst
