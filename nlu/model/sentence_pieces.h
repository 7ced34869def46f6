// A unigram sentence-piece vocabulary and its segmenter (the pretrained transformer's input,
// transformer_checkpoint.h), without libtorch.
//
// A word becomes the most probable sequence of pieces (Viterbi over the pieces' log
// probabilities) of its NFKC form, prefixed with "▁" (U+2581) when whitespace or the start of
// the text precedes it. A character no piece covers becomes the unknown piece (id 0); a run
// of them one unknown. Pieces 0..kReserved-1 (unknown, <s>, </s>, ...) never match text.
//
// Thread-safety: immutable after construction; any number of threads may call Encode.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json_fwd.hpp"

namespace helpline::nlu::model {

class SentencePieces {
 public:
  static constexpr int64_t kUnknown = 0;
  static constexpr int64_t kReserved = 6;
  // The longest piece, in code points (longer matches are not looked for).
  static constexpr int kMaxPieceChars = 32;

  SentencePieces() = default;

  // `json`: an array of [piece, score] pairs, the id being the position; a null score counts
  // as 0; of a repeated piece the later entry is the one text maps to. INVALID_ARGUMENT
  // naming the entry when an entry has another shape or an empty piece, or there are fewer
  // than kReserved + 1 entries.
  static absl::StatusOr<SentencePieces> FromJson(const nlohmann::json& json);
  nlohmann::json ToJson() const;

  // Appends the piece ids of `word` (`word_start`: whitespace or the text's start precedes
  // it) to `ids`. Nothing for an empty word.
  void Encode(absl::string_view word, bool word_start, std::vector<int64_t>& ids) const;

  int64_t size() const { return static_cast<int64_t>(pieces_.size()); }
  const std::string& piece(int64_t id) const { return pieces_[id].first; }

 private:
  std::vector<std::pair<std::string, float>> pieces_;
  absl::flat_hash_map<std::string, int64_t> ids_;
};

}  // namespace helpline::nlu::model
