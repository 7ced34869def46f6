// A conversation domain (e.g. domains/shop.yaml): the intents a customer may pursue, the
// slots they need, the response templates and the phrases that ask for a human. Loaded
// from YAML and validated once at startup; immutable afterwards, so one Domain is shared
// by every request thread without locking.
//
// Errors name the file and the path of the offending node, e.g.
//   "shop.yaml: intents.track_order.required_slots[0]: unknown slot 'order_idd' (line 42)"
// The file format is documented in common/domain/README.md.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace re2 {
class RE2;
}  // namespace re2

namespace helpline::domain {

// A slot is categorical (kEnum: a closed list of values with synonyms) or free with a typed
// extractor. Values as stored in the dialogue state (services/dst/extractors.h finds them):
//   kRegex     the pattern's group 1 (or whole match), `normalize`d; e.g. an order number
//   kNumber    a decimal number, "49.90" (amounts with a currency mark included)
//   kAmount    an amount with its ISO 4217 currency, "12.50 USD" ("12.50" when unknown)
//   kDate      an ISO date, "2026-12-03" (relative dates resolved against today)
//   kTime      a 24-hour time, "17:00"
//   kDateTime  "2026-12-03T17:00", or the date or the time alone when only one was said
//   kEmail     lower-cased address; kPhone digits with an optional leading '+'
//   kFreeText  the customer's words, only when the slot was asked for
enum class SlotType {
  kEnum,
  kRegex,
  kNumber,
  kEmail,
  kPhone,
  kFreeText,
  kAmount,
  kDate,
  kTime,
  kDateTime
};

// "categorical", "regex", "number", "email", "phone", "free_text", "amount", "date", "time",
// "datetime" (the name a domain file uses; "enum" is accepted for "categorical").
absl::string_view SlotTypeName(SlotType type);

// One value of a categorical (enum) slot.
struct EnumValue {
  // Canonical value stored in the dialogue state, e.g. "paypal".
  std::string value;
  // Display text per language, used when a template renders the slot. Falls back to value.
  std::map<std::string, std::string> labels;
  // Phrases that mean this value, per language. The canonical value itself always matches.
  std::map<std::string, std::vector<std::string>> synonyms;
};

struct Slot {
  std::string name;
  std::string description;
  SlotType type = SlotType::kFreeText;
  // kEnum only, in file order.
  std::vector<EnumValue> values;
  // kRegex only: the RE2 pattern (validated at load) and its compiled form. When the
  // pattern has a capturing group, group 1 is the value; else the whole match.
  std::string pattern;
  std::shared_ptr<const re2::RE2> regex;
  // kRegex only: "upper", "lower" or "" (keep as typed) for the extracted value.
  std::string normalize;
  // kAmount only: ISO 4217 code given to a bare number ("49.90" answering "what amount?");
  // "" leaves such a value without currency.
  std::string default_currency;
  // Key of the template that asks the customer for this slot. Default "ask.<name>".
  std::string prompt;

  // The display text of `value` in `language` (enum label, else the value itself).
  std::string Display(const std::string& value, absl::string_view language) const;
};

struct Intent {
  std::string name;
  std::string description;
  // Example utterances per language.
  std::map<std::string, std::vector<std::string>> examples;
  // Slots the intent needs before it can be served, in the order they are asked for.
  std::vector<std::string> required_slots;
  // Slots that are used when given but never asked for.
  std::vector<std::string> optional_slots;
  // True when the intent always goes to a human.
  bool escalate = false;
  // True when serving the intent changes something for the customer (a return, a
  // cancellation), so the tracker has it confirmed before it is marked ready. SGD's
  // `is_transactional`. Never together with `escalate`.
  bool transactional = false;

  // True when `slot` is one of required_slots or optional_slots.
  bool Uses(absl::string_view slot) const;
};

struct Domain {
  // Where the domain was loaded from ("domains/shop.yaml"), for messages.
  std::string origin;
  std::string name;
  std::string description;
  // Supported languages; the first one is the default.
  std::vector<std::string> languages;
  // Instructions for a neural reply engine, per language.
  std::map<std::string, std::string> system_prompt;
  // In file order.
  std::vector<Slot> slots;
  std::vector<Intent> intents;
  // Template key -> language -> variants (each with {{slot}} placeholders).
  std::map<std::string, std::map<std::string, std::vector<std::string>>> templates;
  // Explicit requests for a human, per language (matched case-insensitively; English
  // phrases at word boundaries, Chinese as substrings).
  std::map<std::string, std::vector<std::string>> escalation_phrases;

  const Slot* FindSlot(absl::string_view name) const;
  const Intent* FindIntent(absl::string_view name) const;
  bool SupportsLanguage(absl::string_view language) const;
  // The variants of template `key` in `language`; nullptr when there are none.
  const std::vector<std::string>* FindTemplate(absl::string_view key,
                                               absl::string_view language) const;
};

// Parses and validates a domain from YAML text. `origin` names the source in errors.
// INVALID_ARGUMENT naming origin and path on any problem.
absl::StatusOr<Domain> ParseDomain(absl::string_view yaml_text, absl::string_view origin);

// Reads and parses a domain file. NOT_FOUND when it cannot be read.
absl::StatusOr<Domain> LoadDomainFile(const std::string& path);

// The {{name}} placeholders of a template, in order of appearance (with duplicates).
// INVALID_ARGUMENT on an unterminated "{{" or an empty name.
absl::StatusOr<std::vector<std::string>> TemplatePlaceholders(absl::string_view text);

}  // namespace helpline::domain
