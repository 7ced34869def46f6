#include "services/generation/reply/reply_chooser.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/domain/template.h"
#include "common/domain/text.h"
#include "services/generation/reply/chrf.h"

namespace helpline::generation::reply {
namespace {

// `text` without any occurrence of the `needles`.
std::string EraseAll(absl::string_view text, const std::vector<std::string>& needles) {
  std::string out(text);
  for (const std::string& n : needles) out = absl::StrReplaceAll(out, {{n, ""}});
  return out;
}

namespace text = ::helpline::domain::text;

}  // namespace

struct ReplyChooser::TurnFacts {
  const v1::GenerationContext* context = nullptr;
  std::string language;
  // Every value key the customer wrote this session, plus the state's slot values.
  KeySet customer;
  // The state's slot values only.
  KeySet slot_values;
  // Entity classes of the filled typed slots: (kind, slot name for kSlotPattern).
  std::vector<std::pair<EntityKind, std::string>> filled_classes;
  struct Item {
    // Lowercased phrases any of which counts as a mention.
    std::vector<std::string> phrases;
    // A typed slot's value key, matched against the reply's entities.
    std::string key;
  };
  std::vector<Item> coverage_items;
  // The state for the fill step: the context's, plus "{{name}}" as the value of each
  // placeholder the customer wrote that the state has no value for (CustomerPlaceholders),
  // so that a reply may echo it as written. Unset when there is none.
  std::optional<common::v1::DialogueState> fill_state;
  // Those placeholders as written ("{{order_number}}").
  std::vector<std::string> echoed;
};

const std::vector<absl::string_view>& AllRejectionReasons() {
  static const auto* reasons = new std::vector<absl::string_view>{
      kRejectEmpty,     kRejectTruncated,         kRejectUnsafe,
      kRejectPii,       kRejectUnsupportedValue,  kRejectSlotContradiction,
      kRejectUnfilledPlaceholder, kRejectRepetition};
  return *reasons;
}

absl::StatusOr<std::unique_ptr<const ReplyChooser>> ReplyChooser::Create(
    std::shared_ptr<const domain::Domain> domain, Blocklist blocklist, ChooserOptions options) {
  if (domain == nullptr) return absl::InvalidArgumentError("domain: missing");
  absl::StatusOr<std::unique_ptr<const EntityDetector>> entities = EntityDetector::Create(domain);
  if (!entities.ok()) return entities.status();
  for (const auto& [name, value] : options.constants) {
    const std::string where = absl::StrCat("constants[", name, "]");
    if (!IsPlaceholderName(name)) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": a placeholder name is letters, digits and '_'"));
    }
    if (IsBlank(value)) return absl::InvalidArgumentError(absl::StrCat(where, ": empty value"));
    if (value != absl::StrCat("{{", name, "}}") &&
        (absl::StrContains(value, "{{") || absl::StrContains(value, "}}"))) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": '", value, "' has braces (only \"{{", name, "}}\" itself may)"));
    }
  }
  for (const auto& [alias, slot] : options.placeholder_aliases) {
    const std::string where = absl::StrCat("placeholder_aliases[", alias, "]");
    for (const std::string& name : {alias, slot}) {
      if (!IsPlaceholderName(name)) {
        return absl::InvalidArgumentError(absl::StrCat(
            where, ": '", name, "' is not a placeholder name (letters, digits and '_')"));
      }
    }
    if (alias == slot) return absl::InvalidArgumentError(absl::StrCat(where, ": names itself"));
  }
  std::unique_ptr<ReplyChooser> c(new ReplyChooser());
  c->domain_ = std::move(domain);
  c->blocklist_ = std::move(blocklist);
  c->options_ = std::move(options);
  c->entities_ = *std::move(entities);
  // The domain's own texts are not anyone's personal data: the example order numbers of
  // ask.order_id, a support address in a template.
  auto add_found = [&c](absl::string_view s) {
    for (Entity& e : c->entities_->Find(s)) c->allowed_keys_.Add(std::move(e.key));
  };
  for (const auto& [key, by_language] : c->domain_->templates) {
    for (const auto& [language, variants] : by_language) {
      for (const std::string& v : variants) add_found(v);
    }
  }
  for (const auto& [language, prompt] : c->domain_->system_prompt) add_found(prompt);
  std::vector<std::string> own_values = c->options_.allowed_values;
  for (const auto& [name, value] : c->options_.constants) own_values.push_back(value);
  for (const std::string& v : own_values) {
    add_found(v);
    for (std::string key : {EmailKey(v), DigitsKey(v), AlnumKey(v)}) {
      c->allowed_keys_.Add(std::move(key));
    }
  }
  return std::unique_ptr<const ReplyChooser>(std::move(c));
}

