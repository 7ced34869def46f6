// The dialogue state tracker: intents from a trained utterance model when one is loaded,
// else matched against the domain's examples with TF-IDF cosine similarity; slots filled by
// typed extractors (plus the model's spans); merged into the prior state by the update rules
// of README.md (carry-over, correction, negation, requested slots, an intent stack,
// confirmation of transactional intents, attachment evidence, escalation). No gRPC types
// here; the service adapter (dst_service.h) converts.
//
// Thread-safe after construction: Track() is const and shares nothing mutable.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/domain/domain.h"
#include "helpline/common/v1/types.pb.h"
#include "helpline/dst/v1/dst_config.pb.h"
#include "services/dst/extractors.h"

namespace helpline::dst {

struct IntentScore {
  std::string intent;
  float score = 0;
};

// Scores every intent of a domain against a text: cosine similarity of TF-IDF vectors
// (English: words, word bigrams and character trigrams; Chinese: character unigrams and
// bigrams) to each example; an intent's score is its best example's.
class IntentClassifier {
 public:
  explicit IntentClassifier(const domain::Domain& domain);
  // Highest first; empty when the text has no features (e.g. only digits).
  std::vector<IntentScore> Score(absl::string_view text) const;

  // The features of a text (feature -> weighted term frequency), for tests.
  static std::unordered_map<std::string, float> Features(absl::string_view text);

 private:
  // One example's weight of a feature (its L2-normalized TF-IDF vector's component).
  struct Posting {
    uint32_t example;  // Index into example_intents_.
    float weight;
  };
  // A feature some example has: its IDF and the examples that have it (an inverted index,
  // so that scoring costs one lookup per feature of the text, not one per example).
  struct IndexedFeature {
    float idf = 1;
    std::vector<Posting> postings;
  };
  std::vector<std::string> intent_names_;
  std::vector<size_t> example_intents_;  // Example -> index into intent_names_.
  absl::flat_hash_map<std::string, IndexedFeature> index_;
  float unseen_idf_ = 1;
};

// What a trained utterance model (nlu/model, loaded by the service from a model folder)
// says about one customer turn. Implemented outside the tracker (services/dst/model_scorer.h)
// so that the tracker itself does not depend on libtorch.
struct UtteranceAnalysis {
  // Intents of the domain with calibrated probabilities, highest first.
  std::vector<IntentScore> intents;
  // True when the model judges the turn out of scope (explicit class or below its threshold).
  bool out_of_scope = false;
  // Slot values the model tagged (BIO spans), with byte spans in the analysed text.
  std::vector<SlotCandidate> slots;
};

class UtteranceModel {
 public:
  virtual ~UtteranceModel() = default;
  // Thread-safe. `text` is the normalized customer text; `language` "en", "zh" or "und".
  virtual UtteranceAnalysis Analyze(absl::string_view text, absl::string_view language) const = 0;
};

// What the learned dialogue state tracker (nlu/dst: schema-guided, with a context GRU over
// the conversation so far) says about one customer turn. Implemented outside the tracker
// (services/dst/dialogue_model.h) so that the tracker itself does not depend on libtorch.
struct DialogueAnalysis {
  struct Value {
    std::string slot;   // A domain slot.
    std::string value;  // As the learned tracker wrote it (a span, a schema value, an offer).
    // True when the learned tracker's schema takes any value for the slot (SGD's
    // non-categorical slots): a value the slot's extractor rejects is still a value. False
    // for the domain's own slots, whose extractor is the judge.
    bool open = false;
  };
  // Slot values it set in this turn (changes against the prior state, not carry-over).
  std::vector<Value> values;
  // A domain intent it made active in this turn; "" when none changed (or to none).
  std::string intent;
  // Its memory after the turn, for DialogueState.context (the tracker adds the acts of the
  // next reply).
  common::v1::DialogueContext context;
};

class DialogueModel {
 public:
  virtual ~DialogueModel() = default;
  // Thread-safe. Resumes the learned tracker from `prior` (its slots, intent and context,
  // whose system_acts are those of the reply the customer answers) and tracks `text` (the
  // customer's normalized text). INTERNAL for libtorch errors.
  virtual absl::StatusOr<DialogueAnalysis> Analyze(const common::v1::DialogueState& prior,
                                                   absl::string_view text) const = 0;
};

struct TrackerOptions {
  // Lowest TF-IDF intent score that names an intent (with a model, its own out-of-scope
  // decision does).
  float intent_threshold = 0.35f;
  // A turn that fills a slot we asked for keeps the prior intent unless another intent
  // scores at least this much.
  float switch_threshold = 0.6f;
  // A trained utterance model; when set it replaces the TF-IDF classifier for intents and
  // out-of-scope detection and adds its slot spans to the typed extractors' candidates
  // (a span is kept when the slot's extractor accepts its text, e.g. an enum synonym or a
  // number; typed candidates win). Null: rules only.
  std::shared_ptr<const UtteranceModel> model;
  // The learned dialogue state tracker; when set, its slot values add to the rules' (a slot
  // the rules set, removed or negated in the turn stays theirs; each value passes the slot's
  // extractor), its new active intent is taken when the text names none, and its context
  // is written into DialogueState.context every turn. Null: no learned tracker.
  std::shared_ptr<const DialogueModel> dialogue_model;
  // With dialogue_model: a new active intent of the learned tracker is taken over the
  // TF-IDF classifier's (never over the utterance model's calibrated one).
  bool learned_intent_first = false;
  // With dialogue_model: the learned tracker's value of a categorical or free-text slot
  // replaces the rules' (typed slots, negations, removals and corrections stay the rules').
  bool learned_values_first = false;
  // Customer turns in a row that are out of scope or not understood before escalating
  // ("out_of_scope_streak").
  uint32_t max_low_confidence_turns = 3;
  // Frustration signals in a conversation before escalating ("frustration"): one per turn
  // and kind (negative wording, a repeated question, text in capitals).
  uint32_t frustration_threshold = 2;
  // Interrupted intents kept for resuming; the oldest is dropped beyond this.
  uint32_t max_intent_stack = 3;
  // Longest turn, in words (TurnWords: a CJK character counts half), that a requested
  // free-text slot takes whole as its value. Questions and turns that name another intent
  // never do.
  uint32_t max_free_text_words = 12;
};

// TrackerOptions from the service's config (0 keeps a default). INVALID_ARGUMENT naming the
// field when intent_threshold is outside [0, 1].
absl::StatusOr<TrackerOptions> TrackerOptionsFromConfig(const v1::DstConfig& config);

// One customer turn.
struct TurnInput {
  // What the customer typed (normalized). May be empty when only attachments were sent.
  std::string user_text;
  // "en", "zh", "und" or empty.
  std::string language;
  // Text read from attachments.
  std::vector<common::v1::Evidence> evidence;
  // The state after the previous turn; default for a new session.
  common::v1::DialogueState prior;
  // The reply the customer answers (the learned tracker reads it with its acts); may be empty.
  std::string last_reply;
};

struct TrackResult {
  common::v1::DialogueState state;
  // The best-scoring intent of this turn's text, even when below the threshold; empty
  // ("none") for an empty turn, a bare answer or a turn the model finds out of scope.
  IntentScore best;
  // True when the turn's intent came from the text (not carried over).
  bool intent_from_text = false;
  // True when the text had nothing left after preprocessing (no letter, digit or CJK
  // character) and there was no evidence: the state is the prior one, turn_count + 1.
  bool empty_turn = false;
  // True when an interrupted intent was resumed from the intent stack.
  bool resumed = false;
  // Slots removed by a negation or a removal ("not damaged", "cancel the coupon").
  std::vector<std::string> removed_slots;
};

class Tracker {
 public:
  Tracker(std::shared_ptr<const domain::Domain> domain, TrackerOptions options);

