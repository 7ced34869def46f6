#include "nlu/model/sentence_pieces.h"

#include <unicode/normalizer2.h>
#include <unicode/unistr.h>

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/domain/text.h"
#include "nlohmann/json.hpp"

namespace helpline::nlu::model {
namespace {

constexpr absl::string_view kWordStart = "\xE2\x96\x81";  // U+2581

// NFKC of `text`; the text itself when ICU cannot normalize it.
std::string Nfkc(absl::string_view text) {
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* nfkc = icu::Normalizer2::getNFKCInstance(status);
  if (U_FAILURE(status)) return std::string(text);
  icu::UnicodeString in = icu::UnicodeString::fromUTF8(
      icu::StringPiece(text.data(), static_cast<int32_t>(text.size())));
  icu::UnicodeString out = nfkc->normalize(in, status);
  if (U_FAILURE(status)) return std::string(text);
  std::string utf8;
  out.toUTF8String(utf8);
  return utf8;
}

}  // namespace

absl::StatusOr<SentencePieces> SentencePieces::FromJson(const nlohmann::json& json) {
  if (!json.is_array()) return absl::InvalidArgumentError("sentence pieces: not an array");
  if (json.size() <= static_cast<size_t>(kReserved)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "sentence pieces: ", json.size(), " entries, at least ", kReserved + 1, " expected"));
  }
  SentencePieces out;
  out.pieces_.reserve(json.size());
  for (size_t i = 0; i < json.size(); ++i) {
    const nlohmann::json& e = json[i];
    if (!e.is_array() || e.size() != 2 || !e[0].is_string() ||
        !(e[1].is_number() || e[1].is_null())) {
      return absl::InvalidArgumentError(
          absl::StrCat("sentence pieces: entry ", i, " is not [piece, score]"));
    }
    std::string piece = e[0].get<std::string>();
    if (piece.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("sentence pieces: entry ", i, " is empty"));
    }
    const float score = e[1].is_null() ? 0.0f : e[1].get<float>();
    // A repeated piece: the later entry is the one text maps to.
    if (i >= static_cast<size_t>(kReserved)) out.ids_[piece] = static_cast<int64_t>(i);
    out.pieces_.emplace_back(std::move(piece), score);
  }
  return out;
}

nlohmann::json SentencePieces::ToJson() const {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& [piece, score] : pieces_) out.push_back({piece, score});
  return out;
}

void SentencePieces::Encode(absl::string_view word, bool word_start,
                            std::vector<int64_t>& ids) const {
  if (word.empty()) return;
  std::string form = Nfkc(word);
  if (word_start) form = absl::StrCat(kWordStart, form);
  // Code point boundaries.
  std::vector<size_t> at;
  for (size_t pos = 0; pos < form.size();) {
    at.push_back(pos);
    domain::text::NextCodePoint(form, &pos);
  }
  const size_t n = at.size();
  at.push_back(form.size());
  // best[e]: score of the best segmentation of the first e code points; from[e]: its last
  // piece (id, start).
  constexpr float kNone = -std::numeric_limits<float>::infinity();
  std::vector<float> best(n + 1, kNone);
  std::vector<std::pair<int64_t, size_t>> from(n + 1, {kUnknown, 0});
  best[0] = 0;
  for (size_t s = 0; s < n; ++s) {
    if (best[s] == kNone) continue;
    bool matched = false;
    for (size_t e = s + 1; e <= std::min(n, s + kMaxPieceChars); ++e) {
      auto it = ids_.find(absl::string_view(form).substr(at[s], at[e] - at[s]));
      if (it == ids_.end()) continue;
      matched = true;
      const float score = best[s] + pieces_[it->second].second;
      if (score >= best[e]) {
        best[e] = score;
        from[e] = {it->second, s};
      }
    }
    // A character no piece starts with: the unknown piece, scored 0 like a sure piece.
    if (!matched && best[s] >= best[s + 1]) {
      best[s + 1] = best[s];
      from[s + 1] = {kUnknown, s};
    }
  }
  // Every position is reachable (a piece or the unknown piece leaves each reachable one).
  std::vector<int64_t> reversed;
  for (size_t e = n; e > 0; e = from[e].second) {
    const int64_t id = from[e].first;
    if (!(id == kUnknown && !reversed.empty() && reversed.back() == kUnknown)) {
      reversed.push_back(id);
    }
  }
  ids.insert(ids.end(), reversed.rbegin(), reversed.rend());
}

}  // namespace helpline::nlu::model
