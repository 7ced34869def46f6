// Phrases a reply must never contain (the `unsafe` rejection): profanity, abuse, threats.
// Matching is case-insensitive (ASCII). A phrase without CJK characters matches at word
// boundaries only ("ass" does not match "pass" or "assistance"); a phrase with CJK
// characters matches as a substring (Chinese has no spaces between words). Whitespace runs
// in phrases and text compare as one space. The language keys only organize the file:
// every phrase is checked against every reply, whatever its language.
//
// File format (YAML): a map from language to a list of phrases, e.g.
//   en: [idiot, "shut up"]
//   zh: [傻逼, 去死]
//
// Immutable after construction; thread-safe.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace helpline::generation::reply {

class Blocklist {
 public:
  // An empty list: nothing is blocked.
  Blocklist() = default;

  // From phrases by language. INVALID_ARGUMENT "<origin>: <language>[i]: ..." on an
  // empty phrase.
  static absl::StatusOr<Blocklist> FromPhrases(
      const std::map<std::string, std::vector<std::string>>& by_language, absl::string_view origin);
  // Parses the YAML format above. INVALID_ARGUMENT naming origin (and the line) when the
  // text is not YAML, not a map of lists of strings, or has an empty phrase.
  static absl::StatusOr<Blocklist> Parse(absl::string_view yaml_text, absl::string_view origin);
  // Reads and parses a file. NOT_FOUND when it cannot be read.
  static absl::StatusOr<Blocklist> LoadFile(const std::string& path);

  // The first listed phrase (as written in the list) found in `text`; nullopt when none.
  std::optional<std::string> FindIn(absl::string_view text) const;

  size_t size() const { return phrases_.size(); }

 private:
  struct Phrase {
    std::string original;
    std::string lowered;  // whitespace-collapsed, ASCII-lowercased
    bool substring = false;
  };
  std::vector<Phrase> phrases_;
};

}  // namespace helpline::generation::reply
