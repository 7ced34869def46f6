// The learned dialogue state tracker (nlu/dst: schema-guided, with a context GRU over the
// conversation) as the tracker's DialogueModel. The service is stateless, so every turn
// resumes an nlu/dst session from the prior DialogueState (its slots, and its `context`: the
// GRU vector, the tracker's intents, the acts of the reply being answered, the values met so
// far), tracks the turn, and returns the changes and the new context.
//
// Two things keep a turn cheap over a long conversation: the values met so far that the state
// carries are capped (the most recent, each slot and value once: nlu::dst::RecentHistory), so
// the state stored every turn stops growing; and the schema's encodings (every slot, value and
// intent text through the tracker's encoder) are computed once per set of tracked services and
// shared by every turn, since they depend on the model and the domain only.
//
// No libtorch here: nlu/dst/dst_model.cc is the one libtorch translation unit of the tracker.
// Thread-safe after construction (Analyze is const; a session lives for one call; the cache of
// encodings is guarded by a mutex, and the encodings themselves are immutable).
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
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
struct ServiceEncodings;
}  // namespace helpline::nlu::dst

namespace helpline::dst {

// DstConfig.dialogue_model_history when unset (0), and the largest value it may take.
inline constexpr size_t kDefaultDialogueHistory = 64;
inline constexpr size_t kMaxDialogueHistory = 4096;

struct LearnedDialogueModelOptions {
  // Values met in the conversation kept in DialogueState.context.history, where the tracker
  // finds what "the same city" refers to: the most recent, each slot and value once
  // (nlu::dst::RecentHistory). Applied when a turn resumes from the state and when it writes
  // the state back, so a state written with a larger cap shrinks at its next turn. In
  // [1, kMaxDialogueHistory].
  size_t max_history = kDefaultDialogueHistory;
  // True: the schema encodings of a set of tracked services are computed at their first turn
  // and reused by every later turn. False: computed every turn (the way before the cache; for
  // tests and benchmarks that compare the two, whose results are the same bit for bit).
  bool cache_encodings = true;
};

// The domain as one schema-guided service named after the domain: its slots (description,
// or the name in words; enum slots are categorical with their values) and intents
// (description, required and optional slots, transactional).
nlu::data::ServiceSchema ServiceFromDomain(const domain::Domain& domain);

class LearnedDialogueModel final : public DialogueModel {
 public:
  // Loads the folder `dir` (dst_model.json + model.safetensors) to track `domain` as one
  // service (ServiceFromDomain), and encodes its schema (the first turn is not slower).
  // NOT_FOUND naming the folder when it does not exist; INVALID_ARGUMENT naming the file for
  // malformed content, or naming the option out of range.
  static absl::StatusOr<std::unique_ptr<LearnedDialogueModel>> Load(
      const std::string& dir, const domain::Domain& domain,
      const LearnedDialogueModelOptions& options = {});

  // A loaded model over `services` whose slots and intents are the domain's
  // "<service>.<name>" (helpline-eval's domains built from a data set's schema). The schema
  // is the data set's own: its non-categorical slots are open (any value). Each set of
  // services a dialogue follows is encoded at its first turn (at most kMaxCachedServiceSets
  // sets are kept). `options.max_history` 0 is taken as the default.
  static std::unique_ptr<LearnedDialogueModel> ForServices(
      std::shared_ptr<const nlu::dst::DstModel> model, std::string name,
      std::vector<nlu::data::ServiceSchema> services,
      const LearnedDialogueModelOptions& options = {});

  ~LearnedDialogueModel() override;

  absl::StatusOr<DialogueAnalysis> Analyze(const common::v1::DialogueState& prior,
                                           absl::string_view text) const override;

  // "helpline-dst-1 <folder name> (<context size>)": DialogueContext.model.
  const std::string& name() const { return name_; }
  // The context vector's size.
  size_t context_size() const;

  // Sets of tracked services whose encodings are kept; past it the cache starts over.
  static constexpr size_t kMaxCachedServiceSets = 256;

 private:
  LearnedDialogueModel(std::shared_ptr<const nlu::dst::DstModel> model, std::string name,
                       std::vector<nlu::data::ServiceSchema> services, bool prefixed,
                       const LearnedDialogueModelOptions& options);

  // The schema encodings of the services `tracked` (indices into services_): cached unless
  // options_.cache_encodings is false. Blocks for the encoder on a set's first turn.
  absl::StatusOr<std::shared_ptr<const nlu::dst::ServiceEncodings>> Encodings(
      const std::vector<int>& tracked) const;

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
  LearnedDialogueModelOptions options_;
  // Tracked services -> their encodings (which borrow model_ and services_, declared above so
  // that they outlive them).
  mutable std::mutex encodings_mu_;
  mutable std::map<std::vector<int>, std::shared_ptr<const nlu::dst::ServiceEncodings>>
      encodings_;  // Guarded by encodings_mu_.
};

}  // namespace helpline::dst
