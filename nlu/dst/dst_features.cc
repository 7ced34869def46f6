#include "nlu/dst/dst_features.h"

#include <algorithm>
#include <set>
#include <tuple>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace helpline::nlu::dst {
namespace {

uint64_t Fnv1a(absl::string_view prefix, absl::string_view text) {
  uint64_t h = 1469598103934665603ull;
  for (absl::string_view part : {prefix, absl::string_view("\x1f"), text}) {
    for (unsigned char c : part) {
      h ^= c;
      h *= 1099511628211ull;
    }
  }
  return h;
}

int64_t HashId(absl::string_view prefix, absl::string_view text) {
  return static_cast<int64_t>(Fnv1a(prefix, text) % static_cast<uint64_t>(kHashBuckets));
}

bool IsWordByte(unsigned char c) { return absl::ascii_isalnum(c) || c >= 0x80; }

// Lower-cased words ('_' and ASCII punctuation separate them; non-ASCII bytes are letters).
std::vector<std::string> Words(absl::string_view text) {
  std::vector<std::string> out;
  std::string word;
  for (unsigned char c : text) {
    if (IsWordByte(c)) {
      word.push_back(static_cast<char>(absl::ascii_tolower(c)));
    } else if (!word.empty()) {
      out.push_back(std::move(word));
      word.clear();
    }
  }
  if (!word.empty()) out.push_back(std::move(word));
  return out;
}

const char* NumberWord(absl::string_view word) {
  static const char* const kWords[] = {"zero", "one", "two",   "three",  "four",
                                       "five", "six", "seven", "eight",  "nine",
                                       "ten",  "eleven", "twelve"};
  static const char* const kDigits[] = {"0", "1", "2", "3", "4", "5", "6",
                                        "7", "8", "9", "10", "11", "12"};
  for (size_t i = 0; i < std::size(kWords); ++i) {
    if (word == kWords[i]) return kDigits[i];
  }
  return nullptr;
}

bool SameValue(absl::string_view a, absl::string_view b) {
  return absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(a), absl::StripAsciiWhitespace(b));
}

bool AnyFormIs(const std::vector<std::string>& forms, absl::string_view value) {
  for (const std::string& f : forms) {
    if (SameValue(f, value)) return true;
  }
  return false;
}

// Letters and digits only, lower-cased: "Guest House", "guesthouse" and "guest-house" are one
// value (MultiWOZ's states write values unlike its ontology does).
std::string LooseValue(absl::string_view value) {
  std::string out;
  for (unsigned char c : value) {
    if (IsWordByte(c)) out.push_back(static_cast<char>(absl::ascii_tolower(c)));
  }
  return out;
}

// The index of the possible value `forms` name: the same text, else the same letters and
// digits; -1 when none.
int FindPossibleValue(const std::vector<std::string>& possible,
                      const std::vector<std::string>& forms) {
  for (size_t v = 0; v < possible.size(); ++v) {
    if (AnyFormIs(forms, possible[v])) return static_cast<int>(v);
  }
  for (size_t v = 0; v < possible.size(); ++v) {
    const std::string loose = LooseValue(possible[v]);
    if (loose.empty()) continue;
    for (const std::string& form : forms) {
      if (LooseValue(form) == loose) return static_cast<int>(v);
    }
  }
  return -1;
}

// Slot names compared loosely (MultiWOZ acts say "price" for "pricerange", "people" for
// "book people"): lower-cased, without "book " and without spaces or '_'.
std::string LooseName(absl::string_view name) {
  std::string s = absl::AsciiStrToLower(name);
  if (absl::StartsWith(s, "book ")) s = s.substr(5);
  s.erase(std::remove_if(s.begin(), s.end(), [](char c) { return c == ' ' || c == '_'; }),
          s.end());
  return s;
}

int FindSlot(const data::ServiceSchema& service, absl::string_view name) {
  for (size_t i = 0; i < service.slots.size(); ++i) {
    if (service.slots[i].name == name) return static_cast<int>(i);
  }
  const std::string loose = LooseName(name);
  if (loose.size() < 3) return -1;
  for (size_t i = 0; i < service.slots.size(); ++i) {
    const std::string other = LooseName(service.slots[i].name);
    if (other.size() >= 3 && (absl::StartsWith(other, loose) || absl::StartsWith(loose, other))) {
      return static_cast<int>(i);
    }
  }
  return -1;
}

