#include "services/dst/extractors.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/domain/text.h"
#include "services/dst/date_time.h"

namespace helpline::dst {
namespace {

namespace text = domain::text;

RE2::Options Quiet() {
  RE2::Options o;
  o.set_log_errors(false);
  return o;
}

bool IsAsciiAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// Calls fn(begin, end) for each match of `re` in `s` (group 1 when the pattern has one,
// else the whole match) until fn returns true.
template <typename Fn>
void ForEachMatch(const RE2& re, absl::string_view s, Fn fn) {
  const int groups = std::min(re.NumberOfCapturingGroups(), 1);
  re2::StringPiece input(s.data(), s.size());
  re2::StringPiece match[2];
  size_t pos = 0;
  while (pos <= s.size() && re.Match(input, pos, s.size(), RE2::UNANCHORED, match, groups + 1)) {
    const re2::StringPiece& whole = match[0];
    const re2::StringPiece& value = match[groups];
    const size_t whole_end = static_cast<size_t>(whole.data() - s.data()) + whole.size();
    if (value.data() != nullptr && !value.empty()) {
      const size_t begin = static_cast<size_t>(value.data() - s.data());
      if (fn(begin, begin + value.size())) return;
    }
    pos = whole.empty() ? whole_end + 1 : whole_end;
  }
}

bool Overlaps(const std::vector<std::pair<size_t, size_t>>& claims, size_t b, size_t e) {
  for (const auto& [cb, ce] : claims) {
    if (b < ce && cb < e) return true;
  }
  return false;
}

size_t CountDigits(absl::string_view s) {
  return static_cast<size_t>(std::count_if(s.begin(), s.end(), absl::ascii_isdigit));
}

std::string PhoneValue(absl::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (absl::ascii_isdigit(s[i]) || (s[i] == '+' && out.empty())) out.push_back(s[i]);
  }
  return out;
}

// The canonical form of an amount: "1,299.00" -> "1299.00", "49,9" -> "49.9".
std::string NumberValue(absl::string_view s) {
  std::string out;
  const size_t last_sep = s.find_last_of(".,");
  for (size_t i = 0; i < s.size(); ++i) {
    if (absl::ascii_isdigit(s[i])) {
      out.push_back(s[i]);
    } else if (i == last_sep && s.size() - i - 1 <= 2) {
      out.push_back('.');  // A decimal separator: at most two digits follow.
    }
  }
  return out;
}

// Cuts `s` to at most `max_bytes` without splitting a UTF-8 sequence.
std::string Utf8Prefix(absl::string_view s, size_t max_bytes) {
  if (s.size() <= max_bytes) return std::string(s);
  size_t end = max_bytes;
  while (end > 0 && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80) --end;
  return std::string(s.substr(0, end));
}

// An amount's number: grouped thousands ("1,299.00", "1.299,00") or plain with up to two
// decimals ("12,50").
#define HELPLINE_AMOUNT_NUMBER \
  "([0-9]{1,3}(?:[,.][0-9]{3})+(?:[.,][0-9]{1,2})?|[0-9]+(?:[.,][0-9]{1,2})?)"

const RE2& MoneyPrefix() {
  static const RE2* re = new RE2(
      "(?i)(\\b(?:us|hk|a|c)\\$|[$€£¥￥]|\\b(?:usd|eur|gbp|rmb|cny|hkd|jpy|chf|cad|aud)\\b)"
      "\\s?" HELPLINE_AMOUNT_NUMBER,
      Quiet());
  return *re;
}

const RE2& MoneySuffix() {
  static const RE2* re = new RE2(
      "(?i)\\b" HELPLINE_AMOUNT_NUMBER
      "\\s?(元|块钱|块|人民币|美元|美金|欧元|英镑|港币|港元|日元|円|€|£|\\$|"
      "(?:dollars?|euros?|pounds?|bucks|usd|eur|gbp|rmb|cny|hkd|jpy|chf|cad|aud|yuan|yen)\\b)",
      Quiet());
  return *re;
}
#undef HELPLINE_AMOUNT_NUMBER

// The ISO 4217 code of a currency mark as written (any case).
std::string CurrencyCode(absl::string_view mark) {
  const std::string m = text::AsciiLower(mark);
  static const std::vector<std::pair<std::vector<std::string>, std::string>> kCodes = {
      {{"$", "us$", "dollar", "dollars", "bucks", "美元", "美金"}, "USD"},
      {{"hk$", "港币", "港元"}, "HKD"},
      {{"a$"}, "AUD"},
      {{"c$"}, "CAD"},
      {{"€", "euro", "euros", "欧元"}, "EUR"},
      {{"£", "pound", "pounds", "英镑"}, "GBP"},
      {{"¥", "￥", "元", "块", "块钱", "人民币", "rmb", "yuan"}, "CNY"},
      {{"円", "日元", "yen"}, "JPY"},
  };
  for (const auto& [marks, code] : kCodes) {
    for (const std::string& x : marks) {
      if (x == m) return code;
    }
  }
  return absl::AsciiStrToUpper(m);  // Already a code: usd, eur, ...
}

}  // namespace

