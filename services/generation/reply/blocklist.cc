#include "services/generation/reply/blocklist.h"

#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/domain/text.h"
#include "services/generation/reply/reply_text.h"
#include "yaml-cpp/yaml.h"

namespace helpline::generation::reply {
namespace {

namespace text = ::helpline::domain::text;

// The code point that ends just before byte `end` (U+FFFD for a broken sequence); 0 at
// the start of the text.
char32_t CodePointBefore(absl::string_view s, size_t end) {
  if (end == 0) return 0;
  size_t begin = end - 1;
  while (begin > 0 && end - begin < 4 && (static_cast<unsigned char>(s[begin]) & 0xC0) == 0x80) {
    --begin;
  }
  size_t pos = begin;
  return text::NextCodePoint(s, &pos);
}

char32_t CodePointAt(absl::string_view s, size_t begin) {
  if (begin >= s.size()) return 0;
  return text::NextCodePoint(s, &begin);
}

bool IsWord(char32_t cp) { return cp != 0 && text::IsWordChar(cp); }

}  // namespace

absl::StatusOr<Blocklist> Blocklist::FromPhrases(
    const std::map<std::string, std::vector<std::string>>& by_language, absl::string_view origin) {
  Blocklist list;
  for (const auto& [language, phrases] : by_language) {
    for (size_t i = 0; i < phrases.size(); ++i) {
      Phrase p;
      p.original = phrases[i];
      p.lowered = text::AsciiLower(CollapseWhitespace(phrases[i]));
      if (p.lowered.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat(origin, ": ", language, "[", i, "]: empty phrase"));
      }
      p.substring = text::ContainsCjk(p.lowered);
      list.phrases_.push_back(std::move(p));
    }
  }
  return list;
}

absl::StatusOr<Blocklist> Blocklist::Parse(absl::string_view yaml_text, absl::string_view origin) {
  std::map<std::string, std::vector<std::string>> by_language;
  try {
    const YAML::Node root = YAML::Load(std::string(yaml_text));
    if (root.IsNull()) return Blocklist();
    if (!root.IsMap()) {
      return absl::InvalidArgumentError(
          absl::StrCat(origin, ": expected a map from language to a list of phrases"));
    }
    for (const auto& entry : root) {
      if (!entry.first.IsScalar()) {
        return absl::InvalidArgumentError(absl::StrCat(
            origin, ": a language key must be a string (line ", entry.first.Mark().line + 1, ")"));
      }
      const std::string language = entry.first.as<std::string>();
      const YAML::Node& list = entry.second;
      if (list.IsNull()) continue;
      if (!list.IsSequence()) {
        return absl::InvalidArgumentError(absl::StrCat(origin, ": ", language,
                                                       ": expected a list of phrases (line ",
                                                       list.Mark().line + 1, ")"));
      }
      std::vector<std::string>& phrases = by_language[language];
      for (size_t i = 0; i < list.size(); ++i) {
        if (!list[i].IsScalar()) {
          return absl::InvalidArgumentError(absl::StrCat(origin, ": ", language, "[", i,
                                                         "]: expected a string (line ",
                                                         list[i].Mark().line + 1, ")"));
        }
        phrases.push_back(list[i].as<std::string>());
      }
    }
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(origin, ":", e.mark.line + 1, ":", e.mark.column + 1, ": ", e.msg));
  }
  return FromPhrases(by_language, origin);
}

absl::StatusOr<Blocklist> Blocklist::LoadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read blocklist file '", path, "'"));
  std::ostringstream content;
  content << in.rdbuf();
  return Parse(content.str(), path);
}

std::optional<std::string> Blocklist::FindIn(absl::string_view s) const {
  if (phrases_.empty()) return std::nullopt;
  const std::string lowered = text::AsciiLower(CollapseWhitespace(s));
  for (const Phrase& p : phrases_) {
    size_t pos = 0;
    while ((pos = lowered.find(p.lowered, pos)) != std::string::npos) {
      const size_t end = pos + p.lowered.size();
      if (p.substring) return p.original;
      // A boundary matters only where the phrase itself starts or ends with a word
      // character ("$hit" needs none on the left).
      const bool left_ok =
          !IsWord(CodePointAt(p.lowered, 0)) || !IsWord(CodePointBefore(lowered, pos));
      const bool right_ok = !IsWord(CodePointBefore(p.lowered, p.lowered.size())) ||
                            !IsWord(CodePointAt(lowered, end));
      if (left_ok && right_ok) return p.original;
      ++pos;
    }
  }
  return std::nullopt;
}

}  // namespace helpline::generation::reply
