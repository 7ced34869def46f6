// The inputs of the learned dialogue state tracker (dst_model.h), without libtorch: what the
// tracker knows before a user turn (DialogueContext: the services' schemas, the state so far,
// the last system turn's acts, the values seen in the dialogue), the per-slot features of a
// user turn, and the labels training derives from two consecutive gold states.
//
// The same functions build the inputs at training time (with the gold state of the previous
// turn) and at run time (with the predicted one), so the two cannot drift apart.
//
// Per (service, slot) the tracker decides a status:
//   none         keep the previous value (or keep it unset)
//   dontcare     the user does not mind
//   span         a span of the user utterance (non-categorical slots)
//   system       the value the system offered / informed / confirmed for this slot in its
//                last turn (the user said "yes" to it)
//   categorical  one of the schema's possible values (categorical slots)
//   refer        a value met earlier in the dialogue under another slot (another service's
//                city becomes this service's location)
//
// Schema texts (slot names + descriptions, intent names + descriptions, values) are hashed
// bags of words and character trigrams, so services unseen in training get meaningful
// encodings.
//
// Thread-compatible: plain values and pure functions.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "nlu/data/dataset.h"
#include "nlu/model/featurizer.h"

namespace helpline::nlu::dst {

enum SlotStatus : int {
  kNone = 0,
  kDontcare = 1,
  kSpan = 2,
  kSystem = 3,
  kCategorical = 4,
  kRefer = 5,
};
inline constexpr int kNumStatuses = 6;
inline constexpr int kSlotFeatures = 15;
inline constexpr int kValueFeatures = 5;
inline constexpr int kReferFeatures = 4;
inline constexpr int64_t kHashBuckets = 1 << 16;
// The longest span the pointer may choose, in tokens.
inline constexpr int kMaxSpanTokens = 10;
// "NONE": SGD's name for no active intent.
inline constexpr char kNoIntent[] = "NONE";

// Hashed ids (in [0, kHashBuckets)) of the lower-cased words and character trigrams of
// `text` ('_' and punctuation separate words). Never empty: "" gives one id.
std::vector<int64_t> TextBag(absl::string_view text);

// Lower-cased, punctuation as spaces, number words ("two") as digits, one space between
// words and one at each end (" book 2 seats "), for whole-word matching.
std::string MatchForm(absl::string_view text);
// True when `value` (any text) occurs in `match_form` (a MatchForm) as whole words.
bool ContainsValue(const std::string& match_form, absl::string_view value);

// A system dialogue act resolved against the dialogue's services.
struct SystemAct {
  std::string act;   // upper case: REQUEST, OFFER, INFORM, CONFIRM, ...
  int service = -1;  // index into DialogueContext::services
  int slot = -1;     // index into that service's slots, -1 when the act names no known slot
  std::vector<std::string> values;
};

// What a session knows between two user turns, by service and slot names: the dialogue
// context (DialogueContext below) and the context GRU's state. A stateless service keeps it
// in the dialogue state and resumes the session from it (DstModel::ResumeSession); a resumed
// session predicts exactly what the uninterrupted one would.
struct Snapshot {
  // The context GRU's state (DstModelConfig::model_dim floats); empty: zeros (a new dialogue).
  std::vector<float> context_vector;
  // Per service name: slot name -> value.
  std::map<std::string, std::map<std::string, std::string>> values;
  // Per service name: the active intent (kNoIntent or absent: none).
  std::map<std::string, std::string> intents;
  // A system act by names ("" service or slot: one the dialogue did not know).
  struct Act {
    std::string act;
    std::string service;
    std::string slot;
    std::vector<std::string> values;
  };
  // The last system turn's acts and utterance.
  std::vector<Act> system_acts;
  std::string system_utterance;
  // A value met in the dialogue (HistoryValue by names).
  struct Value {
    std::string service;
    std::string slot;
    std::string value;
    bool from_system = false;
    int turn = 0;
  };
  std::vector<Value> history;
  int user_turn = 0;
};

// `history` (oldest first) as a bounded memory: each (service, slot, value) once, at its
// newest entry, and of those the `limit` most recent, in their order. Dropping an older copy
// of a value met again under the same slot changes no prediction: ReferCandidates reads the
// history newest first and takes a value once, so the older copy is never a candidate. An
// entry beyond `limit` is lost to a slot's references only when the kept entries give that
// slot fewer than the 16 candidates ReferCandidates takes (kept entries that are the slot's
// own values or repeat a value under another slot give none). limit 0 keeps nothing.
std::vector<Snapshot::Value> RecentHistory(const std::vector<Snapshot::Value>& history,
                                           size_t limit);

// A value met in the dialogue: a state value or a system act's value, with its slot.
struct HistoryValue {
  int service = 0;
  int slot = 0;
  std::string value;
  bool from_system = false;
  int turn = 0;  // the user turn (0-based) it was met before or at
};

// What the tracker knows before a user turn. Owned by one session.
struct DialogueContext {
  std::vector<const data::ServiceSchema*> services;  // outlive the context
  // Per service: slot name -> value.
  std::vector<std::map<std::string, std::string>> values;
  // Per service: the active intent (kNoIntent when none).
  std::vector<std::string> intents;
  std::vector<SystemAct> system_acts;  // of the last system turn
  std::string system_utterance;        // of the last system turn
  std::vector<HistoryValue> history;
  int user_turn = 0;  // user turns seen so far

