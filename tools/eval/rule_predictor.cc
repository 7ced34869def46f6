#include "tools/eval/rule_predictor.h"

#include <algorithm>
#include <map>
#include <set>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "nlu/dst/dst_model.h"
#include "services/dst/dialogue_model.h"
#include "services/dst/tracker.h"

namespace helpline::eval {
namespace {

// "GetCarsAvailable" -> "get cars available"; "card_arrival" -> "card arrival".
std::string NameInWords(absl::string_view name) {
  std::string out;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    if (c == '_' || c == '-' || c == '.') {
      if (!out.empty() && out.back() != ' ') out.push_back(' ');
      continue;
    }
    if (absl::ascii_isupper(c) && i > 0 && !out.empty() && out.back() != ' ' &&
        !absl::ascii_isupper(name[i - 1])) {
      out.push_back(' ');
    }
    out.push_back(absl::ascii_tolower(c));
  }
  return out;
}

// Adds `value` to an enum slot unless a value with the same lower-cased text is there.
void AddEnumValue(domain::Slot& slot, absl::flat_hash_set<std::string>& seen,
                  const std::string& value) {
  const std::string key = absl::AsciiStrToLower(absl::StripAsciiWhitespace(value));
  if (key.empty() || !seen.insert(key).second) return;
  domain::EnumValue v;
  v.value = value;
  slot.values.push_back(std::move(v));
}

bool IsWordByte(char c) { return absl::ascii_isalnum(c) || static_cast<unsigned char>(c) >= 0x80; }

// The first occurrence of `value` in `text` at word boundaries, ignoring ASCII case.
bool Locate(absl::string_view text, absl::string_view value, size_t* begin, size_t* end) {
  const std::string t = absl::AsciiStrToLower(text);
  const std::string v = absl::AsciiStrToLower(absl::StripAsciiWhitespace(value));
  if (v.empty()) return false;
  size_t pos = 0;
  while ((pos = t.find(v, pos)) != std::string::npos) {
    const size_t e = pos + v.size();
    if ((pos == 0 || !IsWordByte(t[pos - 1]) || !IsWordByte(v.front())) &&
        (e == t.size() || !IsWordByte(t[e]) || !IsWordByte(v.back()))) {
      *begin = pos;
      *end = e;
      return true;
    }
    ++pos;
  }
  return false;
}

class RuleUtterancePredictor : public UtterancePredictor {
 public:
  RuleUtterancePredictor(std::shared_ptr<const domain::Domain> domain, bool closed_set,
                         std::string description)
      : tracker_(std::move(domain), dst::TrackerOptions{}),
        closed_set_(closed_set),
        description_(std::move(description)) {}

  absl::StatusOr<metrics::UtterancePrediction> Predict(absl::string_view text) override {
    metrics::UtterancePrediction prediction;
    dst::TurnInput input;
    input.user_text = std::string(text);
    input.language = "en";
    absl::StatusOr<dst::TrackResult> result = tracker_.Track(input);
    if (!result.ok()) return prediction;  // An empty turn: no intent, no slots.
    prediction.intent = closed_set_ ? result->best.intent : result->state.active_intent();
    prediction.confidence = result->best.score;
    for (const auto& [name, value] : result->state.slots()) {
      size_t begin = 0;
      size_t end = 0;
      if (!Locate(text, value.value(), &begin, &end)) continue;
      prediction.slots.push_back({name, begin, end, std::string(text.substr(begin, end - begin))});
    }
    std::sort(prediction.slots.begin(), prediction.slots.end(),
              [](const data::SlotSpan& a, const data::SlotSpan& b) { return a.begin < b.begin; });
    return prediction;
  }

  std::string Describe() const override { return description_; }

