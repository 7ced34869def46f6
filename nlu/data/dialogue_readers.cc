// SGD and MultiWOZ 2.1 readers.
#include <algorithm>
#include <filesystem>
#include <map>
#include <set>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/status/status.h"
#include "nlohmann/json.hpp"
#include "nlu/data/read_util.h"
#include "nlu/data/readers.h"

namespace helpline::nlu::data {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using internal::FileError;

absl::StatusOr<json> ParseJsonFile(const std::string& file) {
  HELPLINE_ASSIGN_OR_RETURN(const std::string content, ReadFileContent(file));
  try {
    return json::parse(content);
  } catch (const json::exception& e) {
    return FileError(file, e.what());
  }
}

// Typed access to JSON members with errors that name the file and the entry.
class Entry {
 public:
  Entry(const std::string& file, std::string where) : file_(&file), where_(std::move(where)) {}

  absl::Status Error(absl::string_view message) const {
    return FileError(*file_, absl::StrCat(where_, ": ", message));
  }
  Entry Child(absl::string_view suffix) const { return Entry(*file_, absl::StrCat(where_, suffix)); }

  absl::Status ExpectObject(const json& value) const {
    return value.is_object() ? absl::OkStatus() : Error("expected an object");
  }
  // A required member of an object, of the JSON type checked by `is`.
  absl::StatusOr<const json*> Member(const json& object, const char* key,
                                     bool (json::*is)() const noexcept,
                                     absl::string_view type) const {
    auto it = object.find(key);
    if (it == object.end()) return Error(absl::StrCat("'", key, "' missing"));
    if (!((*it).*is)()) return Error(absl::StrCat("'", key, "' is not ", type));
    return &*it;
  }
  absl::StatusOr<std::string> String(const json& object, const char* key) const {
    HELPLINE_ASSIGN_OR_RETURN(const json* value, Member(object, key, &json::is_string, "a string"));
    return value->get<std::string>();
  }
  // An optional string member ("" when absent).
  absl::StatusOr<std::string> OptionalString(const json& object, const char* key) const {
    if (!object.contains(key)) return std::string();
    return String(object, key);
  }
  absl::StatusOr<std::vector<std::string>> Strings(const json& value, absl::string_view what) const {
    if (!value.is_array()) return Error(absl::StrCat("'", what, "' is not a list"));
    std::vector<std::string> out;
    for (const json& item : value) {
      if (!item.is_string()) return Error(absl::StrCat("'", what, "' has a non-string item"));
      out.push_back(item.get<std::string>());
    }
    return out;
  }
  // An optional list of strings (empty when absent).
  absl::StatusOr<std::vector<std::string>> OptionalStrings(const json& object,
                                                           const char* key) const {
    auto it = object.find(key);
    if (it == object.end()) return std::vector<std::string>();
    return Strings(*it, key);
  }