std::vector<Amount> FindAmounts(absl::string_view s) {
  std::vector<Amount> out;
  auto overlaps = [&out](size_t b, size_t e) {
    for (const Amount& a : out) {
      if (b < a.end && a.begin < e) return true;
    }
    return false;
  };
  for (const bool prefix : {true, false}) {
    const RE2& re = prefix ? MoneyPrefix() : MoneySuffix();
    re2::StringPiece input(s.data(), s.size());
    re2::StringPiece g[3];
    size_t pos = 0;
    while (pos < s.size() && re.Match(input, pos, s.size(), RE2::UNANCHORED, g, 3)) {
      const size_t begin = static_cast<size_t>(g[0].data() - s.data());
      const size_t end = begin + g[0].size();
      const re2::StringPiece& number = prefix ? g[2] : g[1];
      const re2::StringPiece& mark = prefix ? g[1] : g[2];
      if (!overlaps(begin, end)) {
        out.push_back({begin, end, NumberValue(absl::string_view(number.data(), number.size())),
                       CurrencyCode(absl::string_view(mark.data(), mark.size()))});
      }
      pos = end > begin ? end : end + 1;
    }
  }
  std::sort(out.begin(), out.end(),
            [](const Amount& a, const Amount& b) { return a.begin < b.begin; });
  return out;
}

struct SlotExtractor::Prepared {
  std::string lowered;
  Claims claims;
  // Amounts with a currency mark (claimed), for number and amount slots.
  std::vector<SlotCandidate> amounts;
  std::vector<std::string> currencies;  // Parallel to amounts.
  // Date/time expressions (claimed), for date, time and datetime slots.
  std::vector<DateTimeMatch> date_times;
  // Spans of amounts and date/times already given to a slot.
  Claims used;
};