 private:
  dst::Tracker tracker_;
  bool closed_set_;
  std::string description_;
};

// MultiWOZ's system acts name slots in their own words ("leave", "price", "people").
const std::map<std::string, std::vector<std::string>>& ActSlotAliases() {
  static const auto* kAliases = new std::map<std::string, std::vector<std::string>>{
      {"leave", {"leaveat"}},      {"arrive", {"arriveby"}},   {"depart", {"departure"}},
      {"dest", {"destination"}},   {"price", {"pricerange"}},  {"people", {"book people"}},
      {"stay", {"book stay"}},     {"day", {"day", "book day"}}, {"time", {"book time"}},
  };
  return *kAliases;
}

// The domain slot "<service>.<slot>" an act names (MultiWOZ's act names through
// ActSlotAliases); "" when the domain has none.
std::string ActSlot(const domain::Domain& domain, const std::string& service,
                    const std::string& slot) {
  if (slot.empty()) return "";
  std::vector<std::string> names = {slot};
  auto alias = ActSlotAliases().find(slot);
  if (alias != ActSlotAliases().end()) names = alias->second;
  for (const std::string& name : names) {
    std::string full = absl::StrCat(service, ".", name);
    if (domain.FindSlot(full) != nullptr) return full;
  }
  return "";
}

class RuleDialogueSession : public DialogueSession {
 public:
  RuleDialogueSession(const dst::Tracker& tracker, bool intents,
                      std::vector<const data::ServiceSchema*> services, bool learned)
      : tracker_(tracker), intents_(intents), services_(std::move(services)), learned_(learned) {
    // The learned tracker follows the dialogue's services (as a session of it alone does).
    if (learned_) {
      for (const data::ServiceSchema* s : services_) state_.mutable_context()->add_services(s->name);
    }
  }

  absl::Status SystemTurn(const data::Turn& turn) override {
    // What the system really asked for replaces what the tracker would have asked; the
    // learned tracker reads the system's real acts and utterance too.
    state_.clear_requested_slots();
    common::v1::DialogueContext* context = learned_ ? state_.mutable_context() : nullptr;
    if (context != nullptr) {
      context->clear_system_acts();
      context->set_system_utterance(turn.utterance);
    }
    const domain::Domain& domain = tracker_.domain();
    for (const data::Frame& frame : turn.frames) {
      for (const data::DialogueAct& act : frame.actions) {
        const std::string slot = ActSlot(domain, frame.service, act.slot);
        if (context != nullptr) {
          common::v1::ContextAct* a = context->add_system_acts();
          a->set_act(act.act);
          a->set_service(frame.service);
          a->set_slot(slot);
          for (const std::string& v : act.values) a->add_values(v);
        }
        if (act.act == "REQUEST" && !slot.empty()) state_.add_requested_slots(slot);
      }
    }
    return absl::OkStatus();
  }

  absl::StatusOr<metrics::DialogueStatePrediction> UserTurn(
      absl::string_view utterance) override {
    dst::TurnInput input;
    input.user_text = std::string(utterance);
    input.language = "en";
    input.prior = state_;
    absl::StatusOr<dst::TrackResult> result = tracker_.Track(input);
    if (!result.ok()) return result.status();  // The learned tracker failed (libtorch).
    state_ = std::move(result->state);
    const std::string& intent = state_.active_intent();
    const size_t dot = intent.find('.');
    if (dot != std::string::npos) last_intent_[intent.substr(0, dot)] = intent.substr(dot + 1);
    metrics::DialogueStatePrediction out;
    for (const data::ServiceSchema* service : services_) {
      data::FrameState& frame = out[service->name];
      if (intents_) {
        auto it = last_intent_.find(service->name);
        frame.active_intent = it != last_intent_.end() ? it->second : "NONE";
      }
    }
    for (const auto& [name, value] : state_.slots()) {
      const size_t d = name.find('.');
      if (d == std::string::npos || value.value().empty()) continue;
      auto it = out.find(name.substr(0, d));
      if (it == out.end()) continue;
      it->second.slot_values[name.substr(d + 1)] = {value.value()};
    }
    return out;
  }

 private:
  const dst::Tracker& tracker_;
  bool intents_;
  std::vector<const data::ServiceSchema*> services_;
  bool learned_;
  common::v1::DialogueState state_;
  std::map<std::string, std::string> last_intent_;
};

class RuleDialoguePredictor : public DialoguePredictor {
 public:
  RuleDialoguePredictor(std::shared_ptr<const domain::Domain> domain, bool intents,
                        std::string description,
                        std::shared_ptr<const dst::DialogueModel> learned,
                        const FusionOptions& fusion)
      : tracker_(std::move(domain), Options(learned, fusion)),
        intents_(intents),
        learned_(learned != nullptr),
        description_(std::move(description)) {}

  absl::StatusOr<std::unique_ptr<DialogueSession>> NewSession(
      const std::vector<const data::ServiceSchema*>& services) override {
    return std::make_unique<RuleDialogueSession>(tracker_, intents_, services, learned_);
  }

