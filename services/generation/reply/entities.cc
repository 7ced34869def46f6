#include "services/generation/reply/entities.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "re2/re2.h"

namespace helpline::generation::reply {
namespace {

RE2::Options Quiet() {
  RE2::Options options;
  options.set_log_errors(false);
  return options;
}

// Calls fn(whole_begin, whole_end, value_begin, value_end) for every match of `re` in
// `s`, left to right; the value is group 1 when the pattern has one, else the whole match.
template <typename Fn>
void ForEachMatch(const re2::RE2& re, absl::string_view s, Fn fn) {
  const int groups = std::min(re.NumberOfCapturingGroups(), 1);
  re2::StringPiece input(s.data(), s.size());
  re2::StringPiece match[2];
  size_t pos = 0;
  while (pos <= s.size() && re.Match(input, pos, s.size(), RE2::UNANCHORED, match, groups + 1)) {
    const size_t whole_begin = static_cast<size_t>(match[0].data() - s.data());
    const size_t whole_end = whole_begin + match[0].size();
    const re2::StringPiece& value = match[groups];
    if (value.data() != nullptr && !value.empty()) {
      const size_t begin = static_cast<size_t>(value.data() - s.data());
      fn(whole_begin, whole_end, begin, begin + value.size());
    }
    pos = match[0].empty() ? whole_end + 1 : whole_end;
  }
}

size_t CountDigits(absl::string_view s) {
  return static_cast<size_t>(std::count_if(s.begin(), s.end(), [](char c) {
    return absl::ascii_isdigit(static_cast<unsigned char>(c));
  }));
}

absl::string_view StripLeadingZeros(absl::string_view s) {
  while (!s.empty() && s.front() == '0') s.remove_prefix(1);
  return s;
}

}  // namespace

absl::string_view EntityKindName(EntityKind kind) {
  switch (kind) {
    case EntityKind::kEmail:
      return "email";
    case EntityKind::kPhone:
      return "phone";
    case EntityKind::kCard:
      return "card";
    case EntityKind::kAmount:
      return "amount";
    case EntityKind::kSlotPattern:
      return "slot_pattern";
  }
  return "email";
}

std::string EmailKey(absl::string_view email) {
  return absl::AsciiStrToLower(absl::StripAsciiWhitespace(email));
}

std::string DigitsKey(absl::string_view s) {
  std::string out;
  for (char c : s) {
    if (absl::ascii_isdigit(static_cast<unsigned char>(c))) out.push_back(c);
  }
  return out;
}

std::string AmountKey(absl::string_view s) {
  std::string out;
  const size_t last_sep = s.find_last_of(".,");
  size_t digits_after = 0;
  if (last_sep != absl::string_view::npos) digits_after = CountDigits(s.substr(last_sep + 1));
  for (size_t i = 0; i < s.size(); ++i) {
    if (absl::ascii_isdigit(static_cast<unsigned char>(s[i]))) {
      out.push_back(s[i]);
    } else if (i == last_sep && digits_after >= 1 && digits_after <= 2) {
      out.push_back('.');  // A decimal separator: one or two digits follow.
    }
  }
  if (out.find('.') != std::string::npos) {
    while (!out.empty() && out.back() == '0') out.pop_back();
    if (!out.empty() && out.back() == '.') out.pop_back();
  }
  size_t first = 0;  // Leading zeros go, except the one before a decimal point.
  while (first + 1 < out.size() && out[first] == '0' && out[first + 1] != '.') ++first;
  out.erase(0, first);
  if (!out.empty() && out[0] == '.') out = absl::StrCat("0", out);
  return out;
}

std::string AlnumKey(absl::string_view s) {
  std::string out;
  for (char c : s) {
    if (absl::ascii_isalnum(static_cast<unsigned char>(c))) {
      out.push_back(absl::ascii_toupper(static_cast<unsigned char>(c)));
    }
  }
  return out;
}

bool SamePhone(absl::string_view a, absl::string_view b) {
  a = StripLeadingZeros(a);
  b = StripLeadingZeros(b);
  if (a.empty() || b.empty()) return false;
  if (a == b) return true;
  if (a.size() < b.size()) std::swap(a, b);
  return b.size() >= 7 && a.substr(a.size() - b.size()) == b;
}

bool PassesLuhn(absl::string_view digits) {
  int sum = 0;
  bool twice = false;
  for (size_t i = digits.size(); i-- > 0;) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(digits[i]))) return false;
    int d = digits[i] - '0';
    if (twice) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    twice = !twice;
  }
  return !digits.empty() && sum % 10 == 0;
}

