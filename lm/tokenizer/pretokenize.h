// GPT-2's pre-tokenizer, written out by hand: the pieces that the regular expression
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// finds with Python's `regex` module (GPT-2's encoder.py). Internal to lm_tokenizer; in a
// header so that tests can reach it.
#pragma once

#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"

namespace helpline::lm::bpe_internal {

// The classes the expression distinguishes. \s is Unicode's White_Space property (what
// the `regex` module uses; it has U+0085 but not U+FEFF, unlike JavaScript's \s),
// \p{L} the general categories L*, \p{N} the categories N* (from ICU).
enum class CharClass : uint8_t { kOther = 0, kLetter = 1, kNumber = 2, kSpace = 3 };

// The class of code point `cp` (any value; non-characters and surrogates are kOther).
CharClass ClassOfCodePoint(uint32_t cp);

// Reads one character at `pos` (< text.size()): its class and its length in bytes. A byte
// that does not start a well-formed UTF-8 sequence (stray continuation, overlong form,
// surrogate, > U+10FFFF, truncated) is one character of length 1 and class kOther.
struct CharAt {
  CharClass cls;
  uint8_t len;
};
CharAt ReadChar(absl::string_view text, size_t pos);

// End (exclusive) of the piece that starts at `pos` (< text.size()). Pieces tile the text:
// for (p = 0; p < n; p = NextPieceEnd(text, p)) visits every piece in order.
size_t NextPieceEnd(absl::string_view text, size_t pos);

}  // namespace helpline::lm::bpe_internal