  std::string Describe() const override { return description_; }

 private:
  static dst::TrackerOptions Options(const std::shared_ptr<const dst::DialogueModel>& learned,
                                     const FusionOptions& fusion) {
    dst::TrackerOptions options;
    options.dialogue_model = learned;
    options.learned_intent_first = fusion.learned_intent_first;
    options.learned_values_first = fusion.learned_values_first;
    return options;
  }

  dst::Tracker tracker_;
  bool intents_;
  bool learned_;
  std::string description_;
};

}  // namespace

absl::StatusOr<domain::Domain> DomainFromUtterances(const data::UtteranceDataset& train) {
  if (train.examples.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(train.origin, ": no training examples"));
  }
  domain::Domain d;
  d.origin = absl::StrCat(train.origin, " (training split, rule baseline)");
  d.name = train.format;
  d.languages = {"en"};
  std::map<std::string, size_t> intent_index;
  std::map<std::string, std::set<std::string>> intent_slots;
  std::map<std::string, absl::flat_hash_set<std::string>> seen_examples;
  std::map<std::string, size_t> slot_index;
  std::map<std::string, absl::flat_hash_set<std::string>> seen_values;
  for (const data::UtteranceExample& example : train.examples) {
    auto [it, added] = intent_index.emplace(example.intent, d.intents.size());
    if (added) {
      domain::Intent intent;
      intent.name = example.intent;
      intent.description = NameInWords(example.intent);
      d.intents.push_back(std::move(intent));
    }
    if (seen_examples[example.intent].insert(example.text).second) {
      d.intents[it->second].examples["en"].push_back(example.text);
    }
    for (const data::SlotSpan& span : example.spans) {
      intent_slots[example.intent].insert(span.slot);
      auto [s, new_slot] = slot_index.emplace(span.slot, d.slots.size());
      if (new_slot) {
        domain::Slot slot;
        slot.name = span.slot;
        slot.type = domain::SlotType::kEnum;
        d.slots.push_back(std::move(slot));
      }
      const std::string surface = example.text.substr(span.begin, span.end - span.begin);
      AddEnumValue(d.slots[s->second], seen_values[span.slot], absl::AsciiStrToLower(surface));
    }
  }
  for (domain::Intent& intent : d.intents) {
    for (const std::string& slot : intent_slots[intent.name]) intent.optional_slots.push_back(slot);
  }
  return d;
}

absl::StatusOr<domain::Domain> DomainFromDialogues(const data::DialogueDataset& schema,
                                                   const data::DialogueDataset* train) {
  const bool multiwoz = schema.format == "multiwoz21";
  domain::Domain d;
  d.origin = absl::StrCat(schema.origin, " (schema, rule baseline)");
  d.name = schema.format;
  d.languages = {"en"};
  // Training evidence: examples per "<service>.<intent>", values per "<service>.<slot>".
  std::map<std::string, std::vector<std::string>> examples;
  std::map<std::string, std::vector<std::string>> values;
  if (train != nullptr) {
    for (const data::Dialogue& dialogue : train->dialogues) {
      std::map<std::string, data::FrameState> previous;
      for (const data::Turn& turn : dialogue.turns) {
        if (turn.speaker != data::Speaker::kUser) continue;
        for (const data::Frame& frame : turn.frames) {
          if (!frame.has_state) continue;
          const data::FrameState& before = previous[frame.service];
          if (multiwoz) {
            if (frame.state.slot_values != before.slot_values && !frame.state.slot_values.empty()) {
              examples[absl::StrCat(frame.service, ".find")].push_back(turn.utterance);
            }
          } else if (frame.state.active_intent != "NONE" &&
                     frame.state.active_intent != before.active_intent) {
            examples[absl::StrCat(frame.service, ".", frame.state.active_intent)].push_back(
                turn.utterance);
          }
          for (const auto& [slot, forms] : frame.state.slot_values) {
            auto& list = values[absl::StrCat(frame.service, ".", slot)];
            list.insert(list.end(), forms.begin(), forms.end());
          }
          previous[frame.service] = frame.state;
        }
      }
    }
  }
  for (const data::ServiceSchema& service : schema.services) {
    if (multiwoz && service.slots.empty()) continue;  // police: nothing to track.
    for (const data::SlotSchema& s : service.slots) {
      domain::Slot slot;
      slot.name = absl::StrCat(service.name, ".", s.name);
      slot.description = s.description;
      slot.type = domain::SlotType::kEnum;
      absl::flat_hash_set<std::string> seen;
      for (const std::string& v : s.possible_values) {
        if (v != "dontcare") AddEnumValue(slot, seen, v);
      }
      for (const std::string& v : values[slot.name]) {
        if (v != "dontcare") AddEnumValue(slot, seen, v);
      }
      if (slot.values.empty()) slot.type = domain::SlotType::kFreeText;
      d.slots.push_back(std::move(slot));
    }
    std::vector<data::IntentSchema> intents = service.intents;
    if (multiwoz) {
      data::IntentSchema find;
      find.name = "find";
      find.description = absl::StrCat("find a ", service.name);
      for (const data::SlotSchema& s : service.slots) find.optional_slots[s.name] = "";
      intents = {find};
    }
    for (const data::IntentSchema& i : intents) {
      domain::Intent intent;
      intent.name = absl::StrCat(service.name, ".", i.name);
      intent.description = i.description;
      std::vector<std::string>& list = intent.examples["en"];
      if (!multiwoz) list.push_back(NameInWords(i.name));
      if (!i.description.empty()) list.push_back(i.description);
      absl::flat_hash_set<std::string> seen(list.begin(), list.end());
      for (const std::string& example : examples[intent.name]) {
        if (seen.insert(example).second) list.push_back(example);
      }
      for (const std::string& slot : i.required_slots) {
        intent.required_slots.push_back(absl::StrCat(service.name, ".", slot));
      }
      for (const auto& [slot, default_value] : i.optional_slots) {
        intent.optional_slots.push_back(absl::StrCat(service.name, ".", slot));
      }
      d.intents.push_back(std::move(intent));
    }
  }
  if (d.intents.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(schema.origin, ": the schema has no intents"));
  }
  return d;
}

