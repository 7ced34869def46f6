// The foundation's rule-based tracker (services/dst/tracker.h: TF-IDF intent matching,
// typed slot extractors, fixed merge rules) as a predictor, with the domain it needs built
// from a data set's training split. This is the baseline the learned tracker must beat.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/domain/domain.h"
#include "nlu/data/dataset.h"
#include "services/dst/tracker.h"
#include "tools/eval/predictor.h"

namespace helpline::eval {

// A domain for the rule tracker from an utterance training set: one intent per label (its
// examples: the training texts; its optional slots: the slot types seen with it); one enum
// slot per slot / entity type, its values the lower-cased training values.
// INVALID_ARGUMENT when the set has no examples.
absl::StatusOr<domain::Domain> DomainFromUtterances(const data::UtteranceDataset& train);

// A domain for the rule tracker from a dialogue schema (the evaluated split's, so unseen
// services are there too) and optionally training dialogues (null: none):
//   intents   "<service>.<intent>" (MultiWOZ: one per domain, "<domain>.find"), examples:
//             the intent's name in words and its description, and the training user turns
//             that made it the service's active intent (MultiWOZ: that first set a slot of
//             the domain); required/optional slots from the schema (MultiWOZ: all);
//   slots     "<service>.<slot>": enum with the possible values when the schema lists
//             them, plus the training values of the slot; free text when there are none.
absl::StatusOr<domain::Domain> DomainFromDialogues(const data::DialogueDataset& schema,
                                                   const data::DialogueDataset* train);

// Tracker::Track on a fresh state per utterance. The intent is the best-scoring one
// (closed-set data) or the tracker's active intent, which it sets only above its threshold
// (data with an out-of-scope label: below it means out of scope). Slot values are located
// in the text (first case-insensitive occurrence at word boundaries) to give spans.
std::unique_ptr<UtterancePredictor> MakeRuleUtterancePredictor(
    std::shared_ptr<const domain::Domain> domain, bool closed_set, std::string description);

// One Tracker state per dialogue: system REQUEST acts become the state's requested slots
// before the next user turn; after each user turn the state is split per service (the
// last intent the tracker set for the service, "NONE" before; slots "<service>.<slot>").
// The tracker predicts no user-requested slots. `intents` false (MultiWOZ): active intents
// are reported as "" (the data set has none).
// `learned` (may be null): the learned dialogue state tracker fused in by the tracker
// (TrackerOptions::dialogue_model); the session then gives it the system's real acts and
// utterance (DialogueState.context) and the dialogue's services, and the state carries its
// memory from turn to turn as the service's does.
// Which side wins where both the rules and the learned tracker found something
// (TrackerOptions::learned_intent_first / learned_values_first; helpline-dst's
// dialogue_model_first sets both).
struct FusionOptions {
  bool learned_intent_first = false;
  bool learned_values_first = false;
};

std::unique_ptr<DialoguePredictor> MakeRuleDialoguePredictor(
    std::shared_ptr<const domain::Domain> domain, bool intents, std::string description,
    std::shared_ptr<const dst::DialogueModel> learned = nullptr, FusionOptions fusion = {});

// The service's fused tracker on a dialogue data set: the rule tracker of
// MakeRuleDialoguePredictor (domain from `eval`'s schema and `train`) with the learned
// tracker of the folder `dialogue_model_dir` (nlu/dst) over the data set's own schemas.
// NOT_FOUND / INVALID_ARGUMENT naming the folder when it cannot be loaded.
absl::StatusOr<std::unique_ptr<DialoguePredictor>> MakeFusedDialoguePredictor(
    const std::string& dialogue_model_dir, const data::DialogueDataset& eval,
    const data::DialogueDataset* train, FusionOptions fusion = {});

}  // namespace helpline::eval