bool PassesLuhn(absl::string_view s) {
  int sum = 0;
  int n = 0;
  for (size_t i = s.size(); i > 0; --i) {
    const char c = s[i - 1];
    if (!absl::ascii_isdigit(c)) continue;
    int d = c - '0';
    if (n % 2 == 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    ++n;
  }
  return n > 0 && sum % 10 == 0;
}

SlotExtractor::SlotExtractor(std::shared_ptr<const domain::Domain> domain)
    : domain_(std::move(domain)),
      email_(R"(([A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}))", Quiet()),
      card_(R"(\b([0-9](?:[ \-]?[0-9]){12,18})\b)", Quiet()),
      phone_intl_(R"((\+[0-9][0-9 \-().]{6,20}[0-9]))", Quiet()),
      phone_cn_(R"(\b(1[3-9][0-9]{9})\b)", Quiet()),
      phone_nanp_(R"((\(?\b[0-9]{3}\)?[ .\-][0-9]{3}[ .\-][0-9]{4})\b)", Quiet()),
      phone_bare_(R"((\+?[0-9][0-9 \-().]{5,18}[0-9]))", Quiet()),
      number_(R"(\b([0-9]+(?:\.[0-9]+)?)\b)", Quiet()) {
  for (const domain::Slot& slot : domain_->slots) {
    has_date_time_slots_ = has_date_time_slots_ || slot.type == domain::SlotType::kDate ||
                           slot.type == domain::SlotType::kTime ||
                           slot.type == domain::SlotType::kDateTime;
    if (slot.type != domain::SlotType::kEnum) continue;
    std::vector<Phrase> phrases;
    for (const domain::EnumValue& v : slot.values) {
      auto add = [&](absl::string_view p) {
        std::string lowered = text::AsciiLower(absl::StripAsciiWhitespace(p));
        if (lowered.empty()) return;
        phrases.push_back({lowered, v.value, text::ContainsCjk(lowered)});
      };
      add(v.value);
      add(absl::StrReplaceAll(v.value, {{"_", " "}}));
      for (const auto& [lang, list] : v.synonyms) {
        for (const auto& p : list) add(p);
      }
    }
    std::stable_sort(phrases.begin(), phrases.end(), [](const Phrase& a, const Phrase& b) {
      return a.text.size() > b.text.size();
    });
    enum_phrases_.emplace_back(slot.name, std::move(phrases));
  }
}

SlotExtractor::Prepared SlotExtractor::Prepare(absl::string_view s,
                                               const ExtractOptions& options) const {
  Prepared p;
  p.lowered = text::AsciiLower(s);
  // 1. Card numbers are never a slot value.
  ForEachMatch(card_, s, [&](size_t b, size_t e) {
    const size_t digits = CountDigits(s.substr(b, e - b));
    if (digits >= 13 && digits <= 19 && PassesLuhn(s.substr(b, e - b))) p.claims.emplace_back(b, e);
    return false;
  });
  // 2. Amounts with a currency mark belong to number and amount slots.
  for (Amount& a : FindAmounts(s)) {
    if (Overlaps(p.claims, a.begin, a.end)) continue;
    p.amounts.push_back({"", a.number, 0.9f, a.begin, a.end});
    p.currencies.push_back(std::move(a.currency));
  }
  for (const SlotCandidate& a : p.amounts) p.claims.emplace_back(a.begin, a.end);
  // 3. Dates and times belong to date, time and datetime slots.
  if (has_date_time_slots_) {
    const absl::CivilDay today =
        options.today.value_or(absl::ToCivilDay(absl::Now(), absl::UTCTimeZone()));
    for (DateTimeMatch& m : FindDateTimes(s, today)) {
      if (Overlaps(p.claims, m.begin, m.end)) continue;
      p.date_times.push_back(m);
    }
    for (const DateTimeMatch& m : p.date_times) p.claims.emplace_back(m.begin, m.end);
  }
  return p;
}

bool SlotExtractor::ExtractOne(const domain::Slot& slot, absl::string_view s, bool requested,
                               Prepared& prepared, std::vector<SlotCandidate>& out) const {
  Claims& claims = prepared.claims;
  const absl::string_view lowered = prepared.lowered;
  SlotCandidate found;
  bool ok = false;
  // Pre-claimed spans (amounts, dates) are not in `claims`' way, only in each other's.
  bool pre_claimed = false;
  auto take = [&](size_t b, size_t e, std::string value, float confidence) {
    found = {slot.name, std::move(value), confidence, b, e};
    ok = true;
  };
  auto unused = [&](size_t b, size_t e) { return !Overlaps(prepared.used, b, e); };
  switch (slot.type) {
    case domain::SlotType::kEmail:
      ForEachMatch(email_, s, [&](size_t b, size_t e) {
        if (Overlaps(claims, b, e)) return false;
        take(b, e, text::AsciiLower(s.substr(b, e - b)), 0.95f);
        return true;
      });
      break;
    case domain::SlotType::kPhone: {
      std::vector<const RE2*> patterns = {&phone_intl_, &phone_cn_, &phone_nanp_};
      if (requested) patterns.push_back(&phone_bare_);
      for (const RE2* re : patterns) {
        ForEachMatch(*re, s, [&](size_t b, size_t e) {
          const size_t digits = CountDigits(s.substr(b, e - b));
          if (digits < 7 || digits > 15 || Overlaps(claims, b, e)) return false;
          take(b, e, PhoneValue(s.substr(b, e - b)), requested ? 0.9f : 0.85f);
          return true;
        });
        if (ok) break;
      }
      break;
    }
    case domain::SlotType::kRegex:
      if (slot.regex == nullptr) break;
      ForEachMatch(*slot.regex, s, [&](size_t b, size_t e) {
        if (Overlaps(claims, b, e)) return false;
        std::string value(s.substr(b, e - b));
        if (slot.normalize == "upper") absl::AsciiStrToUpper(&value);
        if (slot.normalize == "lower") absl::AsciiStrToLower(&value);
        take(b, e, std::move(value), 0.95f);
        return true;
      });
      break;
    case domain::SlotType::kEnum: {
      const std::vector<Phrase>* phrases = nullptr;
      for (const auto& [name, list] : enum_phrases_) {
        if (name == slot.name) phrases = &list;
      }
      if (phrases == nullptr) break;
      // The earliest match; among matches at one position the longest (phrases are sorted
      // longest first, so the first found at a position wins).
      size_t best_begin = std::string::npos;
      for (const Phrase& p : *phrases) {
        size_t pos = 0;
        while ((pos = lowered.find(p.text, pos)) != absl::string_view::npos) {
          const size_t end = pos + p.text.size();
          bool boundary = true;
          if (!p.cjk) {
            boundary = (pos == 0 || !IsAsciiAlnum(lowered[pos - 1])) &&
                       (end == lowered.size() || !IsAsciiAlnum(lowered[end]));
          }
          if (boundary && !Overlaps(claims, pos, end)) {
            if (pos < best_begin) {
              best_begin = pos;
              take(pos, end, p.value, 0.9f);
            }
            break;  // Later occurrences of this phrase start later.
          }
          pos += 1;
        }
      }
      break;
    }
    case domain::SlotType::kNumber:
    case domain::SlotType::kAmount: {
      const bool amount = slot.type == domain::SlotType::kAmount;
      for (size_t i = 0; i < prepared.amounts.size(); ++i) {
        const SlotCandidate& a = prepared.amounts[i];
        if (!unused(a.begin, a.end)) continue;
        const std::string& currency = prepared.currencies[i];
        take(a.begin, a.end, amount ? absl::StrCat(a.value, " ", currency) : a.value, 0.9f);
        pre_claimed = true;
        break;
      }
      if (!ok && requested) {  // A bare number answers "what amount?".
        ForEachMatch(number_, s, [&](size_t b, size_t e) {
          if (Overlaps(claims, b, e)) return false;
          std::string value = NumberValue(s.substr(b, e - b));
          if (amount && !slot.default_currency.empty()) {
            absl::StrAppend(&value, " ", slot.default_currency);
          }
          take(b, e, std::move(value), 0.85f);
          return true;
        });
      }
      break;
    }
    case domain::SlotType::kDate:
    case domain::SlotType::kTime:
    case domain::SlotType::kDateTime:
      for (const DateTimeMatch& m : prepared.date_times) {
        if (slot.type == domain::SlotType::kDate && m.date && unused(m.date_begin, m.date_end)) {
          take(m.date_begin, m.date_end, FormatIsoDate(*m.date), 0.9f);
        } else if (slot.type == domain::SlotType::kTime && m.minutes &&
                   unused(m.time_begin, m.time_end)) {
          take(m.time_begin, m.time_end, FormatTime(*m.minutes), 0.9f);
        } else if (slot.type == domain::SlotType::kDateTime && unused(m.begin, m.end)) {
          take(m.begin, m.end, FormatDateTime(m), 0.9f);
        }
        if (ok) break;
      }
      pre_claimed = true;
      break;
    case domain::SlotType::kFreeText:
      break;  // Handled by Extract: only when requested, with what is left.
  }
  if (!ok) return false;
  (pre_claimed ? prepared.used : claims).emplace_back(found.begin, found.end);
  out.push_back(std::move(found));
  return true;
}

std::vector<SlotCandidate> SlotExtractor::Extract(absl::string_view s,
                                                  const ExtractOptions& options) const {
  std::vector<SlotCandidate> out;
  if (s.empty()) return out;
  Prepared prepared = Prepare(s, options);

  auto has = [&](const std::string& name) {
    for (const SlotCandidate& c : out) {
      if (c.slot == name) return true;
    }
    return false;
  };
  auto is_requested = [&](const std::string& name) {
    return std::find(options.requested.begin(), options.requested.end(), name) !=
           options.requested.end();
  };

  // 4. Requested slots take bare values first.
  for (const std::string& name : options.requested) {
    const domain::Slot* slot = domain_->FindSlot(name);
    if (slot == nullptr || slot->type == domain::SlotType::kFreeText || has(name)) continue;
    ExtractOne(*slot, s, true, prepared, out);
  }
  // 5. Everything else by type.
  for (domain::SlotType type :
       {domain::SlotType::kEmail, domain::SlotType::kPhone, domain::SlotType::kRegex,
        domain::SlotType::kAmount, domain::SlotType::kDate, domain::SlotType::kTime,
        domain::SlotType::kDateTime, domain::SlotType::kEnum, domain::SlotType::kNumber}) {
    for (const domain::Slot& slot : domain_->slots) {
      if (slot.type != type || has(slot.name)) continue;
      const bool typed = type == domain::SlotType::kEmail || type == domain::SlotType::kPhone ||
                         type == domain::SlotType::kRegex;
      if (!typed && options.relevant && !options.relevant(slot) && !is_requested(slot.name)) {
        continue;
      }
      ExtractOne(slot, s, false, prepared, out);
    }
  }
  // 6. A requested free-text slot takes the text when something besides other values is left.
  if (options.allow_free_text) {
    for (const std::string& name : options.requested) {
      const domain::Slot* slot = domain_->FindSlot(name);
      if (slot == nullptr || slot->type != domain::SlotType::kFreeText || has(name)) continue;
      // Values given to other slots are not free text.
      Claims taken = prepared.claims;
      taken.insert(taken.end(), prepared.used.begin(), prepared.used.end());
      for (const SlotCandidate& c : out) taken.emplace_back(c.begin, c.end);
      if (std::optional<SlotCandidate> c = FreeText(*slot, s, taken)) out.push_back(*c);
    }
  }
  return out;
}

std::optional<SlotCandidate> SlotExtractor::ExtractSlot(const domain::Slot& slot,
                                                        absl::string_view s,
                                                        const ExtractOptions& options) const {
  if (s.empty()) return std::nullopt;
  if (slot.type == domain::SlotType::kFreeText) return FreeText(slot, s, {});
  Prepared prepared = Prepare(s, options);
  std::vector<SlotCandidate> out;
  if (!ExtractOne(slot, s, true, prepared, out)) return std::nullopt;
  return out.front();
}

std::optional<SlotCandidate> SlotExtractor::FreeText(const domain::Slot& slot, absl::string_view s,
                                                     const Claims& taken) {
  bool left = false;
  size_t pos = 0;
  while (pos < s.size() && !left) {
    const size_t b = pos;
    const char32_t cp = text::NextCodePoint(s, &pos);
    if ((text::IsWordChar(cp) || text::IsCjk(cp)) && !Overlaps(taken, b, pos)) left = true;
  }
  if (!left) return std::nullopt;
  const absl::string_view trimmed = absl::StripAsciiWhitespace(s);
  const size_t begin = static_cast<size_t>(trimmed.data() - s.data());
  return SlotCandidate{slot.name, Utf8Prefix(trimmed, 200), 0.7f, begin, begin + trimmed.size()};
}

}  // namespace helpline::dst
