#include "lm/tokenizer/pretokenize.h"

#include <array>

#include "unicode/uchar.h"

namespace helpline::lm::bpe_internal {
namespace {

bool IsWhiteSpace(uint32_t cp) {
  // Unicode's White_Space property (PropList.txt; unchanged since Unicode 6.3, when U+180E
  // left it). Written out rather than asked of ICU so that it cannot drift with ICU.
  switch (cp) {
    case 0x09:
    case 0x0A:
    case 0x0B:
    case 0x0C:
    case 0x0D:
    case 0x20:
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

CharClass ComputeClass(uint32_t cp) {
  if (IsWhiteSpace(cp)) return CharClass::kSpace;
  switch (u_charType(static_cast<UChar32>(cp))) {
    case U_UPPERCASE_LETTER:
    case U_LOWERCASE_LETTER:
    case U_TITLECASE_LETTER:
    case U_MODIFIER_LETTER:
    case U_OTHER_LETTER:
      return CharClass::kLetter;
    case U_DECIMAL_DIGIT_NUMBER:
    case U_LETTER_NUMBER:
    case U_OTHER_NUMBER:
      return CharClass::kNumber;
    default:
      return CharClass::kOther;
  }
}

// Classes of the Basic Multilingual Plane, computed once (64 KiB); the rest asks ICU.
const std::array<CharClass, 0x10000>& BmpClasses() {
  static const auto* table = [] {
    auto* t = new std::array<CharClass, 0x10000>;
    for (uint32_t cp = 0; cp < 0x10000; ++cp) (*t)[cp] = ComputeClass(cp);
    return t;
  }();
  return *table;
}

// ASCII classes, as a constant table (the fast path for most text).
constexpr std::array<CharClass, 128> kAsciiClasses = [] {
  std::array<CharClass, 128> t{};
  for (int c = 0; c < 128; ++c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
      t[c] = CharClass::kLetter;
    } else if (c >= '0' && c <= '9') {
      t[c] = CharClass::kNumber;
    } else if ((c >= 0x09 && c <= 0x0D) || c == ' ') {
      t[c] = CharClass::kSpace;
    } else {
      t[c] = CharClass::kOther;
    }
  }
  return t;
}();

inline bool IsCont(unsigned char b) { return (b & 0xC0) == 0x80; }

}  // namespace

CharClass ClassOfCodePoint(uint32_t cp) {
  if (cp < 0x10000) return BmpClasses()[cp];
  if (cp > 0x10FFFF) return CharClass::kOther;
  return ComputeClass(cp);
}

CharAt ReadChar(absl::string_view text, size_t pos) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data()) + pos;
  const size_t left = text.size() - pos;
  const unsigned char b0 = p[0];
  if (b0 < 0x80) return {kAsciiClasses[b0], 1};
  constexpr CharAt kInvalid{CharClass::kOther, 1};
  if (b0 < 0xC2) return kInvalid;  // Continuation byte or overlong 2-byte lead.
  if (b0 < 0xE0) {
    if (left < 2 || !IsCont(p[1])) return kInvalid;
    return {BmpClasses()[((b0 & 0x1Fu) << 6) | (p[1] & 0x3Fu)], 2};
  }
  if (b0 < 0xF0) {
    if (left < 3 || !IsCont(p[1]) || !IsCont(p[2])) return kInvalid;
    const uint32_t cp = ((b0 & 0x0Fu) << 12) | ((p[1] & 0x3Fu) << 6) | (p[2] & 0x3Fu);
    if (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF)) return kInvalid;  // Overlong, surrogate.
    return {BmpClasses()[cp], 3};
  }
  if (b0 < 0xF5) {
    if (left < 4 || !IsCont(p[1]) || !IsCont(p[2]) || !IsCont(p[3])) return kInvalid;
    const uint32_t cp =
        ((b0 & 0x07u) << 18) | ((p[1] & 0x3Fu) << 12) | ((p[2] & 0x3Fu) << 6) | (p[3] & 0x3Fu);
    if (cp < 0x10000 || cp > 0x10FFFF) return kInvalid;
    return {ComputeClass(cp), 4};
  }
  return kInvalid;
}

size_t NextPieceEnd(absl::string_view text, size_t pos) {
  const size_t n = text.size();
  const char c = text[pos];

  // 's|'t|'re|'ve|'m|'ll|'d (ASCII, case-sensitive).
  if (c == '\'' && pos + 1 < n) {
    const char c1 = text[pos + 1];
    if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return pos + 2;
    if (pos + 2 < n) {
      const char c2 = text[pos + 2];
      if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) {
        return pos + 3;
      }
    }
  }

  CharAt ch = ReadChar(text, pos);
  size_t run_start = pos;
  // " ?" in front of a letter, number or other-symbol run: a single U+0020 joins it.
  if (c == ' ' && pos + 1 < n) {
    const CharAt next = ReadChar(text, pos + 1);
    if (next.cls != CharClass::kSpace) {
      ch = next;
      run_start = pos + 1;
    }
  }

  if (ch.cls != CharClass::kSpace) {
    // \p{L}+, \p{N}+ or [^\s\p{L}\p{N}]+: the longest run of one class.
    size_t end = run_start + ch.len;
    while (end < n) {
      const CharAt next = ReadChar(text, end);
      if (next.cls != ch.cls) break;
      end += next.len;
    }
    return end;
  }

  // \s+(?!\S) | \s+ : a whitespace run. When it reaches the end of the text, all of it;
  // otherwise all but its last character (which then goes with what follows), unless it
  // is a single character.
  size_t end = pos + ch.len;
  size_t last_start = pos;
  while (end < n) {
    const CharAt next = ReadChar(text, end);
    if (next.cls != CharClass::kSpace) {
      return last_start == pos ? end : last_start;
    }
    last_start = end;
    end += next.len;
  }
  return end;
}

}  // namespace helpline::lm::bpe_internal
