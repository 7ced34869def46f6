#include "services/preprocess/preprocessor.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "re2/re2.h"
#include "unicode/brkiter.h"
#include "unicode/normalizer2.h"
#include "unicode/uchar.h"
#include "unicode/unistr.h"
#include "unicode/uscript.h"
#include "unicode/utext.h"
#include "unicode/utf16.h"
#include "unicode/utf8.h"

namespace helpline::preprocess {
namespace {

using common::v1::PiiKind;
using common::v1::PiiSpan;
using common::v1::Token;

// NFKC can expand text (U+FDFA becomes 18 characters); the result is capped at this many
// times the input limit so that a short input cannot become a huge one.
constexpr size_t kMaxExpansion = 4;

bool IsLineBreak(UChar32 c) {
  return c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x85 || c == 0x2028 ||
         c == 0x2029;
}

// Control (Cc) and format (Cf: zero-width space/joiners, BOM, word joiner, bidi marks, soft
// hyphen, ...) characters, except the whitespace controls (tab, line breaks).
bool IsDropped(UChar32 c) {
  int8_t type = u_charType(c);
  if (type == U_FORMAT_CHAR) return true;
  return type == U_CONTROL_CHAR && !u_isUWhiteSpace(c);
}

// IsDropped and u_isUWhiteSpace of the ASCII range, computed once with ICU itself.
struct AsciiClasses {
  bool dropped[128];
  bool white_space[128];
};

const AsciiClasses& Ascii() {
  static const AsciiClasses* classes = [] {
    auto* c = new AsciiClasses();
    for (UChar32 ch = 0; ch < 128; ++ch) {
      c->dropped[ch] = IsDropped(ch);
      c->white_space[ch] = u_isUWhiteSpace(ch);
    }
    return c;
  }();
  return *classes;
}

bool IsDroppedFast(UChar32 c) { return c < 128 ? Ascii().dropped[c] : IsDropped(c); }
bool IsWhiteSpaceFast(UChar32 c) { return c < 128 ? Ascii().white_space[c] : u_isUWhiteSpace(c); }

void AppendUtf8(std::string& out, UChar32 c) {
  uint8_t buffer[U8_MAX_LENGTH];
  int32_t length = 0;
  U8_APPEND_UNSAFE(buffer, length, c);
  out.append(reinterpret_cast<const char*>(buffer), length);
}

bool IsAsciiWordChar(char c) { return absl::ascii_isalnum(c) || c == '_'; }

// True when [begin, end) of `text` is not glued to a letter, digit or '_' on either side.
bool HasWordBoundaries(absl::string_view text, size_t begin, size_t end) {
  if (begin > 0 && IsAsciiWordChar(text[begin - 1])) return false;
  if (end < text.size() && IsAsciiWordChar(text[end])) return false;
  return true;
}

struct DigitGroup {
  size_t begin;  // Byte offsets in the candidate.
  size_t end;
};

std::vector<DigitGroup> DigitGroupsOf(absl::string_view candidate) {
  std::vector<DigitGroup> groups;
  for (size_t i = 0; i < candidate.size();) {
    if (!absl::ascii_isdigit(candidate[i])) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < candidate.size() && absl::ascii_isdigit(candidate[j])) ++j;
    groups.push_back({i, j});
    i = j;
  }
  return groups;
}

re2::StringPiece Piece(absl::string_view s) { return re2::StringPiece(s.data(), s.size()); }

// Calls fn(begin, end) for each non-overlapping match of `re` in `text`, left to right.
template <typename Fn>
void ForEachMatch(const re2::RE2& re, absl::string_view text, Fn fn) {
  re2::StringPiece match;
  size_t pos = 0;
  while (pos < text.size() &&
         re.Match(Piece(text), pos, text.size(), re2::RE2::UNANCHORED, &match, 1)) {
    size_t begin = match.data() - text.data();
    size_t end = begin + match.size();
    fn(begin, end);
    pos = std::max(end, begin + 1);
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<Preprocessor>> Preprocessor::Create(PreprocessorOptions options) {
  std::unique_ptr<Preprocessor> p(new Preprocessor());
  p->options_ = options;
  UErrorCode status = U_ZERO_ERROR;
  p->nfkc_ = icu::Normalizer2::getNFKCInstance(status);
  if (U_FAILURE(status) || p->nfkc_ == nullptr) {
    return absl::InternalError(absl::StrCat("ICU NFKC data unavailable: ", u_errorName(status)));
  }
  status = U_ZERO_ERROR;
  p->word_break_.reset(icu::BreakIterator::createWordInstance(icu::Locale::getRoot(), status));
  if (U_FAILURE(status) || p->word_break_ == nullptr) {
    return absl::InternalError(
        absl::StrCat("ICU word break rules unavailable: ", u_errorName(status)));
  }
  // Local part, '@', dot-separated domain labels, a top-level domain of letters.
  p->email_re_ = std::make_unique<re2::RE2>(
      R"([A-Za-z0-9._%+\-]+@[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?)"
      R"((?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,24})");
  // Runs of digits with single spaces or dashes between them (payment card candidates).
  p->digits_re_ = std::make_unique<re2::RE2>(R"(\d(?:[ \-]?\d)*)");
  // Digit groups with one separator between them: space, '-', '.', or parentheses around
  // an area code, optionally after '+'. IsPhone() decides.
  p->phone_re_ = std::make_unique<re2::RE2>(R"(\+?\(?\d+(?:(?:[ .\-]|\)[ .\-]?|[ .\-]?\()\d+)*)");
  for (const re2::RE2* re : {p->email_re_.get(), p->digits_re_.get(), p->phone_re_.get()}) {
    if (!re->ok()) return absl::InternalError(absl::StrCat("bad pattern: ", re->error()));
  }
  Ascii();
  // ICU loads its Chinese/Japanese dictionary engine on the first CJK text it segments
  // (milliseconds); do it now rather than in the first Chinese customer's turn.
  p->Segment("\xE4\xB8\xAD\xE6\x96\x87\xE5\x88\x86\xE8\xAF\x8D");  // "中文分词"
  return p;
}

std::unique_ptr<icu::BreakIterator> Preprocessor::Acquire() const {
  {
    std::lock_guard lock(word_break_mu_);
    if (!idle_word_breaks_.empty()) {
      std::unique_ptr<icu::BreakIterator> it = std::move(idle_word_breaks_.back());
      idle_word_breaks_.pop_back();
      return it;
    }
  }
  return std::unique_ptr<icu::BreakIterator>(word_break_->clone());  // clone() is const.
}

void Preprocessor::Release(std::unique_ptr<icu::BreakIterator> iterator) const {
  constexpr size_t kMaxIdle = 64;
  std::lock_guard lock(word_break_mu_);
  if (idle_word_breaks_.size() < kMaxIdle) idle_word_breaks_.push_back(std::move(iterator));
}

Preprocessor::~Preprocessor() = default;

absl::StatusOr<std::string> Preprocessor::Normalize(absl::string_view text) const {
  // Pass 1: decode, rejecting invalid UTF-8 (also surrogates and overlong forms), and drop
  // controls and format characters before NFKC so that they cannot block composition.
  // UTF-16 is never longer (in code units) than UTF-8 (in bytes): write into the buffer.
  icu::UnicodeString filtered;
  const uint8_t* bytes = reinterpret_cast<const uint8_t*>(text.data());
  const int32_t length = static_cast<int32_t>(text.size());
  char16_t* buffer = filtered.getBuffer(length > 0 ? length : 1);
  if (buffer == nullptr) return absl::ResourceExhaustedError("text: out of memory");
  int32_t units = 0;
  for (int32_t i = 0; i < length;) {
    UChar32 c;
    U8_NEXT(bytes, i, length, c);
    if (c < 0) {
      filtered.releaseBuffer(0);
      return absl::InvalidArgumentError("text: not valid UTF-8");
    }
    if (!IsDroppedFast(c)) U16_APPEND_UNSAFE(buffer, units, c);
  }
  filtered.releaseBuffer(units);
  UErrorCode status = U_ZERO_ERROR;
  icu::UnicodeString normalized = nfkc_->normalize(filtered, status);
  if (U_FAILURE(status)) {
    return absl::InternalError(absl::StrCat("NFKC normalization failed: ", u_errorName(status)));
  }
  // Pass 2: drop what NFKC may have produced, collapse each whitespace run into one
  // character ('\n' if the run has a line break, else ' '), trim both ends.
  std::string out;
  out.reserve(text.size());
  bool pending_space = false;
  bool pending_newline = false;
  const char16_t* units16 = normalized.getBuffer();
  const int32_t length16 = normalized.length();
  for (int32_t k = 0; k < length16;) {
    UChar32 c;
    U16_NEXT(units16, k, length16, c);
    if (IsWhiteSpaceFast(c)) {
      if (IsLineBreak(c)) {
        pending_newline = true;
      } else {
        pending_space = true;
      }
      continue;
    }
    if (IsDroppedFast(c)) continue;
    if (!out.empty() && (pending_space || pending_newline)) out += pending_newline ? '\n' : ' ';
    pending_space = pending_newline = false;
    AppendUtf8(out, c);
  }
  if (out.size() > kMaxExpansion * options_.max_text_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("text: ", out.size(), " bytes after normalization is over the limit of ",
                     kMaxExpansion * options_.max_text_bytes));
  }
  return out;
}

std::vector<Token> Preprocessor::Segment(const std::string& normalized) const {
  google::protobuf::RepeatedPtrField<Token> tokens;
  SegmentInto(normalized, tokens);
  return std::vector<Token>(std::make_move_iterator(tokens.begin()),
                            std::make_move_iterator(tokens.end()));
}

void Preprocessor::SegmentInto(const std::string& normalized,
                               google::protobuf::RepeatedPtrField<Token>& tokens) const {
  if (normalized.empty()) return;
  std::unique_ptr<icu::BreakIterator> words = Acquire();
  if (words == nullptr) return;
  UErrorCode status = U_ZERO_ERROR;
  // A UTF-8 UText: the iterator's native indices are byte offsets into `normalized`.
  UText text = UTEXT_INITIALIZER;
  utext_openUTF8(&text, normalized.data(), static_cast<int64_t>(normalized.size()), &status);
  if (U_FAILURE(status)) {
    Release(std::move(words));
    return;
  }
  words->setText(&text, status);
  if (U_SUCCESS(status)) {
    int32_t begin = words->first();
    for (int32_t end = words->next(); end != icu::BreakIterator::DONE;
         begin = end, end = words->next()) {
      // Keep words, numbers, kana and ideographs; skip spaces and punctuation.
      if (words->getRuleStatus() < UBRK_WORD_NONE_LIMIT) continue;
      Token* token = tokens.Add();
      token->set_begin(static_cast<uint32_t>(begin));
      token->set_end(static_cast<uint32_t>(end));
      token->set_text(normalized.data() + begin, static_cast<size_t>(end - begin));
    }
  }
  // The iterator keeps a shallow clone of the UText (no ownership of the string); it is
  // never read again before the next setText replaces it.
  utext_close(&text);
  Release(std::move(words));
}

bool Preprocessor::IsPhone(absl::string_view candidate) const {
  std::vector<DigitGroup> groups = DigitGroupsOf(candidate);
  size_t digits = 0;
  for (const DigitGroup& g : groups) digits += g.end - g.begin;
  if (candidate.empty() || groups.empty()) return false;
  // International: '+' and 7 to 15 digits (E.164).
  if (candidate[0] == '+') return digits >= 7 && digits <= 15;
  // A bare run of digits is not a phone number (order numbers, amounts) except a Chinese
  // mobile number: 11 digits starting 13..19.
  if (groups.size() == 1) {
    return digits == 11 && candidate[0] == '1' && candidate[1] >= '3' && candidate[1] <= '9';
  }
  // National, formatted: 9 to 15 digits in groups; every group after the first has at
  // least 2 digits (the first may be a trunk code such as "1" in 1-800-...).
  if (digits < 9 || digits > 15) return false;
  for (size_t i = 1; i < groups.size(); ++i) {
    if (groups[i].end - groups[i].begin < 2) return false;
  }
  // Not a date: YYYY-MM-DD... or DD.MM.YYYY...
  if (groups.size() >= 3) {
    size_t a = groups[0].end - groups[0].begin;
    size_t b = groups[1].end - groups[1].begin;
    size_t c = groups[2].end - groups[2].begin;
    if (a == 4 && b <= 2 && c <= 2) return false;
    if (a <= 2 && b <= 2 && c == 4) return false;
  }
  return true;
}

std::vector<PiiSpan> Preprocessor::FindPii(absl::string_view text) const {
  std::vector<PiiSpan> spans;
  auto overlaps = [&spans](size_t begin, size_t end) {
    return std::any_of(spans.begin(), spans.end(),
                       [&](const PiiSpan& s) { return begin < s.end() && s.begin() < end; });
  };
  auto add = [&spans](PiiKind kind, size_t begin, size_t end) {
    PiiSpan& span = spans.emplace_back();
    span.set_kind(kind);
    span.set_begin(static_cast<uint32_t>(begin));
    span.set_end(static_cast<uint32_t>(end));
  };

  // Every pattern needs an '@' (e-mail) or an ASCII digit (cards, phones): skip the scans
  // that cannot match.
  const bool has_at = text.find('@') != absl::string_view::npos;
  const bool has_digit = std::any_of(text.begin(), text.end(), absl::ascii_isdigit);
  if (has_at) {
    ForEachMatch(*email_re_, text,
                 [&](size_t begin, size_t end) { add(common::v1::PII_KIND_EMAIL, begin, end); });
  }
  if (!has_digit) return spans;  // Sorted: e-mail matches come left to right.

  // Payment cards: within each run of digit groups, the first run of whole groups with 13
  // to 19 digits, a first digit 2..6 (the major networks' ranges) and a valid Luhn sum.
  ForEachMatch(*digits_re_, text, [&](size_t begin, size_t end) {
    if (!HasWordBoundaries(text, begin, end) || overlaps(begin, end)) return;
    absl::string_view run = text.substr(begin, end - begin);
    std::vector<DigitGroup> groups = DigitGroupsOf(run);
    for (size_t i = 0; i < groups.size();) {
      bool found = false;
      for (size_t j = groups.size(); j-- > i;) {
        std::string digits;
        for (size_t k = i; k <= j; ++k) {
          digits.append(run.data() + groups[k].begin, groups[k].end - groups[k].begin);
        }
        if (digits.size() < 13 || digits.size() > 19) continue;
        if (digits[0] < '2' || digits[0] > '6' || !PassesLuhn(digits)) continue;
        add(common::v1::PII_KIND_PAYMENT_CARD, begin + groups[i].begin, begin + groups[j].end);
        i = j + 1;
        found = true;
        break;
      }
      if (!found) ++i;
    }
  });

  ForEachMatch(*phone_re_, text, [&](size_t begin, size_t end) {
    if (!HasWordBoundaries(text, begin, end) || overlaps(begin, end)) return;
    absl::string_view candidate = text.substr(begin, end - begin);
    if (candidate[0] == '(' && candidate.find(')') == absl::string_view::npos) {
      candidate.remove_prefix(1);  // An opening parenthesis that belongs to the sentence.
      ++begin;
    }
    if (IsPhone(candidate)) add(common::v1::PII_KIND_PHONE, begin, end);
  });

  std::sort(spans.begin(), spans.end(),
            [](const PiiSpan& a, const PiiSpan& b) { return a.begin() < b.begin(); });
  return spans;
}

absl::StatusOr<common::v1::PreprocessedText> Preprocessor::Process(
    absl::string_view text, absl::string_view language_hint) const {
  if (text.size() > options_.max_text_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "text: ", text.size(), " bytes is over the limit of ", options_.max_text_bytes));
  }
  absl::StatusOr<std::string> normalized = Normalize(text);
  if (!normalized.ok()) return normalized.status();