  explicit DialogueContext(std::vector<const data::ServiceSchema*> dialogue_services);

  // The context by names (no pointers), for a stateless service to carry between turns.
  Snapshot snapshot() const;
  // Replaces this context with `snapshot` (services, slots and acts are matched by name).
  // Values, intents, acts and history entries of services or slots this context does not
  // know are skipped, so a state written under an older domain still resumes.
  void Restore(const Snapshot& snapshot);

  // Records a system turn (its acts replace the previous ones; values join the history).
  // Acts of services or slots the dialogue does not know are kept without slot (MultiWOZ's
  // act slot names are matched loosely: "price" is "pricerange", "people" "book people").
  void AddSystemTurn(const data::Turn& turn);
  // Sets a slot's value (also recorded in the history).
  void SetValue(int service, int slot, const std::string& value);
};

// The features of one (service, slot) for one user turn.
struct SlotInstance {
  int service = 0;
  int slot = 0;
  bool categorical = false;
  std::array<float, kSlotFeatures> features{};
  // The value the system gave this slot in its last turn ("" none).
  std::string system_value;
};

// The features of one categorical value candidate.
using ValueFeatures = std::array<float, kValueFeatures>;

// A refer candidate: a history value under another slot.
struct ReferCandidate {
  int service = 0;
  int slot = 0;
  std::string value;
  std::array<float, kReferFeatures> features{};
};

// A user turn's inputs.
struct TurnInputs {
  model::Features utterance;        // tokens, word / char n-gram / shape ids
  std::string match_form;           // MatchForm of the utterance
  std::vector<int64_t> system_bag;  // hashed "act", "act slot" words of the last system turn
  std::vector<SlotInstance> slots;  // every slot of every service, service-major
};

TurnInputs BuildTurnInputs(const DialogueContext& context, absl::string_view utterance,
                           const model::Featurizer& featurizer);

// The features of each possible value of a categorical slot (schema order).
std::vector<ValueFeatures> CategoricalFeatures(const DialogueContext& context,
                                               const TurnInputs& turn, const SlotInstance& slot);

// The history values of other slots (distinct values, most recent first, at most 16).
std::vector<ReferCandidate> ReferCandidates(const DialogueContext& context, const TurnInputs& turn,
                                            const SlotInstance& slot);

// Training labels of one slot instance, from the gold states before and after the turn.
struct SlotLabel {
  int status = -1;  // -1: the new value is not reachable by any status (not trained)
  bool requested = false;
  int span_begin = -1, span_end = -1;  // token indices, inclusive (status span)
  int value_index = -1;                // status categorical
  std::vector<int> refer_gold;         // status refer: indices of matching candidates
};

// `gold_after`: the service's gold state after the turn, or null when the turn has no frame
// for the service (nothing changes). `user_spans`: SGD's annotated spans of this service in
// the utterance (may be empty).
SlotLabel LabelSlot(const DialogueContext& context, absl::string_view utterance,
                    const TurnInputs& turn, const SlotInstance& slot, const data::FrameState* gold_after,
                    const std::vector<data::SlotSpan>& user_spans,
                    const std::vector<ReferCandidate>& refer_candidates);

// The schema text the slot / intent / value encodings are built from.
std::string SlotText(const data::ServiceSchema& service, const data::SlotSchema& slot);
std::string IntentText(const data::IntentSchema& intent);

// The byte span of tokens [begin, end] of the utterance.
std::string SpanText(absl::string_view utterance, const model::Features& features, int begin,
                     int end);

}  // namespace helpline::nlu::dst