bool IsPlaceholderValue(absl::string_view v) {
  v = absl::StripAsciiWhitespace(v);
  return v.empty() || v == "?" || absl::EqualsIgnoreCase(v, "none") ||
         absl::EqualsIgnoreCase(v, "dontcare");
}

bool IsOfferAct(absl::string_view act) {
  return act == "OFFER" || act == "RECOMMEND" || act == "SELECT" || act == "OFFERBOOK";
}
bool IsInformAct(absl::string_view act) {
  return act == "INFORM" || act == "BOOK" || act == "OFFERBOOKED" || act == "NOTIFY_SUCCESS";
}

// Token indices [begin, end] whose text equals `value` (case-insensitive); false if none.
bool FindTokenSpan(absl::string_view utterance, const model::Features& f, absl::string_view value,
                   int& begin, int& end) {
  const int n = static_cast<int>(f.tokens.size());
  for (int s = 0; s < n; ++s) {
    for (int e = s; e < n && e < s + kMaxSpanTokens; ++e) {
      const absl::string_view text =
          utterance.substr(f.tokens[s].begin, f.tokens[e].end - f.tokens[s].begin);
      if (text.size() > value.size() + 2) break;
      if (SameValue(text, value)) {
        begin = s;
        end = e;
        return true;
      }
    }
  }
  return false;
}

}  // namespace

std::vector<int64_t> TextBag(absl::string_view text) {
  std::vector<int64_t> out;
  for (const std::string& word : Words(text)) {
    out.push_back(HashId("w", word));
    const std::string padded = absl::StrCat("<", word, ">");
    for (size_t i = 0; i + 3 <= padded.size(); ++i) {
      out.push_back(HashId("c", absl::string_view(padded).substr(i, 3)));
    }
  }
  if (out.empty()) out.push_back(HashId("w", ""));
  return out;
}

std::string MatchForm(absl::string_view text) {
  std::string out = " ";
  for (const std::string& word : Words(text)) {
    const char* digit = NumberWord(word);
    absl::StrAppend(&out, digit != nullptr ? digit : word, " ");
  }
  return out;
}

bool ContainsValue(const std::string& match_form, absl::string_view value) {
  const std::string v = MatchForm(value);
  return v.size() > 1 && absl::StrContains(match_form, v);
}

DialogueContext::DialogueContext(std::vector<const data::ServiceSchema*> dialogue_services)
    : services(std::move(dialogue_services)),
      values(services.size()),
      intents(services.size(), kNoIntent) {}

void DialogueContext::AddSystemTurn(const data::Turn& turn) {
  system_acts.clear();
  system_utterance = turn.utterance;
  for (const data::Frame& frame : turn.frames) {
    int service = -1;
    for (size_t i = 0; i < services.size(); ++i) {
      if (absl::EqualsIgnoreCase(services[i]->name, frame.service)) service = static_cast<int>(i);
    }
    for (const data::DialogueAct& act : frame.actions) {
      SystemAct out;
      out.act = absl::AsciiStrToUpper(act.act);
      out.service = service;
      out.slot = service >= 0 && !act.slot.empty() ? FindSlot(*services[service], act.slot) : -1;
      for (const std::string& v : act.values) {
        if (!IsPlaceholderValue(v)) out.values.push_back(v);
      }
      if (out.slot >= 0) {
        for (const std::string& v : out.values) {
          history.push_back({service, out.slot, v, true, user_turn});
        }
      }
      system_acts.push_back(std::move(out));
    }
  }
}

