#include "services/generation/reply/reply_text.h"

#include <algorithm>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/domain/text.h"

namespace helpline::generation::reply {
namespace {

namespace text = ::helpline::domain::text;

bool IsAsciiTerminator(char32_t cp) { return cp == '.' || cp == '!' || cp == '?'; }

bool IsWideTerminator(char32_t cp) {
  return cp == U'\u3002' || cp == U'\uFF01' || cp == U'\uFF1F' || cp == U'\u2026' ||
         cp == U'\uFF0E';
}

bool IsCloser(char32_t cp) {
  switch (cp) {
    case '"':
    case '\'':
    case ')':
    case ']':
    case U'\u201D':  // ”
    case U'\u2019':  // ’
    case U'\u300D':  // 」
    case U'\u300F':  // 』
    case U'\u3011':  // 】
    case U'\u300B':  // 》
    case U'\uFF09':  // ）
      return true;
    default:
      return false;
  }
}

}  // namespace

std::string CollapseWhitespace(absl::string_view s) {
  std::string out;
  out.reserve(s.size());
  bool pending_space = false;
  size_t pos = 0;
  while (pos < s.size()) {
    const size_t start = pos;
    const char32_t cp = text::NextCodePoint(s, &pos);
    if (text::IsSpace(cp) || cp == U'\u2028' || cp == U'\u2029' || cp == 0x85) {
      pending_space = true;
      continue;
    }
    if (pending_space && !out.empty()) out.push_back(' ');
    pending_space = false;
    out.append(s.data() + start, pos - start);
  }
  return out;
}

std::vector<size_t> SentenceEnds(absl::string_view s) {
  std::vector<size_t> ends;
  size_t pos = 0;
  while (pos < s.size()) {
    char32_t cp = text::NextCodePoint(s, &pos);
    if (!IsAsciiTerminator(cp) && !IsWideTerminator(cp)) continue;
    // A run of terminators ("?!", "...", "。。") ends where the run and its closers end.
    bool wide = IsWideTerminator(cp);
    size_t end = pos;
    while (end < s.size()) {
      size_t next = end;
      cp = text::NextCodePoint(s, &next);
      if (IsAsciiTerminator(cp) || IsWideTerminator(cp)) {
        wide = wide || IsWideTerminator(cp);
        end = next;
      } else if (IsCloser(cp)) {
        end = next;
      } else {
        break;
      }
    }
    bool complete = wide;
    if (!complete) {
      if (end == s.size()) {
        complete = true;
      } else {
        size_t next = end;
        complete = text::IsSpace(text::NextCodePoint(s, &next)) || s[end] == '\n';
      }
    }
    if (complete) ends.push_back(end);
    pos = end;
  }
  return ends;
}

std::optional<std::string> CutToLastSentence(absl::string_view s) {
  const std::vector<size_t> ends = SentenceEnds(s);
  if (ends.empty()) return std::nullopt;
  return std::string(absl::StripTrailingAsciiWhitespace(s.substr(0, ends.back())));
}

std::optional<std::string> CutBeforeRepetition(absl::string_view s, const RepetitionOptions& options) {
  const std::vector<size_t> ends = SentenceEnds(s);
  for (auto it = ends.rbegin(); it != ends.rend(); ++it) {
    const absl::string_view prefix = absl::StripTrailingAsciiWhitespace(s.substr(0, *it));
    if (!IsBlank(prefix) && FindRepetition(prefix, options).empty()) return std::string(prefix);
  }
  return std::nullopt;
}

bool IsBlank(absl::string_view s) {
  size_t pos = 0;
  while (pos < s.size()) {
    const char32_t cp = text::NextCodePoint(s, &pos);
    if (cp < 0x80 ? absl::ascii_isalnum(static_cast<unsigned char>(cp))
                  : (text::IsCjk(cp) || text::IsWordChar(cp))) {
      return false;
    }
  }
  return true;
}

std::vector<std::string> RepetitionUnits(absl::string_view s) {
  std::vector<std::string> units;
  for (const auto& [begin, end] : text::TokenUnits(s)) {
    absl::string_view unit = s.substr(begin, end - begin);
    std::string normalized;
    size_t pos = 0;
    while (pos < unit.size()) {
      const char32_t cp = text::NextCodePoint(unit, &pos);
      if (cp < 0x80) {
        if (absl::ascii_isalnum(static_cast<unsigned char>(cp))) {
          normalized.push_back(absl::ascii_tolower(static_cast<unsigned char>(cp)));
        }
      } else if (text::IsCjk(cp) || text::IsWordChar(cp)) {
        domain::text::AppendUtf8(cp, normalized);
      }
    }
    // Digit groups ("4111 1111 1111 1111") repeat without being degenerate.
    const bool digits_only = std::all_of(normalized.begin(), normalized.end(), [](char c) {
      return absl::ascii_isdigit(static_cast<unsigned char>(c));
    });
    if (!normalized.empty() && !digits_only) units.push_back(std::move(normalized));
  }
  return units;
}

std::string FindRepetition(absl::string_view s, const RepetitionOptions& options) {
  const std::vector<std::string> u = RepetitionUnits(s);
  const size_t n_units = u.size();
  auto same = [&u](size_t a, size_t b, size_t n) {
    for (size_t k = 0; k < n; ++k) {
      if (u[a + k] != u[b + k]) return false;
    }
    return true;
  };
  for (size_t n = 1; n <= options.max_ngram && 2 * n <= n_units; ++n) {
    const size_t needed =
        n >= options.long_ngram ? options.min_repeats_long : options.min_repeats_short;
    if (needed < 2) continue;  // A threshold below 2 would flag every text.
    for (size_t i = 0; i + needed * n <= n_units; ++i) {
      size_t repeats = 1;
      while (i + (repeats + 1) * n <= n_units && same(i, i + repeats * n, n)) ++repeats;
      if (repeats >= needed) {
        const std::vector<std::string> gram(u.begin() + i, u.begin() + i + n);
        return absl::StrCat("'", absl::StrJoin(gram, " "), "' x", repeats, " in a row");
      }
    }
  }
  if (options.distinct_min_units > 0 && n_units >= options.distinct_min_units) {
    const size_t distinct = std::set<std::string>(u.begin(), u.end()).size();
    if (static_cast<double>(distinct) < options.min_distinct_ratio * n_units) {
      return absl::StrCat("distinct units ", distinct, "/", n_units);
    }
  }
  return "";
}

}  // namespace helpline::generation::reply