std::vector<std::string> ReplyChooser::AskKeywords(const std::string& slot) const {
  std::vector<std::string> out;
  auto it = options_.ask_keywords.find(slot);
  if (it != options_.ask_keywords.end()) {
    for (const std::string& k : it->second) out.push_back(text::AsciiLower(k));
  }
  out.push_back(absl::StrReplaceAll(slot, {{"_", " "}}));
  if (absl::EndsWith(slot, "_id")) {
    out.push_back(absl::StrCat(slot.substr(0, slot.size() - 3), " number"));
  }
  if (slot == "email") out.push_back("e-mail");
  return out;
}

ReplyChoice ReplyChooser::Choose(const v1::GenerationContext& context,
                                 absl::Span<const RawCandidate> candidates) const {
  TurnFacts facts;
  facts.context = &context;
  const common::v1::DialogueState& state = context.state();
  facts.language = domain::ResolveLanguage(*domain_, context.language(), state);
  for (const std::string& name : CustomerPlaceholders(context.user_text())) {
    auto it = state.slots().find(name);
    if (it != state.slots().end() && !it->second.value().empty()) continue;
    if (!facts.fill_state.has_value()) facts.fill_state = state;
    (*facts.fill_state->mutable_slots())[name].set_value(absl::StrCat("{{", name, "}}"));
    facts.echoed.push_back(absl::StrCat("{{", name, "}}"));
  }
  for (const auto& [name, value] : options_.constants) {
    auto it = state.slots().find(name);
    if (it != state.slots().end() && !it->second.value().empty()) continue;
    if (!facts.fill_state.has_value()) facts.fill_state = state;
    (*facts.fill_state->mutable_slots())[name].set_value(value);
    if (value == absl::StrCat("{{", name, "}}")) facts.echoed.push_back(value);
  }
  for (const auto& [alias, slot] : options_.placeholder_aliases) {
    auto own = state.slots().find(alias);
    if (own != state.slots().end() && !own->second.value().empty()) continue;
    auto it = state.slots().find(slot);
    if (it == state.slots().end() || it->second.value().empty()) continue;
    if (!facts.fill_state.has_value()) facts.fill_state = state;
    (*facts.fill_state->mutable_slots())[alias].set_value(it->second.value());
  }

  auto add_text = [&](absl::string_view s) {
    for (std::string& key : entities_->LooseKeys(s)) facts.customer.Add(std::move(key));
  };
  for (const common::v1::Turn& t : context.history()) add_text(t.user_text());
  add_text(context.user_text());
  for (const common::v1::Evidence& e : context.evidence()) add_text(e.text());

  const domain::Intent* intent = domain_->FindIntent(state.active_intent());
  for (const domain::Slot& slot : domain_->slots) {
    auto it = state.slots().find(slot.name);
    if (it == state.slots().end() || it->second.value().empty()) continue;
    const std::string& value = it->second.value();
    const std::string key = entities_->SlotValueKey(slot, value);
    for (std::string k : entities_->LooseKeys(value)) {
      facts.customer.Add(k);
      facts.slot_values.Add(std::move(k));
    }
    facts.customer.Add(key);
    facts.slot_values.Add(key);
    switch (slot.type) {
      case domain::SlotType::kEmail:
        facts.filled_classes.emplace_back(EntityKind::kEmail, "");
        break;
      case domain::SlotType::kPhone:
        facts.filled_classes.emplace_back(EntityKind::kPhone, "");
        break;
      case domain::SlotType::kNumber:
      case domain::SlotType::kAmount:
        facts.filled_classes.emplace_back(EntityKind::kAmount, "");
        break;
      case domain::SlotType::kRegex:
        facts.filled_classes.emplace_back(EntityKind::kSlotPattern, slot.name);
        break;
      case domain::SlotType::kEnum:
      case domain::SlotType::kFreeText:
      case domain::SlotType::kDate:
      case domain::SlotType::kTime:
      case domain::SlotType::kDateTime:
        break;
    }
    if (intent != nullptr && !intent->Uses(slot.name)) continue;
    TurnFacts::Item item;
    item.key = key;
    item.phrases.push_back(text::AsciiLower(value));
    if (slot.type == domain::SlotType::kEnum) {
      item.phrases.push_back(text::AsciiLower(absl::StrReplaceAll(value, {{"_", " "}})));
      for (const domain::EnumValue& v : slot.values) {
        if (v.value != value) continue;
        for (const auto& [language, label] : v.labels)
          item.phrases.push_back(text::AsciiLower(label));
        for (const auto& [language, synonyms] : v.synonyms) {
          for (const std::string& s : synonyms) item.phrases.push_back(text::AsciiLower(s));
        }
      }
    }
    facts.coverage_items.push_back(std::move(item));
  }
  const std::string missing = domain::FirstMissingSlot(*domain_, state);
  if (!missing.empty()) {
    TurnFacts::Item item;
    item.phrases = AskKeywords(missing);
    facts.coverage_items.push_back(std::move(item));
  }

  ReplyChoice choice;
  choice.candidates.reserve(candidates.size());
  for (const RawCandidate& raw : candidates) choice.candidates.push_back(Evaluate(facts, raw));
  if (options_.weights.consensus != 0.0) AddConsensus(choice.candidates, context);
  for (size_t i = 0; i < choice.candidates.size(); ++i) {
    const ScoredCandidate& c = choice.candidates[i];
    if (c.rejected()) continue;
    if (!choice.chosen.has_value() || c.score > choice.candidates[*choice.chosen].score) {
      choice.chosen = i;
    }
  }
  return choice;
}