Snapshot DialogueContext::snapshot() const {
  Snapshot out;
  const auto service_name = [&](int i) { return i >= 0 ? services[i]->name : std::string(); };
  const auto slot_name = [&](int i, int j) {
    return i >= 0 && j >= 0 ? services[i]->slots[j].name : std::string();
  };
  for (size_t i = 0; i < services.size(); ++i) {
    if (!values[i].empty()) out.values[services[i]->name] = values[i];
    out.intents[services[i]->name] = intents[i];
  }
  for (const SystemAct& act : system_acts) {
    out.system_acts.push_back(
        {act.act, service_name(act.service), slot_name(act.service, act.slot), act.values});
  }
  out.system_utterance = system_utterance;
  for (const HistoryValue& h : history) {
    out.history.push_back({service_name(h.service), slot_name(h.service, h.slot), h.value,
                           h.from_system, h.turn});
  }
  out.user_turn = user_turn;
  return out;
}

void DialogueContext::Restore(const Snapshot& snapshot) {
  // Exact names: a snapshot holds the schema's own names (FindSlot would also match loosely).
  const auto find_service = [&](const std::string& name) {
    for (size_t i = 0; i < services.size(); ++i) {
      if (services[i]->name == name) return static_cast<int>(i);
    }
    return -1;
  };
  const auto find_slot = [&](int service, const std::string& name) {
    if (service < 0) return -1;
    const auto& slots = services[service]->slots;
    for (size_t j = 0; j < slots.size(); ++j) {
      if (slots[j].name == name) return static_cast<int>(j);
    }
    return -1;
  };
  values.assign(services.size(), {});
  intents.assign(services.size(), kNoIntent);
  system_acts.clear();
  history.clear();
  for (const auto& [service_name, slots] : snapshot.values) {
    const int i = find_service(service_name);
    for (const auto& [slot, value] : slots) {
      if (find_slot(i, slot) >= 0) values[i][slot] = value;
    }
  }
  for (const auto& [service_name, intent] : snapshot.intents) {
    const int i = find_service(service_name);
    if (i < 0) continue;
    for (const data::IntentSchema& x : services[i]->intents) {
      if (x.name == intent) intents[i] = intent;
    }
  }
  for (const Snapshot::Act& act : snapshot.system_acts) {
    SystemAct out;
    out.act = act.act;
    out.service = find_service(act.service);
    out.slot = find_slot(out.service, act.slot);
    out.values = act.values;
    system_acts.push_back(std::move(out));
  }
  system_utterance = snapshot.system_utterance;
  for (const Snapshot::Value& h : snapshot.history) {
    const int i = find_service(h.service);
    const int j = find_slot(i, h.slot);
    if (j >= 0) history.push_back({i, j, h.value, h.from_system, h.turn});
  }
  user_turn = snapshot.user_turn;
}

std::vector<Snapshot::Value> RecentHistory(const std::vector<Snapshot::Value>& history,
                                           size_t limit) {
  std::vector<Snapshot::Value> newest_first;
  std::set<std::tuple<std::string, std::string, std::string>> seen;
  for (auto it = history.rbegin(); it != history.rend() && newest_first.size() < limit; ++it) {
    if (seen.emplace(it->service, it->slot, it->value).second) newest_first.push_back(*it);
  }
  return std::vector<Snapshot::Value>(newest_first.rbegin(), newest_first.rend());
}

void DialogueContext::SetValue(int service, int slot, const std::string& value) {
  values[service][services[service]->slots[slot].name] = value;
  if (value != "dontcare") history.push_back({service, slot, value, false, user_turn});
}

