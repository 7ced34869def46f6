// What helpline-eval evaluates: a model behind one of two small interfaces, so that the rule
// tracker of the foundation issue and the trained models of issue 5 are scored by the same
// code. Implementations: rule_predictor.h (the TF-IDF + rules tracker of services/dst).
//
// A predictor is used by one thread at a time (the evaluator is single-threaded); calls
// block until the answer is there.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlu/data/dataset.h"
#include "nlu/metrics/dst_metrics.h"
#include "nlu/metrics/utterance_metrics.h"

namespace helpline::eval {

namespace data = nlu::data;
namespace metrics = nlu::metrics;

// Utterance -> intent, confidence, slot spans (single utterances, no context).
class UtterancePredictor {
 public:
  virtual ~UtterancePredictor() = default;

  // The intent is "" when the model finds the utterance out of scope (or one of its
  // labels that the data set uses for that, e.g. "oos"). Slot spans are byte offsets into
  // `text`. An error stops the evaluation.
  virtual absl::StatusOr<metrics::UtterancePrediction> Predict(absl::string_view text) = 0;

  // A short description for the printed table, e.g. "rule (77 intents, 9038 examples)".
  virtual std::string Describe() const = 0;
};

// One dialogue, turn by turn. The evaluator feeds the turns in order and never shows a
// user turn's gold annotations: a session sees what a deployed tracker would see.
class DialogueSession {
 public:
  virtual ~DialogueSession() = default;

  // A system turn: its utterance and its dialogue acts per service (frames without state;
  // e.g. REQUEST acts name the slots the system asked for).
  virtual absl::Status SystemTurn(const data::Turn& turn) = 0;

  // A user turn's text -> the dialogue state after it, per service of the dialogue
  // (active intent, "NONE" for none in SGD; slot values; slots the user requested).
  virtual absl::StatusOr<metrics::DialogueStatePrediction> UserTurn(
      absl::string_view utterance) = 0;
};

class DialoguePredictor {
 public:
  virtual ~DialoguePredictor() = default;

  // A new dialogue about `services` (schema entries of the data set being evaluated; they
  // outlive the session).
  virtual absl::StatusOr<std::unique_ptr<DialogueSession>> NewSession(
      const std::vector<const data::ServiceSchema*>& services) = 0;

  virtual std::string Describe() const = 0;
};

}  // namespace helpline::eval
