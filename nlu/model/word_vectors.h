// Pretrained word vectors for the utterance models (nlu_model.h): read from the GloVe text
// format, one word per line followed by its values ("the 0.418 0.24968 -0.41242 ..."),
// most frequent words first (as GloVe and scripts/fetch-word-vectors write them).
//
// Words are keyed by the featurizer's normalized form (featurizer.h: ASCII lower-cased,
// digits -> '0'); a line whose word is not exactly one token ("n't", "e-mail") is skipped,
// and of several lines with the same normalized form the first (most frequent) is kept.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace helpline::nlu::model {

class WordVectors {
 public:
  // Reads at most `max_words` usable lines of `path` (0: all). NOT_FOUND for a missing
  // file; INVALID_ARGUMENT naming the file and line for a value that is not a number, a line
  // with another number of values than the first, or a file without vectors.
  static absl::StatusOr<WordVectors> Read(const std::string& path, size_t max_words = 0);

  int64_t dim() const { return dim_; }
  // Normalized words, in file order (most frequent first).
  const std::vector<std::string>& words() const { return words_; }
  // The vector of a normalized word, or nullptr.
  const float* Find(absl::string_view norm) const;
  const std::string& origin() const { return origin_; }

 private:
  int64_t dim_ = 0;
  std::string origin_;
  std::vector<std::string> words_;
  std::vector<float> values_;  // words_.size() x dim_
  absl::flat_hash_map<std::string, size_t> index_;
};

}  // namespace helpline::nlu::model