TurnInputs BuildTurnInputs(const DialogueContext& context, absl::string_view utterance,
                           const model::Featurizer& featurizer) {
  TurnInputs turn;
  turn.utterance = featurizer.Featurize(utterance);
  turn.match_form = MatchForm(utterance);
  for (const SystemAct& act : context.system_acts) {
    turn.system_bag.push_back(HashId("a", act.act));
    if (act.slot >= 0) {
      for (const std::string& w : Words(context.services[act.service]->slots[act.slot].name)) {
        turn.system_bag.push_back(HashId(absl::StrCat("s", act.act), w));
      }
    }
  }
  if (turn.system_bag.empty()) turn.system_bag.push_back(HashId("a", "<none>"));

  const float multi = context.services.size() > 1 ? 1.0f : 0.0f;
  for (size_t i = 0; i < context.services.size(); ++i) {
    const data::ServiceSchema& service = *context.services[i];
    const data::IntentSchema* intent = nullptr;
    for (const data::IntentSchema& x : service.intents) {
      if (x.name == context.intents[i]) intent = &x;
    }
    bool service_in_acts = false;
    for (const SystemAct& act : context.system_acts) service_in_acts |= act.service == int(i);
    const bool service_active = intent != nullptr || !context.values[i].empty();
    for (size_t j = 0; j < service.slots.size(); ++j) {
      const data::SlotSchema& schema = service.slots[j];
      SlotInstance slot;
      slot.service = static_cast<int>(i);
      slot.slot = static_cast<int>(j);
      slot.categorical = schema.is_categorical && !schema.possible_values.empty();
      auto& f = slot.features;
      f[0] = slot.categorical;
      int value_rank = 0;  // CONFIRM 3 > OFFER 2 > INFORM 1 > other acts 0
      for (const SystemAct& act : context.system_acts) {
        if (act.service != int(i) || act.slot != int(j)) continue;
        int rank = 0;
        if (act.act == "REQUEST") f[1] = 1;
        if (IsOfferAct(act.act)) f[2] = 1, rank = 2;
        if (IsInformAct(act.act)) f[3] = 1, rank = 1;
        if (act.act == "CONFIRM") f[4] = 1, rank = 3;
        if (!act.values.empty() && (slot.system_value.empty() || rank > value_rank)) {
          slot.system_value = act.values[0];
          value_rank = rank;
        }
      }
      auto prev = context.values[i].find(schema.name);
      f[5] = prev != context.values[i].end();
      f[6] = !slot.system_value.empty() && ContainsValue(turn.match_form, slot.system_value);
      f[7] = f[5] > 0 && ContainsValue(turn.match_form, prev->second);
      f[8] = service_in_acts;
      if (intent != nullptr) {
        const bool required = std::find(intent->required_slots.begin(),
                                        intent->required_slots.end(),
                                        schema.name) != intent->required_slots.end();
        f[9] = required || intent->optional_slots.count(schema.name) > 0;
        f[10] = required;
      }
      for (const std::string& w : Words(schema.name)) {
        if (w.size() >= 3 && w != "book" && absl::StrContains(turn.match_form, " " + w)) f[11] = 1;
      }
      f[12] = multi;
      f[13] = service_active;
      // A categorical slot one of whose values is said: the status head cannot see the value
      // scores, and without this MultiWOZ's model never left `none`.
      if (slot.categorical) {
        for (const std::string& value : schema.possible_values) {
          if (ContainsValue(turn.match_form, value)) {
            f[14] = 1;
            break;
          }
        }
      }
      turn.slots.push_back(std::move(slot));
    }
  }
  return turn;
}

std::vector<ValueFeatures> CategoricalFeatures(const DialogueContext& context,
                                               const TurnInputs& turn, const SlotInstance& slot) {
  const data::SlotSchema& schema = context.services[slot.service]->slots[slot.slot];
  const std::string system_form = MatchForm(context.system_utterance);
  auto prev = context.values[slot.service].find(schema.name);
  std::vector<ValueFeatures> out;
  out.reserve(schema.possible_values.size());
  for (const std::string& value : schema.possible_values) {
    ValueFeatures f{};
    f[0] = ContainsValue(turn.match_form, value);
    const std::vector<std::string> words = absl::StrSplit(MatchForm(value), ' ', absl::SkipEmpty());
    int found = 0;
    for (const std::string& w : words) found += absl::StrContains(turn.match_form, " " + w + " ");
    f[1] = words.empty() ? 0.0f : static_cast<float>(found) / words.size();
    for (const SystemAct& act : context.system_acts) {
      if (act.service != slot.service || act.slot != slot.slot) continue;
      if (AnyFormIs(act.values, value)) f[2] = 1;
    }
    f[3] = prev != context.values[slot.service].end() && SameValue(prev->second, value);
    f[4] = ContainsValue(system_form, value);
    out.push_back(f);
  }
  return out;
}