void ReplyChooser::AddConsensus(std::vector<ScoredCandidate>& candidates,
                                const v1::GenerationContext& context) const {
  std::vector<size_t> survivors;
  std::vector<ChrfProfile> profiles;
  for (size_t i = 0; i < candidates.size(); ++i) {
    if (candidates[i].rejected()) continue;
    survivors.push_back(i);
    profiles.emplace_back(candidates[i].text);
  }
  // Human references beside the candidates: the exemplar with its votes, each similar reply
  // with one.
  std::vector<std::pair<ChrfProfile, double>> references;
  const double votes = std::max(0.0, options_.weights.exemplar_votes);
  if (!context.exemplar().empty() && votes > 0.0) references.emplace_back(context.exemplar(), votes);
  for (const std::string& r : context.similar_replies()) {
    if (!r.empty()) references.emplace_back(r, 1.0);
  }
  double reference_votes = 0.0;
  for (const auto& [profile, v] : references) reference_votes += v;
  if (survivors.empty() || (survivors.size() < 2 && reference_votes == 0.0)) return;
  for (size_t a = 0; a < survivors.size(); ++a) {
    double sum = 0.0;
    for (size_t b = 0; b < survivors.size(); ++b) {
      if (b != a) sum += SentenceChrf(profiles[a], profiles[b]) / 100.0;
    }
    for (const auto& [profile, v] : references) sum += v * SentenceChrf(profiles[a], profile) / 100.0;
    ScoredCandidate& c = candidates[survivors[a]];
    c.consensus = sum / (static_cast<double>(survivors.size() - 1) + reference_votes);
    c.score += options_.weights.consensus * c.consensus;
  }
}