std::unique_ptr<UtterancePredictor> MakeRuleUtterancePredictor(
    std::shared_ptr<const domain::Domain> domain, bool closed_set, std::string description) {
  return std::make_unique<RuleUtterancePredictor>(std::move(domain), closed_set,
                                                  std::move(description));
}

std::unique_ptr<DialoguePredictor> MakeRuleDialoguePredictor(
    std::shared_ptr<const domain::Domain> domain, bool intents, std::string description,
    std::shared_ptr<const dst::DialogueModel> learned, FusionOptions fusion) {
  return std::make_unique<RuleDialoguePredictor>(std::move(domain), intents,
                                                 std::move(description), std::move(learned),
                                                 fusion);
}

absl::StatusOr<std::unique_ptr<DialoguePredictor>> MakeFusedDialoguePredictor(
    const std::string& dialogue_model_dir, const data::DialogueDataset& eval,
    const data::DialogueDataset* train, FusionOptions fusion) {
  absl::StatusOr<domain::Domain> domain = DomainFromDialogues(eval, train);
  if (!domain.ok()) return domain.status();
  absl::StatusOr<std::unique_ptr<nlu::dst::DstModel>> model =
      nlu::dst::DstModel::Load(dialogue_model_dir);
  if (!model.ok()) {
    return absl::Status(model.status().code(), absl::StrCat("--dialogue-model ",
                                                            dialogue_model_dir, ": ",
                                                            model.status().message()));
  }
  const std::string name = absl::StrCat("helpline-dst-1 ", dialogue_model_dir);
  std::shared_ptr<const dst::DialogueModel> learned = dst::LearnedDialogueModel::ForServices(
      std::shared_ptr<const nlu::dst::DstModel>(*std::move(model)), name, eval.services);
  const std::string description = absl::StrCat(
      "fused: rule (domain from the schema of ", eval.origin,
      train != nullptr ? absl::StrCat(" and the dialogues of ", train->origin) : "", ": ",
      domain->intents.size(), " intents, ", domain->slots.size(), " slots) + learned tracker ",
      dialogue_model_dir, " (services/dst Tracker with TrackerOptions::dialogue_model; ",
      fusion.learned_intent_first ? "learned intent first" : "rules' intent first", ", ",
      fusion.learned_values_first ? "learned values first" : "rules' values first", ")");
  return MakeRuleDialoguePredictor(std::make_shared<const domain::Domain>(*std::move(domain)),
                                   eval.format != "multiwoz21", description, std::move(learned),
                                   fusion);
}

}  // namespace helpline::eval