void KeySet::Add(std::string key) {
  if (key.empty()) return;
  if (std::all_of(key.begin(), key.end(),
                  [](char c) { return absl::ascii_isdigit(static_cast<unsigned char>(c)); })) {
    digit_keys_.push_back(key);
  }
  keys_.insert(std::move(key));
}

bool KeySet::Contains(const Entity& entity) const {
  if (keys_.count(entity.key) > 0) return true;
  if (entity.kind != EntityKind::kPhone) return false;
  return std::any_of(digit_keys_.begin(), digit_keys_.end(),
                     [&](const std::string& d) { return SamePhone(d, entity.key); });
}

EntityDetector::~EntityDetector() = default;

absl::StatusOr<std::unique_ptr<const EntityDetector>> EntityDetector::Create(
    std::shared_ptr<const domain::Domain> domain) {
  std::unique_ptr<EntityDetector> d(new EntityDetector());
  d->domain_ = std::move(domain);
  d->email_ = std::make_unique<re2::RE2>(
      R"([A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,})", Quiet());
  d->card_ = std::make_unique<re2::RE2>(R"(\b[0-9](?:[ \-]?[0-9]){12,18}\b)", Quiet());
  // International (+ and 7..15 digits), Chinese mobile, North American formatted, and a
  // national number with a trunk 0 in groups. A bare run of digits is not a phone number
  // here: order numbers and amounts look like that.
  for (const char* p : {R"(\+[0-9][0-9 \-().]{5,20}[0-9])", R"(\b1[3-9][0-9]{9}\b)",
                        R"(\(?\b[0-9]{3}\)?[ .\-][0-9]{3}[ .\-][0-9]{4}\b)",
                        R"(\b0[0-9]{1,4}[ \-][0-9]{3,4}[ \-]?[0-9]{3,4}\b)"}) {
    d->phones_.push_back(std::make_unique<re2::RE2>(p, Quiet()));
  }
  constexpr char kNumber[] =
      R"(([0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]{1,2})?|[0-9]+(?:[.,][0-9]{1,2})?))";
  d->money_.push_back(std::make_unique<re2::RE2>(
      absl::StrCat(R"((?i)(?:[$€£¥￥]|\b(?:usd|eur|gbp|rmb|cny|hkd)\b)\s?)", kNumber), Quiet()));
  d->money_.push_back(std::make_unique<re2::RE2>(
      absl::StrCat(
          R"((?i)\b)", kNumber,
          R"(\s?(?:元|块|美元|欧元|英镑|港币|(?:dollars?|euros?|pounds?|bucks|usd|eur|gbp|rmb|cny|yuan)\b))"),
      Quiet()));
  d->alnum_run_ = std::make_unique<re2::RE2>(R"([A-Za-z0-9]+(?:-[A-Za-z0-9]+)*)", Quiet());
  d->digit_run_ = std::make_unique<re2::RE2>(R"(\+?[0-9](?:[ \-.()]{0,2}[0-9])*)", Quiet());
  std::vector<const re2::RE2*> all = {d->email_.get(), d->card_.get(), d->alnum_run_.get(),
                                      d->digit_run_.get()};
  for (const auto& re : d->phones_) all.push_back(re.get());
  for (const auto& re : d->money_) all.push_back(re.get());
  for (const re2::RE2* re : all) {
    if (!re->ok()) {
      return absl::InternalError(
          absl::StrCat("entity pattern '", re->pattern(), "' does not compile: ", re->error()));
    }
  }
  return std::unique_ptr<const EntityDetector>(std::move(d));
}