 private:
  const std::string* file_;  // Outlives the entry.
  std::string where_;
};

// ---- SGD ----

absl::StatusOr<std::vector<ServiceSchema>> ParseSgdSchema(const std::string& file) {
  HELPLINE_ASSIGN_OR_RETURN(const json doc, ParseJsonFile(file));
  if (!doc.is_array()) return FileError(file, "expected a list of services");
  std::vector<ServiceSchema> services;
  for (size_t i = 0; i < doc.size(); ++i) {
    const json& s = doc[i];
    Entry entry(file, absl::StrCat("[", i, "]"));
    HELPLINE_RETURN_IF_ERROR(entry.ExpectObject(s));
    ServiceSchema service;
    HELPLINE_ASSIGN_OR_RETURN(service.name, entry.String(s, "service_name"));
    entry = entry.Child(absl::StrCat(" (", service.name, ")"));
    HELPLINE_ASSIGN_OR_RETURN(service.description, entry.OptionalString(s, "description"));
    HELPLINE_ASSIGN_OR_RETURN(const json* slots, entry.Member(s, "slots", &json::is_array, "a list"));
    for (size_t j = 0; j < slots->size(); ++j) {
      const json& x = (*slots)[j];
      Entry e = entry.Child(absl::StrCat(".slots[", j, "]"));
      HELPLINE_RETURN_IF_ERROR(e.ExpectObject(x));
      SlotSchema slot;
      HELPLINE_ASSIGN_OR_RETURN(slot.name, e.String(x, "name"));
      HELPLINE_ASSIGN_OR_RETURN(slot.description, e.OptionalString(x, "description"));
      if (x.contains("is_categorical")) {
        if (!x["is_categorical"].is_boolean()) return e.Error("'is_categorical' is not a boolean");
        slot.is_categorical = x["is_categorical"].get<bool>();
      }
      HELPLINE_ASSIGN_OR_RETURN(slot.possible_values, e.OptionalStrings(x, "possible_values"));
      service.slots.push_back(std::move(slot));
    }
    HELPLINE_ASSIGN_OR_RETURN(const json* intents,
                              entry.Member(s, "intents", &json::is_array, "a list"));
    for (size_t j = 0; j < intents->size(); ++j) {
      const json& x = (*intents)[j];
      Entry e = entry.Child(absl::StrCat(".intents[", j, "]"));
      HELPLINE_RETURN_IF_ERROR(e.ExpectObject(x));
      IntentSchema intent;
      HELPLINE_ASSIGN_OR_RETURN(intent.name, e.String(x, "name"));
      HELPLINE_ASSIGN_OR_RETURN(intent.description, e.OptionalString(x, "description"));
      if (x.contains("is_transactional")) {
        if (!x["is_transactional"].is_boolean()) return e.Error("'is_transactional' is not a boolean");
        intent.is_transactional = x["is_transactional"].get<bool>();
      }
      HELPLINE_ASSIGN_OR_RETURN(intent.required_slots, e.OptionalStrings(x, "required_slots"));
      HELPLINE_ASSIGN_OR_RETURN(intent.result_slots, e.OptionalStrings(x, "result_slots"));
      if (x.contains("optional_slots")) {
        const json& optional = x["optional_slots"];
        if (!optional.is_object()) return e.Error("'optional_slots' is not an object");
        for (const auto& [name, value] : optional.items()) {
          if (!value.is_string()) return e.Error("'optional_slots' has a non-string default");
          intent.optional_slots[name] = value.get<std::string>();
        }
      }
      for (const std::string& name : intent.required_slots) {
        if (service.FindSlot(name) == nullptr) {
          return e.Error(absl::StrCat("required slot '", name, "' is not a slot of the service"));
        }
      }
      service.intents.push_back(std::move(intent));
    }
    services.push_back(std::move(service));
  }
  return services;
}

absl::Status ParseSgdFrame(const json& f, const Entry& entry, const std::string& utterance,
                           const DialogueDataset& data, Frame& frame) {
  HELPLINE_RETURN_IF_ERROR(entry.ExpectObject(f));
  HELPLINE_ASSIGN_OR_RETURN(frame.service, entry.String(f, "service"));
  const ServiceSchema* service = data.FindService(frame.service);
  if (service == nullptr) {
    return entry.Error(absl::StrCat("service '", frame.service, "' is not in the schema"));
  }
  if (f.contains("slots")) {
    const json& slots = f["slots"];
    if (!slots.is_array()) return entry.Error("'slots' is not a list");
    for (size_t k = 0; k < slots.size(); ++k) {
      const json& x = slots[k];
      Entry e = entry.Child(absl::StrCat(".slots[", k, "]"));
      HELPLINE_RETURN_IF_ERROR(e.ExpectObject(x));
      SlotSpan span;
      HELPLINE_ASSIGN_OR_RETURN(span.slot, e.String(x, "slot"));
      HELPLINE_ASSIGN_OR_RETURN(const json* start,
                                e.Member(x, "start", &json::is_number_unsigned, "a number"));
      HELPLINE_ASSIGN_OR_RETURN(const json* end, e.Member(x, "exclusive_end",
                                                          &json::is_number_unsigned, "a number"));
      const long b = internal::CodePointToByte(utterance, start->get<size_t>());
      const long en = internal::CodePointToByte(utterance, end->get<size_t>());
      if (b < 0 || en < 0 || b >= en) return e.Error("span outside the utterance or empty");
      span.begin = static_cast<size_t>(b);
      span.end = static_cast<size_t>(en);
      span.value = utterance.substr(span.begin, span.end - span.begin);
      frame.spans.push_back(std::move(span));
    }
    std::sort(frame.spans.begin(), frame.spans.end(),
              [](const SlotSpan& a, const SlotSpan& b) { return a.begin < b.begin; });
  }
  if (f.contains("actions")) {
    const json& actions = f["actions"];
    if (!actions.is_array()) return entry.Error("'actions' is not a list");
    for (size_t k = 0; k < actions.size(); ++k) {
      const json& x = actions[k];
      Entry e = entry.Child(absl::StrCat(".actions[", k, "]"));
      HELPLINE_RETURN_IF_ERROR(e.ExpectObject(x));
      DialogueAct act;
      HELPLINE_ASSIGN_OR_RETURN(act.act, e.String(x, "act"));
      HELPLINE_ASSIGN_OR_RETURN(act.slot, e.OptionalString(x, "slot"));
      HELPLINE_ASSIGN_OR_RETURN(act.values, e.OptionalStrings(x, "values"));
      frame.actions.push_back(std::move(act));
    }
  }
  if (f.contains("state")) {
    const json& s = f["state"];
    Entry e = entry.Child(".state");
    HELPLINE_RETURN_IF_ERROR(e.ExpectObject(s));
    frame.has_state = true;
    HELPLINE_ASSIGN_OR_RETURN(frame.state.active_intent, e.String(s, "active_intent"));
    HELPLINE_ASSIGN_OR_RETURN(frame.state.requested_slots, e.OptionalStrings(s, "requested_slots"));
    HELPLINE_ASSIGN_OR_RETURN(const json* values,
                              e.Member(s, "slot_values", &json::is_object, "an object"));
    for (const auto& [slot, list] : values->items()) {
      if (service->FindSlot(slot) == nullptr) {
        return e.Error(absl::StrCat("slot '", slot, "' is not a slot of ", frame.service));
      }
      HELPLINE_ASSIGN_OR_RETURN(std::vector<std::string> forms,
                                e.Strings(list, absl::StrCat("slot_values.", slot)));
      if (forms.empty()) return e.Error(absl::StrCat("slot '", slot, "' has no value"));
      frame.state.slot_values[slot] = std::move(forms);
    }
  }
  return absl::OkStatus();
}

absl::Status ParseSgdDialogues(const std::string& file, DialogueDataset& data) {
  HELPLINE_ASSIGN_OR_RETURN(const json doc, ParseJsonFile(file));
  if (!doc.is_array()) return FileError(file, "expected a list of dialogues");
  for (size_t i = 0; i < doc.size(); ++i) {
    const json& d = doc[i];
    Entry entry(file, absl::StrCat("[", i, "]"));
    HELPLINE_RETURN_IF_ERROR(entry.ExpectObject(d));
    Dialogue dialogue;
    HELPLINE_ASSIGN_OR_RETURN(dialogue.id, entry.String(d, "dialogue_id"));
    entry = entry.Child(absl::StrCat(" (", dialogue.id, ")"));
    HELPLINE_ASSIGN_OR_RETURN(const json* services,
                              entry.Member(d, "services", &json::is_array, "a list"));
    HELPLINE_ASSIGN_OR_RETURN(dialogue.services, entry.Strings(*services, "services"));
    for (const std::string& name : dialogue.services) {
      if (data.FindService(name) == nullptr) {
        return entry.Error(absl::StrCat("service '", name, "' is not in the schema"));
      }
    }
    HELPLINE_ASSIGN_OR_RETURN(const json* turns, entry.Member(d, "turns", &json::is_array, "a list"));
    for (size_t t = 0; t < turns->size(); ++t) {
      const json& x = (*turns)[t];
      Entry e = entry.Child(absl::StrCat(".turns[", t, "]"));
      HELPLINE_RETURN_IF_ERROR(e.ExpectObject(x));
      Turn turn;
      HELPLINE_ASSIGN_OR_RETURN(const std::string speaker, e.String(x, "speaker"));
      if (speaker == "USER") {
        turn.speaker = Speaker::kUser;
      } else if (speaker == "SYSTEM") {
        turn.speaker = Speaker::kSystem;
      } else {
        return e.Error(absl::StrCat("speaker '", speaker, "' is neither USER nor SYSTEM"));
      }
      HELPLINE_ASSIGN_OR_RETURN(turn.utterance, e.String(x, "utterance"));
      HELPLINE_ASSIGN_OR_RETURN(const json* frames, e.Member(x, "frames", &json::is_array, "a list"));
      for (size_t k = 0; k < frames->size(); ++k) {
        Frame frame;
        HELPLINE_RETURN_IF_ERROR(ParseSgdFrame((*frames)[k], e.Child(absl::StrCat(".frames[", k, "]")),
                                               turn.utterance, data, frame));
        turn.frames.push_back(std::move(frame));
      }
      dialogue.turns.push_back(std::move(turn));
    }
    data.dialogues.push_back(std::move(dialogue));
  }
  return absl::OkStatus();
}

absl::StatusOr<DialogueDataset> ReadSgd(const std::string& path, const ReadOptions& options) {
  HELPLINE_ASSIGN_OR_RETURN(const internal::SplitFile folder,
                            internal::ResolveSplitFolder(path, "schema.json", options));
  DialogueDataset data;
  data.format = "sgd";
  data.origin = folder.path;
  data.split = folder.split;
  HELPLINE_ASSIGN_OR_RETURN(data.services,
                            ParseSgdSchema(internal::FindMaybeGz(folder.path, "schema.json")));
  HELPLINE_ASSIGN_OR_RETURN(const std::vector<fs::path> entries, internal::ListFolder(folder.path));
  size_t files = 0;
  for (const fs::path& entry : entries) {
    const std::string name = internal::NameWithoutGz(entry);
    if (!absl::StartsWith(name, "dialogues_") || !absl::EndsWith(name, ".json")) continue;
    HELPLINE_RETURN_IF_ERROR(ParseSgdDialogues(entry.string(), data));
    ++files;
  }
  if (files == 0) {
    return absl::NotFoundError(absl::StrCat(folder.path, ": no dialogues_*.json files"));
  }
  return data;
}

// ---- MultiWOZ 2.1 ----

std::string Lower(absl::string_view s) { return absl::AsciiStrToLower(s); }

// Values that mean "not set" in MultiWOZ belief states.
bool IsUnset(absl::string_view value) {
  return value.empty() || value == "not mentioned" || value == "none";
}

// The belief state of one system turn's metadata: one frame per domain.
absl::Status ParseBeliefState(const json& metadata, const Entry& entry,
                              std::map<std::string, std::set<std::string>>& schema_slots,
                              std::vector<std::string>& domain_order, std::vector<Frame>& frames) {
  HELPLINE_RETURN_IF_ERROR(entry.ExpectObject(metadata));
  for (const auto& [domain_raw, parts] : metadata.items()) {
    const std::string domain = Lower(domain_raw);
    Entry e = entry.Child(absl::StrCat(".metadata.", domain_raw));
    HELPLINE_RETURN_IF_ERROR(e.ExpectObject(parts));
    if (!schema_slots.count(domain)) domain_order.push_back(domain);
    std::set<std::string>& known = schema_slots[domain];
    Frame frame;
    frame.service = domain;
    frame.has_state = true;
    for (const char* part : {"semi", "book"}) {
      if (!parts.contains(part)) continue;
      const json& slots = parts[part];
      Entry pe = e.Child(absl::StrCat(".", part));
      HELPLINE_RETURN_IF_ERROR(pe.ExpectObject(slots));
      for (const auto& [slot_raw, value] : slots.items()) {
        if (slot_raw == "booked") continue;  // What was booked, not what the user wants.
        const std::string slot =
            std::string(part) == "book" ? absl::StrCat("book ", Lower(slot_raw)) : Lower(slot_raw);
        known.insert(slot);
        if (!value.is_string()) return pe.Error(absl::StrCat("'", slot_raw, "' is not a string"));
        const std::string v = value.get<std::string>();
        if (IsUnset(absl::StripAsciiWhitespace(v))) continue;
        frame.state.slot_values[slot] = {v};
      }
    }
    frames.push_back(std::move(frame));
  }
  return absl::OkStatus();
}

// dialog_act {"Hotel-Inform": [["Name", "worth house"]], ...} -> actions per domain.
absl::Status ParseActs(const json& acts, const Entry& entry, std::vector<Frame>& frames) {
  if (acts.is_null()) return absl::OkStatus();
  if (!acts.is_object()) return entry.Error("'dialog_act' is not an object");
  for (const auto& [key, pairs] : acts.items()) {
    const size_t dash = key.find('-');
    if (dash == std::string::npos) {
      return entry.Error(absl::StrCat("dialog act '", key, "' is not Domain-Act"));
    }
    const std::string domain = Lower(key.substr(0, dash));
    auto it = std::find_if(frames.begin(), frames.end(),
                           [&](const Frame& f) { return f.service == domain; });
    if (it == frames.end()) {
      frames.push_back(Frame{});
      frames.back().service = domain;
      it = frames.end() - 1;
    }
    if (!pairs.is_array()) return entry.Error(absl::StrCat("dialog act '", key, "' is not a list"));
    for (const json& pair : pairs) {
      if (!pair.is_array() || pair.size() != 2 || !pair[0].is_string() || !pair[1].is_string()) {
        return entry.Error(absl::StrCat("dialog act '", key, "' has an item that is not [slot, value]"));
      }
      DialogueAct act;
      act.act = absl::AsciiStrToUpper(key.substr(dash + 1));
      act.slot = Lower(pair[0].get<std::string>());
      act.values.push_back(pair[1].get<std::string>());
      it->actions.push_back(act);
      if (act.act == "REQUEST" && it->has_state) it->state.requested_slots.push_back(act.slot);
    }
  }
  return absl::OkStatus();
}

// Ontology keys "hotel-price range" -> slot names "pricerange": compared without spaces.
std::string SlotKey(absl::string_view domain, absl::string_view slot) {
  return absl::StrCat(Lower(domain), "-", absl::StrReplaceAll(Lower(slot), {{" ", ""}}));
}

absl::StatusOr<DialogueDataset> ReadMultiwoz(const std::string& path, const ReadOptions& options) {
  HELPLINE_ASSIGN_OR_RETURN(const internal::SplitFile file,
                            internal::ResolveSplitFile(path, ".json", options));
  HELPLINE_ASSIGN_OR_RETURN(const json doc, ParseJsonFile(file.path));
  if (!doc.is_object()) return FileError(file.path, "expected an object of dialogues by id");
  DialogueDataset data;
  data.format = "multiwoz21";
  data.origin = file.path;
  data.split = file.split;
  std::map<std::string, std::set<std::string>> schema_slots;
  std::vector<std::string> domain_order;
  for (const auto& [id, d] : doc.items()) {
    Entry entry(file.path, id);
    HELPLINE_RETURN_IF_ERROR(entry.ExpectObject(d));
    HELPLINE_ASSIGN_OR_RETURN(const json* log, entry.Member(d, "log", &json::is_array, "a list"));
    Dialogue dialogue;
    dialogue.id = id;
    for (size_t t = 0; t < log->size(); ++t) {
      const json& x = (*log)[t];
      Entry e = entry.Child(absl::StrCat(".log[", t, "]"));
      HELPLINE_RETURN_IF_ERROR(e.ExpectObject(x));
      Turn turn;
      turn.speaker = t % 2 == 0 ? Speaker::kUser : Speaker::kSystem;
      HELPLINE_ASSIGN_OR_RETURN(turn.utterance, e.String(x, "text"));
      if (turn.speaker == Speaker::kUser && t + 1 < log->size()) {
        // The belief state after a user turn is the next (system) turn's metadata.
        const json& next = (*log)[t + 1];
        Entry ne = entry.Child(absl::StrCat(".log[", t + 1, "]"));
        HELPLINE_RETURN_IF_ERROR(ne.ExpectObject(next));
        HELPLINE_ASSIGN_OR_RETURN(const json* metadata,
                                  ne.Member(next, "metadata", &json::is_object, "an object"));
        HELPLINE_RETURN_IF_ERROR(
            ParseBeliefState(*metadata, ne, schema_slots, domain_order, turn.frames));
      }
      if (x.contains("dialog_act")) {
        HELPLINE_RETURN_IF_ERROR(ParseActs(x["dialog_act"], e, turn.frames));
      }
      dialogue.turns.push_back(std::move(turn));
    }
    data.dialogues.push_back(std::move(dialogue));
  }
  // The ontology next to the data gives the values of the slots, when it is there.
  std::map<std::string, std::vector<std::string>> ontology;
  const fs::path dir = fs::path(file.path).parent_path();
  const std::string ontology_file =
      internal::FindMaybeGz(dir.empty() ? fs::path(".") : dir, "ontology_convlab2.json");
  if (!ontology_file.empty()) {
    HELPLINE_ASSIGN_OR_RETURN(const json o, ParseJsonFile(ontology_file));
    if (!o.is_object()) return FileError(ontology_file, "expected an object");
    for (const auto& [key, values] : o.items()) {
      const size_t dash = key.find('-');
      if (dash == std::string::npos || !values.is_array()) continue;
      std::vector<std::string>& out = ontology[SlotKey(key.substr(0, dash), key.substr(dash + 1))];
      for (const json& v : values) {
        if (v.is_string()) out.push_back(v.get<std::string>());
      }
    }
  }
  for (const std::string& domain : domain_order) {
    ServiceSchema service;
    service.name = domain;
    for (const std::string& name : schema_slots[domain]) {
      SlotSchema slot;
      slot.name = name;
      auto it = ontology.find(SlotKey(domain, name));
      if (it != ontology.end()) {
        slot.possible_values = it->second;
        slot.is_categorical = true;
      }
      service.slots.push_back(std::move(slot));
    }
    data.services.push_back(std::move(service));
  }
  for (Dialogue& dialogue : data.dialogues) dialogue.services = domain_order;
  return data;
}

}  // namespace

absl::StatusOr<DialogueDataset> ReadDialogues(const std::string& path, Format format,
                                              const ReadOptions& options) {
  switch (format) {
    case Format::kSgd:
      return ReadSgd(path, options);
    case Format::kMultiwoz21:
      return ReadMultiwoz(path, options);
    default:
      break;
  }
  return absl::InvalidArgumentError(
      absl::StrCat(FormatName(format), " is an utterance format, not a dialogue format"));
}

}  // namespace helpline::nlu::data