  // Updates input.prior with the turn. Never fails today (a turn with neither text nor
  // evidence is an empty turn); StatusOr keeps room for model errors.
  absl::StatusOr<TrackResult> Track(const TurnInput& input) const;

  // True when `text` contains one of the domain's escalation phrases.
  bool AsksForHuman(absl::string_view text) const;

  const domain::Domain& domain() const { return *domain_; }

 private:
  // AsksForHuman on text already prepared for matching (lower-cased, spaces collapsed).
  bool AsksForHumanPrepared(absl::string_view prepared) const;

  struct EscalationPhrase {
    std::string text;  // Lower-cased, spaces collapsed; never empty.
    bool cjk = false;  // Matched as a substring, not at word boundaries.
  };
  // A way the customer names a slot ("phone", "order id", "order number"), for removals
  // such as "forget the phone number".
  struct SlotMention {
    std::string slot;
    std::string text;  // Lower-cased.
  };
  // Per-call working data of Track, defined in tracker.cc.
  struct Turn;

  // Whether the turn takes back a slot of `intent` by naming it ("cancel the coupon").
  bool RemovesSlotOf(const Turn& t, const domain::Intent& intent) const;
  // Whether the whole turn may be the value of a requested free-text slot (a bare answer to
  // "which item?"): not a yes/no, a question, a turn naming another intent or a long one.
  bool MayBeBareFreeText(const Turn& t) const;
  void ScoreIntents(Turn& t) const;
  void DecideIntent(Turn& t) const;
  void ExtractTypedSlots(Turn& t) const;
  void MergeModelSlots(Turn& t) const;
  // The learned tracker: Analyze before the rules; its intent when the text names none;
  // its values for slots the rules left alone; its context and the next reply's acts.
  absl::Status AnalyzeDialogue(Turn& t) const;
  void TakeLearnedIntent(Turn& t) const;
  void MergeLearnedSlots(Turn& t) const;
  void WriteDialogueContext(Turn& t) const;
  void ApplyNegations(Turn& t) const;
  void ApplyCorrectionFallback(Turn& t) const;
  void ApplyTypedSlots(Turn& t) const;
  void ResolveSlotConfirmation(Turn& t) const;
  void MergeEvidence(Turn& t) const;
  void UpdateEscalation(Turn& t) const;
  void FinishState(Turn& t) const;
  // Whether `name` is a slot whose extracted value the turn may set: one the active intent
  // uses, a requested one, or a type that is unambiguous (regex, e-mail, phone).
  bool Relevant(const Turn& t, const domain::Slot& slot) const;

  std::shared_ptr<const domain::Domain> domain_;
  TrackerOptions options_;
  IntentClassifier classifier_;
  SlotExtractor extractor_;
  // The domain's escalation phrases of every language, prepared once.
  std::vector<EscalationPhrase> escalation_phrases_;
  std::vector<SlotMention> slot_mentions_;
};

}  // namespace helpline::dst