std::vector<ReferCandidate> ReferCandidates(const DialogueContext& context, const TurnInputs& turn,
                                            const SlotInstance& slot) {
  std::vector<ReferCandidate> out;
  std::set<std::string> seen;
  for (auto it = context.history.rbegin(); it != context.history.rend() && out.size() < 16; ++it) {
    if (it->service == slot.service && it->slot == slot.slot) continue;
    if (!seen.insert(absl::AsciiStrToLower(it->value)).second) continue;
    ReferCandidate c;
    c.service = it->service;
    c.slot = it->slot;
    c.value = it->value;
    c.features[0] = it->from_system;
    c.features[1] = it->service == slot.service;
    c.features[2] = ContainsValue(turn.match_form, it->value);
    c.features[3] = 1.0f / (1.0f + static_cast<float>(context.user_turn - it->turn));
    out.push_back(std::move(c));
  }
  return out;
}

SlotLabel LabelSlot(const DialogueContext& context, absl::string_view utterance,
                    const TurnInputs& turn, const SlotInstance& slot, const data::FrameState* gold_after,
                    const std::vector<data::SlotSpan>& user_spans,
                    const std::vector<ReferCandidate>& refer_candidates) {
  SlotLabel label;
  const data::SlotSchema& schema = context.services[slot.service]->slots[slot.slot];
  if (gold_after == nullptr) {
    label.status = kNone;
    return label;
  }
  label.requested = std::find(gold_after->requested_slots.begin(),
                              gold_after->requested_slots.end(),
                              schema.name) != gold_after->requested_slots.end();
  auto prev = context.values[slot.service].find(schema.name);
  const bool had = prev != context.values[slot.service].end();
  auto it = gold_after->slot_values.find(schema.name);
  if (it == gold_after->slot_values.end()) {
    label.status = had ? -1 : kNone;  // Removal is not a status: not trained.
    return label;
  }
  const std::vector<std::string>& forms = it->second;
  if (had && AnyFormIs(forms, prev->second)) {
    label.status = kNone;
    return label;
  }
  if (AnyFormIs(forms, "dontcare")) {
    label.status = kDontcare;
    return label;
  }
  if (slot.categorical) {
    label.value_index = FindPossibleValue(schema.possible_values, forms);
    if (label.value_index >= 0) label.status = kCategorical;
    return label;
  }
  const model::Features& f = turn.utterance;
  for (const data::SlotSpan& span : user_spans) {
    if (span.slot != schema.name || !AnyFormIs(forms, span.value)) continue;
    int b = -1, e = -1;
    for (size_t t = 0; t < f.tokens.size(); ++t) {
      if (b < 0 && f.tokens[t].begin >= span.begin) b = static_cast<int>(t);
      if (f.tokens[t].end <= span.end) e = static_cast<int>(t);
    }
    if (b >= 0 && e >= b && e - b < kMaxSpanTokens) {
      label.status = kSpan;
      label.span_begin = b;
      label.span_end = e;
      return label;
    }
  }
  if (!slot.system_value.empty() && AnyFormIs(forms, slot.system_value)) {
    label.status = kSystem;
    return label;
  }
  // No annotated span (MultiWOZ, or SGD values written differently): the value as typed.
  for (const std::string& form : forms) {
    int b = -1, e = -1;
    if (FindTokenSpan(utterance, f, form, b, e)) {
      label.status = kSpan;
      label.span_begin = b;
      label.span_end = e;
      return label;
    }
  }
  for (size_t c = 0; c < refer_candidates.size(); ++c) {
    if (AnyFormIs(forms, refer_candidates[c].value)) label.refer_gold.push_back(static_cast<int>(c));
  }
  if (!label.refer_gold.empty()) {
    label.status = kRefer;
    return label;
  }
  return label;
}

std::string SlotText(const data::ServiceSchema& service, const data::SlotSchema& slot) {
  (void)service;
  return absl::StrCat(slot.name, " ", slot.description);
}

std::string IntentText(const data::IntentSchema& intent) {
  return absl::StrCat(intent.name, " ", intent.description);
}

std::string SpanText(absl::string_view utterance, const model::Features& features, int begin,
                     int end) {
  const size_t b = features.tokens[begin].begin;
  return std::string(utterance.substr(b, features.tokens[end].end - b));
}

}  // namespace helpline::nlu::dst
