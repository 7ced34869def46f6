// The logic of helpline-preprocess, without gRPC: normalize a customer's text (NFKC, which
// also folds full-width forms; control and zero-width characters removed; whitespace runs
// collapsed), detect its language by script, segment it into words with ICU (dictionary
// based for Chinese) and find personal data (e-mail, phone, payment card) with a redacted
// copy. All offsets are UTF-8 byte offsets into the normalized text.
//
// Thread-safe: Process() may be called from many threads at once.
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "helpline/common/v1/types.pb.h"
#include "unicode/uversion.h"

namespace re2 {
class RE2;
}
U_NAMESPACE_BEGIN  // ICU's versioned namespace, aliased as icu.
    class BreakIterator;
class Normalizer2;
U_NAMESPACE_END

namespace helpline::preprocess {

struct PreprocessorOptions {
  // Longest accepted input in bytes (before normalization).
  size_t max_text_bytes = 16384;
};

class Preprocessor {
 public:
  // Loads ICU's NFKC data and word-break rules and compiles the PII patterns. INTERNAL if
  // ICU's data is missing (a broken installation).
  static absl::StatusOr<std::unique_ptr<Preprocessor>> Create(PreprocessorOptions options);
  ~Preprocessor();

  // Preprocesses one message. `language_hint` ("en", "zh", "en-US", ...) is used when its
  // primary subtag is en or zh; anything else means "detect". Empty text gives an empty
  // result. INVALID_ARGUMENT "text: ..." when the text is not valid UTF-8 or too long.
  absl::StatusOr<common::v1::PreprocessedText> Process(absl::string_view text,
                                                       absl::string_view language_hint) const;

  // The steps, public for tests. Input must be valid UTF-8.
  absl::StatusOr<std::string> Normalize(absl::string_view text) const;
  std::vector<common::v1::Token> Segment(const std::string& normalized) const;
  std::vector<common::v1::PiiSpan> FindPii(absl::string_view normalized) const;

 private:
  Preprocessor() = default;

  bool IsPhone(absl::string_view candidate) const;
  // Segment, appending to `tokens`.
  void SegmentInto(const std::string& normalized,
                   google::protobuf::RepeatedPtrField<common::v1::Token>& tokens) const;
  // A word break iterator from the pool (a clone of the prototype when the pool is empty);
  // give it back with Release.
  std::unique_ptr<icu::BreakIterator> Acquire() const;
  void Release(std::unique_ptr<icu::BreakIterator> iterator) const;

  PreprocessorOptions options_;
  const icu::Normalizer2* nfkc_ = nullptr;  // Owned by ICU.
  std::unique_ptr<icu::BreakIterator> word_break_;  // The prototype; never used directly.
  mutable std::mutex word_break_mu_;                // Guards idle_word_breaks_.
  // Clones not in use, so that a call does not pay for a clone (at most kMaxIdle kept).
  mutable std::vector<std::unique_ptr<icu::BreakIterator>> idle_word_breaks_;
  std::unique_ptr<re2::RE2> email_re_;
  std::unique_ptr<re2::RE2> digits_re_;
  std::unique_ptr<re2::RE2> phone_re_;
};

// Language of a normalized text by script: "zh", "en" or "und". Han characters weigh 4
// (a Chinese word is one or two characters, an English one about five letters), Latin
// letters 1, letters of any other script (kana, Hangul, Cyrillic, ...) 4 per kana/Hangul
// syllable and 1 otherwise; the strictly largest weight wins, else "und".
std::string DetectLanguage(absl::string_view normalized);

// True when `digits` (ASCII digits only) passes the Luhn checksum.
bool PassesLuhn(absl::string_view digits);

// "[EMAIL]", "[PHONE]" or "[CARD]".
absl::string_view PlaceholderFor(common::v1::PiiKind kind);

// `text` with each span (sorted, non-overlapping) replaced by its placeholder.
std::string Redact(absl::string_view text, const std::vector<common::v1::PiiSpan>& spans);

}  // namespace helpline::preprocess
