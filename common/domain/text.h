// Small UTF-8 helpers shared by the tracker (features) and generation (token counts,
// stream deltas). Not a Unicode library: ICU-grade work belongs to preprocess.
#pragma once

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

namespace helpline::domain::text {

// Decodes the code point starting at text[*pos] and advances *pos past it. An invalid or
// truncated sequence yields U+FFFD and advances one byte.
char32_t NextCodePoint(absl::string_view text, size_t* pos);

// Appends the UTF-8 encoding of `cp` (a valid scalar value) to `out`.
void AppendUtf8(char32_t cp, std::string& out);

// Han ideographs (incl. extensions and compatibility), kana.
bool IsCjk(char32_t cp);
// ASCII whitespace, U+00A0, U+3000 and the U+2000..U+200A spaces.
bool IsSpace(char32_t cp);
// Letters and digits as far as these helpers care: ASCII alphanumerics and any code point
// >= U+00C0 that is neither CJK, space, nor in the punctuation blocks (U+2000..U+206F,
// U+3000..U+303F, U+FF00..U+FF0F, U+FF1A..U+FF20, U+FF3B..U+FF40, U+FF5B..U+FF65).
bool IsWordChar(char32_t cp);

// ASCII lower-casing; other bytes unchanged.
std::string AsciiLower(absl::string_view text);

// True when the text contains at least one CJK code point.
bool ContainsCjk(absl::string_view text);

// Byte spans [begin, end) of "token units": each CJK code point is one unit, and each
// maximal run of other non-space code points is one unit. Never splits a UTF-8 sequence.
std::vector<std::pair<size_t, size_t>> TokenUnits(absl::string_view text);

// TokenUnits(text).size(), without building the spans.
size_t CountTokenUnits(absl::string_view text);

}  // namespace helpline::domain::text
