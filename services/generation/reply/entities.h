// Finds the values a reply must not make up: e-mail addresses, telephone numbers, payment
// card numbers (Luhn), amounts of money, and values of the domain's regex slots (the shop's
// order numbers). A small detector of its own rather than preprocess's (services do not
// depend on each other's libraries, and preprocess pulls in ICU); its patterns follow the
// tracker's extractors (services/dst/extractors.cc) so that what the tracker stores as a
// slot value is found again in a reply.
//
// Each entity carries a canonical key so that two spellings of one value compare equal:
// e-mail lowercased; phone and card digits only; amount as a plain decimal ("1,299.00" ->
// "1299", "49.90" -> "49.9"); regex slot values uppercased letters and digits only
// ("a-1234567" -> "A1234567").
//
// Immutable after construction; thread-safe.
#pragma once

#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/domain/domain.h"

namespace re2 {
class RE2;
}  // namespace re2

namespace helpline::generation::reply {

enum class EntityKind { kEmail, kPhone, kCard, kAmount, kSlotPattern };

// "email", "phone", "card", "amount", "slot_pattern".
absl::string_view EntityKindName(EntityKind kind);

struct Entity {
  EntityKind kind = EntityKind::kEmail;
  // kSlotPattern: the regex slot whose pattern matched.
  std::string slot;
  // Byte span of the entity in the text.
  size_t begin = 0;
  size_t end = 0;
  // Canonical key (see above).
  std::string key;
};

// Canonical keys, the same ones Entity::key holds.
std::string EmailKey(absl::string_view email);
std::string DigitsKey(absl::string_view text);
std::string AmountKey(absl::string_view amount);
std::string AlnumKey(absl::string_view text);

// True when two phone keys (digits) name the same number: equal once leading zeros (a
// national trunk prefix) are dropped, or one ends with the other and the shorter has at
// least 7 digits ("+44 20 7946 0958" and "020 7946 0958").
bool SamePhone(absl::string_view a, absl::string_view b);

// True when `digits` (ASCII digits only) passes the Luhn checksum.
bool PassesLuhn(absl::string_view digits);

// A set of value keys. An entity is in it when its key is; a phone number also when
// SamePhone matches one of the all-digit keys. Not thread-safe to modify; const use is.
class KeySet {
 public:
  // Empty keys are ignored.
  void Add(std::string key);
  bool Contains(const Entity& entity) const;

 private:
  std::unordered_set<std::string> keys_;
  std::vector<std::string> digit_keys_;
};

class EntityDetector {
 public:
  // Compiles the fixed patterns; takes the patterns of the domain's regex slots.
  // INTERNAL if a fixed pattern does not compile (a bug).
  static absl::StatusOr<std::unique_ptr<const EntityDetector>> Create(
      std::shared_ptr<const domain::Domain> domain);
  ~EntityDetector();

  // Non-overlapping entities sorted by position. Precedence where matches overlap:
  // e-mail, card, phone, amount, then the regex slots in domain order.
  std::vector<Entity> Find(absl::string_view text) const;

  // Every key a text could be compared by, for "did the customer write this value?":
  // the keys of Find(text), plus the AlnumKey of every letter/digit run (hyphens inside
  // kept together) and the DigitsKey of every digit run with single separators.
  std::vector<std::string> LooseKeys(absl::string_view text) const;

  // The key of a slot value as an entity of that slot would have it; empty for enum and
  // free-text slots.
  std::string SlotValueKey(const domain::Slot& slot, absl::string_view value) const;

 private:
  EntityDetector() = default;

  std::shared_ptr<const domain::Domain> domain_;
  std::unique_ptr<re2::RE2> email_;
  std::unique_ptr<re2::RE2> card_;
  std::vector<std::unique_ptr<re2::RE2>> phones_;
  std::vector<std::unique_ptr<re2::RE2>> money_;
  std::unique_ptr<re2::RE2> alnum_run_;
  std::unique_ptr<re2::RE2> digit_run_;
};

}  // namespace helpline::generation::reply
