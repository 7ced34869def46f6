// Typed slot extractors: find slot values in a text by the slot's type (regex, email,
// phone, categorical with synonyms, number, amount with currency, date, time, datetime, free
// text). One value per slot per text; the value formats are listed at domain::SlotType.
//
// Conflicts between types are settled by claiming byte spans, in this order:
//   1. payment-card numbers (13-19 digits passing Luhn) are claimed and never a value;
//   2. amounts with a currency mark ("$12.50", "12,50 €", "¥30", "30元", "EUR 12") are
//      claimed for number and amount slots;
//   3. dates and times (date_time.h) are claimed for date, time and datetime slots when the
//      domain has such a slot, so "at 5pm" is not the number 5;
//   4. the slots we asked for in the last turn (requested) take bare values first, so
//      "13812345678" answers "what is your order number?" as an order number;
//   5. then e-mail, phone, regex, amount, date, time, datetime, categorical, number slots,
//      in that order;
//   6. a requested free_text slot takes the whole text when anything is left.
// So an 11-digit Chinese mobile number is a phone, not an order id, unless an order id
// was asked for; card numbers are nothing.
//
// Thread-safe after construction.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/civil_time.h"
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
  // The day relative dates ("tomorrow", "next Monday") count from. Unset: today in UTC.
  std::optional<absl::CivilDay> today;
};

// An amount of money found in a text.
struct Amount {
  size_t begin = 0;
  size_t end = 0;
  // "1299.00" for "1,299.00", "12.50" for "12,50".
  std::string number;
  // ISO 4217 code ("USD", "CNY"); "" when the text gives none.
  std::string currency;
};

// Every amount with a currency mark in `text`, in text order: symbols ($ € £ ¥ ￥ US$ HK$),
// codes (USD, EUR 12, 30 RMB), words (dollars, euros, bucks, yuan) and Chinese units (元, 块,
// 美元, 欧元...). ¥ and ￥ are read as CNY (the demo domain's market), 円 and "yen" as JPY.
std::vector<Amount> FindAmounts(absl::string_view text);

class SlotExtractor {
 public:
  explicit SlotExtractor(std::shared_ptr<const domain::Domain> domain);

  // At most one candidate per slot, in extraction order.
  std::vector<SlotCandidate> Extract(absl::string_view text, const ExtractOptions& options) const;

  // The value of one slot in `text`, as if the slot had been asked for (a requested free-text
  // slot takes the trimmed text); nullopt when the text has none. Used to turn a span that a
  // trained tagger marked into the slot's canonical value ("broken" -> "damaged",
  // "ab123456" -> "AB123456", "$5" -> "5 USD"). `options.requested` is ignored.
  std::optional<SlotCandidate> ExtractSlot(const domain::Slot& slot, absl::string_view text,
                                           const ExtractOptions& options) const;

 private:
  using Claims = std::vector<std::pair<size_t, size_t>>;
  // What Extract finds once per text before any slot: lower-cased text, claimed spans,
  // amounts and date/time expressions.
  struct Prepared;
  Prepared Prepare(absl::string_view text, const ExtractOptions& options) const;
  struct Phrase {
    std::string text;  // Lower-cased.
    std::string value;
    bool cjk = false;
  };

  bool ExtractOne(const domain::Slot& slot, absl::string_view text, bool requested,
                  Prepared& prepared, std::vector<SlotCandidate>& out) const;
  // The trimmed text (at most 200 bytes) when a word outside `taken` is left; else nullopt.
  static std::optional<SlotCandidate> FreeText(const domain::Slot& slot, absl::string_view text,
                                               const Claims& taken);

  std::shared_ptr<const domain::Domain> domain_;
  // True when the domain has a date, time or datetime slot (dates are looked for at all).
  bool has_date_time_slots_ = false;
  // Enum slot name -> phrases, longest first.
  std::vector<std::pair<std::string, std::vector<Phrase>>> enum_phrases_;
  RE2 email_;
  RE2 card_;
  RE2 phone_intl_;
  RE2 phone_cn_;
  RE2 phone_nanp_;
  RE2 phone_bare_;
  RE2 number_;
};

// True when the digits of `text` (other characters ignored) pass the Luhn check.
bool PassesLuhn(absl::string_view text);

}  // namespace helpline::dst
