// Checks and edits of a generated reply that need no dialogue state: whitespace folding,
// cutting a length-limited reply back to its last complete sentence, "nothing but
// punctuation", and degenerate repetition. Pure functions; thread-safe.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace helpline::generation::reply {

// Every run of whitespace (ASCII whitespace, U+00A0, U+3000, U+2000..U+200A, including
// newlines) becomes one ASCII space; both ends are stripped. Used for prompt lines (one
// line per utterance) and before matching blocklists.
std::string CollapseWhitespace(absl::string_view text);

// `text` up to and including its last complete sentence, trailing whitespace dropped;
// nullopt when it has none. A sentence ends at a terminator (. ! ? … and the full-width
// 。！？; a semicolon does not end one), followed by any closing quotes or brackets (" ' ” ’ ) ] 」
// 』 】 》 ）); an ASCII terminator must then be followed by whitespace or the end of the text (so
// that "3.5" or "shop.example" do not end a sentence), a full-width one need not be.
std::optional<std::string> CutToLastSentence(absl::string_view text);

// True when `text` holds no letter, digit or CJK character (only whitespace and
// punctuation, or nothing).
bool IsBlank(absl::string_view text);

// The units repetition is measured on: words (ASCII-lowercased, punctuation removed) and
// single CJK characters; units of punctuation only or of digits only are dropped.
std::vector<std::string> RepetitionUnits(absl::string_view text);

struct RepetitionOptions {
  // n-grams of 1..max_ngram units are checked for consecutive repeats.
  size_t max_ngram = 8;
  // An n-gram shorter than long_ngram repeated this many times in a row is degenerate
  // ("very very very", "好的好的好的").
  size_t min_repeats_short = 3;
  // An n-gram of at least long_ngram units repeated this many times in a row is
  // degenerate ("I will check it. I will check it.").
  size_t long_ngram = 4;
  size_t min_repeats_long = 2;
  // Replies with at least distinct_min_units units whose share of distinct units is
  // below min_distinct_ratio are degenerate. 0 disables the check.
  size_t distinct_min_units = 20;
  double min_distinct_ratio = 0.3;
};

// A short description of the degenerate repetition in `text` ("'thank you' x3 in a row",
// "distinct units 5/40"), or empty when there is none.
std::string FindRepetition(absl::string_view text, const RepetitionOptions& options);

// Byte offsets just past each complete sentence of `s` (the ends CutToLastSentence chooses
// from), in order.
std::vector<size_t> SentenceEnds(absl::string_view s);

// The longest prefix of whole sentences of `s` that is not blank and has no degenerate
// repetition ("Is there anything else? Is there anything else?" -> "Is there anything
// else?"), or nullopt when even the first sentence repeats itself.
std::optional<std::string> CutBeforeRepetition(absl::string_view s, const RepetitionOptions& options);

}  // namespace helpline::generation::reply
