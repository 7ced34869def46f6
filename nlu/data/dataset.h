// The in-memory form of the NLU and dialogue-state-tracking data sets (Banking77, CLINC150,
// SNIPS, Bitext, SGD, MultiWOZ 2.1), whatever file format they came in. Readers
// (nlu/data/readers.h) fill these; trainers and the evaluator (tools/eval) consume them.
//
// Plain values: no invariants beyond those stated per field, copyable, no locking needed.
// All text is UTF-8; all offsets are byte offsets into the text they belong to.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace helpline::nlu::data {

// A labelled stretch of a text: `text.substr(begin, end - begin)` is the value as written.
struct SlotSpan {
  std::string slot;
  size_t begin = 0;
  size_t end = 0;
  // The value as the data set gives it: usually the text of the span; Bitext's
  // account_type gives a canonical capitalisation ("Platinum" for "platinum").
  std::string value;

  friend bool operator==(const SlotSpan&, const SlotSpan&) = default;
};

// One utterance of an intent / slot data set.
struct UtteranceExample {
  // Where it came from, for messages: "dev.csv:12" (record's first line), "val[17]".
  std::string origin;
  std::string text;
  // The intent label as in the data set; for CLINC150 out-of-scope items the data set's
  // label ("oos").
  std::string intent;
  // False for the out-of-scope items of data sets that have them (CLINC150).
  bool in_scope = true;
  // SNIPS only: the whitespace tokens (text == tokens joined by one space) and their IOB2
  // tags, one per token. Empty for untokenized data sets.
  std::vector<std::string> tokens;
  std::vector<std::string> tags;
  // Gold slot / entity spans (SNIPS: from the tags; Bitext: the one entity). Sorted by begin.
  std::vector<SlotSpan> spans;
};

struct UtteranceDataset {
  // "banking77", "clinc150", "snips", "bitext".
  std::string format;
  // The file or folder read, and the split ("train", "dev", "test").
  std::string origin;
  std::string split;
  std::vector<UtteranceExample> examples;
  // The label of out-of-scope items when the format has one ("oos" for CLINC150), else "".
  std::string oos_label;
  // True when the format annotates slots (SNIPS) or entities (Bitext).
  bool has_slots = false;
};

// ---- Dialogues ----

enum class Speaker { kUser, kSystem };

// A dialogue act, e.g. {REQUEST, pickup_time, {}} or {INFORM, pickup_city, {"Concord"}}.
// SGD act names as given (upper case); MultiWOZ acts upper-cased ("REQUEST", "INFORM").
struct DialogueAct {
  std::string act;
  std::string slot;
  std::vector<std::string> values;
};

// The dialogue state of one service (SGD) or domain (MultiWOZ) after a user turn.
struct FrameState {
  // SGD: the intent name or "NONE"; MultiWOZ: "" (the data set has no intents).
  std::string active_intent;
  // Slots whose value the user asked for in this turn.
  std::vector<std::string> requested_slots;
  // Slot -> the value's equivalent surface forms (any one is right; at least one).
  // Only slots that have a value.
  std::map<std::string, std::vector<std::string>> slot_values;
};

// What one turn says about one service.
struct Frame {
  std::string service;
  std::vector<DialogueAct> actions;
  // SGD: spans of non-categorical slot values in the utterance.
  std::vector<SlotSpan> spans;
  // True on user turns that carry a state (the gold state after the turn).
  bool has_state = false;
  FrameState state;
};

struct Turn {
  Speaker speaker = Speaker::kUser;
  std::string utterance;
  std::vector<Frame> frames;
};

struct Dialogue {
  // "12_00000" (SGD; unique within a split only), "MUL0036" (MultiWOZ).
  std::string id;
  // The services (domains) the dialogue is about, as the data set lists them; for MultiWOZ
  // every domain of the schema.
  std::vector<std::string> services;
  std::vector<Turn> turns;
};

struct SlotSchema {
  std::string name;
  std::string description;
  bool is_categorical = false;
  // Categorical slots: the values it may take (SGD schema; MultiWOZ: the ontology's).
  std::vector<std::string> possible_values;
};

struct IntentSchema {
  std::string name;
  std::string description;
  bool is_transactional = false;
  std::vector<std::string> required_slots;
  // Optional slot -> its default value ("dontcare" in most SGD intents).
  std::map<std::string, std::string> optional_slots;
  std::vector<std::string> result_slots;
};

struct ServiceSchema {
  std::string name;
  std::string description;
  std::vector<SlotSchema> slots;
  std::vector<IntentSchema> intents;

  const SlotSchema* FindSlot(absl::string_view name) const;
};

struct DialogueDataset {
  // "sgd", "multiwoz21".
  std::string format;
  std::string origin;
  std::string split;
  // In file order.
  std::vector<ServiceSchema> services;
  std::vector<Dialogue> dialogues;

  const ServiceSchema* FindService(absl::string_view name) const;
};

}  // namespace helpline::nlu::data