  common::v1::PreprocessedText result;
  std::string hint =
      absl::AsciiStrToLower(language_hint.substr(0, language_hint.find_first_of("-_")));
  result.set_language(hint == "en" || hint == "zh" ? hint : DetectLanguage(*normalized));
  SegmentInto(*normalized, *result.mutable_tokens());
  std::vector<PiiSpan> spans = FindPii(*normalized);
  result.set_redacted_text(Redact(*normalized, spans));
  for (PiiSpan& span : spans) *result.add_pii_spans() = std::move(span);
  result.set_normalized_text(std::move(*normalized));
  return result;
}

std::string DetectLanguage(absl::string_view normalized) {
  uint64_t zh = 0;
  uint64_t en = 0;
  uint64_t other = 0;
  const uint8_t* bytes = reinterpret_cast<const uint8_t*>(normalized.data());
  const int32_t length = static_cast<int32_t>(normalized.size());
  for (int32_t i = 0; i < length;) {
    UChar32 c;
    U8_NEXT(bytes, i, length, c);
    if (c < 0) continue;
    if (c < 0x80) {  // ASCII: Latin letters or Common (digits, punctuation, controls).
      if (absl::ascii_isalpha(static_cast<unsigned char>(c))) en += 1;
      continue;
    }
    UErrorCode status = U_ZERO_ERROR;
    UScriptCode script = uscript_getScript(c, &status);
    if (U_FAILURE(status)) continue;
    if (script == USCRIPT_HAN) {
      zh += 4;
    } else if (!u_isalpha(c)) {
      continue;
    } else if (script == USCRIPT_LATIN) {
      en += 1;
    } else if (script == USCRIPT_HIRAGANA || script == USCRIPT_KATAKANA ||
               script == USCRIPT_HANGUL) {
      other += 4;
    } else {
      other += 1;
    }
  }
  if (zh > en && zh > other) return "zh";
  if (en > zh && en > other) return "en";
  return "und";
}

bool PassesLuhn(absl::string_view digits) {
  if (digits.empty()) return false;
  int sum = 0;
  bool double_it = false;
  for (size_t i = digits.size(); i-- > 0;) {
    if (!absl::ascii_isdigit(digits[i])) return false;
    int d = digits[i] - '0';
    if (double_it) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double_it = !double_it;
  }
  return sum % 10 == 0;
}

absl::string_view PlaceholderFor(PiiKind kind) {
  switch (kind) {
    case common::v1::PII_KIND_EMAIL:
      return "[EMAIL]";
    case common::v1::PII_KIND_PHONE:
      return "[PHONE]";
    case common::v1::PII_KIND_PAYMENT_CARD:
      return "[CARD]";
    default:
      return "[PII]";
  }
}

std::string Redact(absl::string_view text, const std::vector<PiiSpan>& spans) {
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  for (const PiiSpan& span : spans) {
    if (span.begin() < pos || span.end() > text.size() || span.begin() > span.end()) continue;
    absl::StrAppend(&out, text.substr(pos, span.begin() - pos), PlaceholderFor(span.kind()));
    pos = span.end();
  }
  absl::StrAppend(&out, text.substr(pos));
  return out;
}

}  // namespace helpline::preprocess
