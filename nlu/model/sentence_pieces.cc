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
  std::vector<int64_t> first;
  EncodeRun({word}, word_start, ids, first);
}

void SentencePieces::EncodeRun(const std::vector<absl::string_view>& parts, bool word_start,
                               std::vector<int64_t>& ids, std::vector<int64_t>& first) const {
  // The run's text and the code point where each part starts (a part that normalizes to
  // nothing starts where the next one does).
  std::string form = word_start ? std::string(kWordStart) : std::string();
  std::vector<size_t> at;  // byte offset of every code point of `form`
  std::vector<size_t> part_start;
  auto index = [&](size_t from_byte) {
    for (size_t pos = from_byte; pos < form.size();) {
      at.push_back(pos);
      domain::text::NextCodePoint(form, &pos);
    }
  };
  index(0);
  for (absl::string_view part : parts) {
    part_start.push_back(at.size());
    const size_t begin = form.size();
    form += Nfkc(part);
    index(begin);
  }
  const size_t n = at.size();
  at.push_back(form.size());
  if (word_start && !part_start.empty()) part_start[0] = 0;  // the first piece holds "▁"
  const size_t base = ids.size();
  if (form.size() == (word_start ? kWordStart.size() : 0)) {  // nothing but the mark
    first.insert(first.end(), parts.size(), static_cast<int64_t>(base));
    return;
  }
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
  // Pieces as (id, first code point), in order; a run of unknowns is one unknown.
  std::vector<std::pair<int64_t, size_t>> path;
  for (size_t e = n; e > 0; e = from[e].second) path.push_back({from[e].first, from[e].second});
  std::reverse(path.begin(), path.end());
  std::vector<size_t> starts;
  for (const auto& [id, start] : path) {
    if (id == kUnknown && ids.size() > base && ids.back() == kUnknown) continue;
    ids.push_back(id);
    starts.push_back(start);
  }
  // Each part's first piece: the last piece that starts at or before the part's start.
  for (size_t start : part_start) {
    const size_t k = std::upper_bound(starts.begin(), starts.end(), start) - starts.begin();
    first.push_back(static_cast<int64_t>(base + (k == 0 ? 0 : k - 1)));
  }
}

}  // namespace helpline::nlu::model