double ReplyChooser::Coverage(const TurnFacts& facts, absl::string_view s) const {
  if (facts.coverage_items.empty()) return 0.0;
  const std::string lowered = text::AsciiLower(s);
  std::vector<Entity> found = entities_->Find(s);
  size_t covered = 0;
  for (const TurnFacts::Item& item : facts.coverage_items) {
    bool hit = std::any_of(item.phrases.begin(), item.phrases.end(), [&](const std::string& p) {
      return !p.empty() && absl::StrContains(lowered, p);
    });
    if (!hit && !item.key.empty()) {
      hit = std::any_of(found.begin(), found.end(), [&](const Entity& e) {
        return e.key == item.key || (e.kind == EntityKind::kPhone && SamePhone(e.key, item.key));
      });
    }
    if (hit) ++covered;
  }
  return static_cast<double>(covered) / static_cast<double>(facts.coverage_items.size());
}

std::vector<std::string> FillablePlaceholders(const common::v1::DialogueState& state) {
  std::vector<std::string> names;
  for (const auto& [name, slot] : state.slots()) {
    if (!slot.value().empty()) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<std::string> FillablePlaceholders(const v1::GenerationContext& context) {
  std::vector<std::string> names = FillablePlaceholders(context.state());
  for (std::string& name : CustomerPlaceholders(context.user_text())) names.push_back(std::move(name));
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

std::vector<std::string> ReplyChooser::AllowedPlaceholders(const v1::GenerationContext& context) const {
  std::vector<std::string> names = FillablePlaceholders(context);
  for (const auto& [name, value] : options_.constants) names.push_back(name);
  for (const auto& [alias, slot] : options_.placeholder_aliases) {
    auto it = context.state().slots().find(slot);
    if (it != context.state().slots().end() && !it->second.value().empty()) names.push_back(alias);
  }
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

bool IsPlaceholderName(absl::string_view name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

std::vector<std::string> CustomerPlaceholders(absl::string_view user_text) {
  return PlaceholderNames(user_text);
}

std::vector<std::string> PlaceholderNames(absl::string_view text) {
  std::vector<std::string> names;
  size_t pos = 0;
  while ((pos = text.find("{{", pos)) != absl::string_view::npos) {
    const size_t end = text.find("}}", pos + 2);
    if (end == absl::string_view::npos) break;
    const absl::string_view name = text.substr(pos + 2, end - pos - 2);
    const bool word = IsPlaceholderName(name);
    if (word && std::find(names.begin(), names.end(), name) == names.end()) {
      names.emplace_back(name);
    }
    pos = word ? end + 2 : pos + 2;
  }
  return names;
}

ScoredCandidate ReplyChooser::Evaluate(const TurnFacts& facts, const RawCandidate& raw) const {
  ScoredCandidate out;
  auto reject = [&out](const char* reason, std::string detail) {
    out.rejection_reasons.push_back(reason);
    out.details.push_back(absl::StrCat(reason, ": ", detail));
  };

  // 1. Prune.
  std::string s = raw.text;
  size_t role_cut = std::string::npos;
  for (const std::string& label : options_.role_labels) {
    if (label.empty()) continue;
    role_cut = std::min(role_cut, s.find(absl::StrCat("\n", label)));
  }
  if (role_cut != std::string::npos) {
    s.resize(role_cut);
    out.pruned = true;
  }
  s = std::string(absl::StripAsciiWhitespace(s));
  // A role cut means the model finished its line and went on: the line itself is whole.
  if (raw.finished_by_length && role_cut == std::string::npos) {
    std::optional<std::string> cut = CutToLastSentence(s);
    if (cut.has_value()) {
      out.pruned = out.pruned || cut->size() != s.size();
      s = *std::move(cut);
    } else if (options_.reject_truncated && !IsBlank(s)) {
      reject(kRejectTruncated, "no complete sentence before the length limit");
    }
  }
  // A model that says its piece and then says it again: keep the sentences before the loop.
  if (!FindRepetition(s, options_.repetition).empty()) {
    if (std::optional<std::string> cut = CutBeforeRepetition(s, options_.repetition); cut.has_value()) {
      out.pruned = true;
      s = *std::move(cut);
    }
  }

  // 2. Fill.
  const domain::Rendered rendered = domain::RenderTemplate(
      *domain_, s, facts.fill_state.has_value() ? *facts.fill_state : facts.context->state(),
      facts.language);
  out.text = std::string(absl::StripAsciiWhitespace(rendered.text));
  const std::string& t = out.text;

  // 3. Filter.
  if (IsBlank(t)) {
    reject(kRejectEmpty, "nothing but whitespace or punctuation");
  } else {
    if (std::optional<std::string> phrase = blocklist_.FindIn(t); phrase.has_value()) {
      reject(kRejectUnsafe, absl::StrCat("'", *phrase, "'"));
    }
    const std::vector<Entity> found = entities_->Find(t);
    for (const Entity& e : found) {
      if (e.kind == EntityKind::kAmount || allowed_keys_.Contains(e)) continue;
      if (!facts.customer.Contains(e)) {
        reject(kRejectPii,
               absl::StrCat(EntityKindName(e.kind), " '", t.substr(e.begin, e.end - e.begin), "'"));
        break;
      }
    }
    // With an amount slot filled, another amount is a slot_contradiction (below) instead.
    const bool amount_slot_filled =
        std::any_of(facts.filled_classes.begin(), facts.filled_classes.end(),
                    [](const auto& cls) { return cls.first == EntityKind::kAmount; });
    for (const Entity& e : found) {
      if (e.kind != EntityKind::kAmount || amount_slot_filled || allowed_keys_.Contains(e)) {
        continue;
      }
      if (!facts.customer.Contains(e) && !facts.slot_values.Contains(e)) {
        reject(kRejectUnsupportedValue,
               absl::StrCat("amount '", t.substr(e.begin, e.end - e.begin), "'"));
        break;
      }
    }
    for (const Entity& e : found) {
      const bool typed = std::any_of(
          facts.filled_classes.begin(), facts.filled_classes.end(), [&](const auto& cls) {
            return cls.first == e.kind &&
                   (e.kind != EntityKind::kSlotPattern || cls.second == e.slot);
          });
      // A value that is some slot's value is not a contradiction (an unformatted phone
      // number also looks like an order number).
      if (typed && !facts.slot_values.Contains(e) && !allowed_keys_.Contains(e)) {
        reject(kRejectSlotContradiction,
               absl::StrCat(EntityKindName(e.kind), " '", t.substr(e.begin, e.end - e.begin), "'"));
        break;
      }
    }
    if (!rendered.unfilled.empty()) {
      reject(kRejectUnfilledPlaceholder, absl::StrCat("{{", rendered.unfilled.front(), "}}"));
    } else if (std::string rest = EraseAll(t, facts.echoed);
               absl::StrContains(rest, "{{") || absl::StrContains(rest, "}}")) {
      reject(kRejectUnfilledPlaceholder, "leftover braces");
    }
    if (std::string rep = FindRepetition(t, options_.repetition); !rep.empty()) {
      reject(kRejectRepetition, rep);
    }
  }

  // 4. Score.
  const RerankWeights& w = options_.weights;
  out.mean_logprob = raw.logprob_sum / static_cast<double>(std::max<size_t>(1, raw.tokens));
  out.coverage = Coverage(facts, t);
  const double units = static_cast<double>(RepetitionUnits(t).size());
  const double length_share =
      w.length_target_units == 0
          ? 1.0
          : std::min(1.0, units / static_cast<double>(w.length_target_units));
  out.score = w.logprob * out.mean_logprob + w.coverage * out.coverage + w.length * length_share;
  return out;
}

void ToProto(const ScoredCandidate& candidate, v1::Candidate& out) {
  out.set_text(candidate.text);
  out.set_score(static_cast<float>(candidate.score));
  out.clear_rejection_reasons();
  for (const std::string& r : candidate.rejection_reasons) out.add_rejection_reasons(r);
  out.set_origin("model");
}

}  // namespace helpline::generation::reply
