// Typed slot extractors: find slot values in a text by the slot's type (regex, email,
// phone, enum with synonyms, number, free text). One value per slot per text.
//
// Conflicts between types are settled by claiming byte spans, in this order:
//   1. payment-card numbers (13-19 digits passing Luhn) are claimed and never a value;
//   2. amounts with a currency mark ($, ¥, 元, USD...) are claimed for number slots;
//   3. the slots we asked for in the last turn (requested) take bare values first, so
//      "13812345678" answers "what is your order number?" as an order number;
//   4. then e-mail, phone, regex, enum, number (amounts only) slots, in that order;
//   5. a requested free_text slot takes the whole text when anything is left.
// So an 11-digit Chinese mobile number is a phone, not an order id, unless an order id
// was asked for; card numbers are nothing.
//
// Thread-safe after construction.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "common/domain/domain.h"
#include "re2/re2.h"

namespace helpline::dst {

struct SlotCandidate {
  std::string slot;
  std::string value;
  float confidence = 0;
  // Byte span of the value in the text.
  size_t begin = 0;
  size_t end = 0;
};

struct ExtractOptions {
  // Slots asked for in the last turn, in order.
  std::vector<std::string> requested;
  // Enum and number slots are extracted only when this says so (or they are requested);
  // regex, e-mail and phone values are unambiguous and always extracted. Null: all.
  std::function<bool(const domain::Slot&)> relevant;
  // Extract free_text slots when requested. False for attachment text.
  bool allow_free_text = true;
};

class SlotExtractor {
 public:
  explicit SlotExtractor(std::shared_ptr<const domain::Domain> domain);

  // At most one candidate per slot, in extraction order.
  std::vector<SlotCandidate> Extract(absl::string_view text, const ExtractOptions& options) const;

 private:
  using Claims = std::vector<std::pair<size_t, size_t>>;
  struct Phrase {
    std::string text;  // Lower-cased.
    std::string value;
    bool cjk = false;
  };

  bool ExtractOne(const domain::Slot& slot, absl::string_view text, absl::string_view lowered,
                  bool requested, const std::vector<SlotCandidate>& amounts, Claims& claims,
                  std::vector<SlotCandidate>& out) const;

  std::shared_ptr<const domain::Domain> domain_;
  // Enum slot name -> phrases, longest first.
  std::vector<std::pair<std::string, std::vector<Phrase>>> enum_phrases_;
  RE2 email_;
  RE2 card_;
  RE2 money_prefix_;
  RE2 money_suffix_;
  RE2 phone_intl_;
  RE2 phone_cn_;
  RE2 phone_nanp_;
  RE2 phone_bare_;
  RE2 number_;
};

// True when the digits of `text` (other characters ignored) pass the Luhn check.
bool PassesLuhn(absl::string_view text);

}  // namespace helpline::dst