std::vector<Entity> EntityDetector::Find(absl::string_view s) const {
  std::vector<Entity> out;
  auto free = [&out](size_t b, size_t e) {
    return std::none_of(out.begin(), out.end(),
                        [&](const Entity& x) { return b < x.end && x.begin < e; });
  };
  auto add = [&out](EntityKind kind, size_t b, size_t e, std::string key, std::string slot = "") {
    Entity& x = out.emplace_back();
    x.kind = kind;
    x.begin = b;
    x.end = e;
    x.key = std::move(key);
    x.slot = std::move(slot);
  };
  ForEachMatch(*email_, s, [&](size_t b, size_t e, size_t, size_t) {
    add(EntityKind::kEmail, b, e, EmailKey(s.substr(b, e - b)));
  });
  ForEachMatch(*card_, s, [&](size_t b, size_t e, size_t, size_t) {
    const std::string digits = DigitsKey(s.substr(b, e - b));
    if (digits.size() >= 13 && digits.size() <= 19 && PassesLuhn(digits) && free(b, e)) {
      add(EntityKind::kCard, b, e, digits);
    }
  });
  for (const auto& re : phones_) {
    ForEachMatch(*re, s, [&](size_t b, size_t e, size_t, size_t) {
      const std::string digits = DigitsKey(s.substr(b, e - b));
      if (digits.size() >= 7 && digits.size() <= 15 && free(b, e)) {
        add(EntityKind::kPhone, b, e, digits);
      }
    });
  }
  for (const auto& re : money_) {
    ForEachMatch(*re, s, [&](size_t b, size_t e, size_t vb, size_t ve) {
      if (free(b, e)) add(EntityKind::kAmount, b, e, AmountKey(s.substr(vb, ve - vb)));
    });
  }
  for (const domain::Slot& slot : domain_->slots) {
    if (slot.type != domain::SlotType::kRegex || slot.regex == nullptr) continue;
    ForEachMatch(*slot.regex, s, [&](size_t b, size_t e, size_t vb, size_t ve) {
      if (free(vb, ve))
        add(EntityKind::kSlotPattern, vb, ve, AlnumKey(s.substr(vb, ve - vb)), slot.name);
    });
  }
  std::sort(out.begin(), out.end(),
            [](const Entity& a, const Entity& b) { return a.begin < b.begin; });
  return out;
}

std::vector<std::string> EntityDetector::LooseKeys(absl::string_view s) const {
  std::vector<std::string> keys;
  for (Entity& e : Find(s)) keys.push_back(std::move(e.key));
  ForEachMatch(*alnum_run_, s, [&](size_t b, size_t e, size_t, size_t) {
    keys.push_back(AlnumKey(s.substr(b, e - b)));
  });
  ForEachMatch(*digit_run_, s, [&](size_t b, size_t e, size_t, size_t) {
    keys.push_back(DigitsKey(s.substr(b, e - b)));
  });
  return keys;
}

std::string EntityDetector::SlotValueKey(const domain::Slot& slot, absl::string_view value) const {
  switch (slot.type) {
    case domain::SlotType::kEmail:
      return EmailKey(value);
    case domain::SlotType::kPhone:
      return DigitsKey(value);
    case domain::SlotType::kNumber:
    case domain::SlotType::kAmount:  // "12.50 USD": the currency code is not part of the key.
      return AmountKey(value);
    case domain::SlotType::kRegex:
      return AlnumKey(value);
    case domain::SlotType::kEnum:
    case domain::SlotType::kFreeText:
    case domain::SlotType::kDate:
    case domain::SlotType::kTime:
    case domain::SlotType::kDateTime:
      return "";
  }
  return "";
}

}  // namespace helpline::generation::reply
