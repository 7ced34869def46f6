// Text -> model inputs for the utterance models (nlu_model.h), without libtorch:
//   - Tokenize: words (runs of letters/digits), single punctuation marks and single CJK
//     characters, each with its byte span in the original text;
//   - Featurizer: per token a word id, the ids of its character n-grams (3..5 of "<word>")
//     and a shape class; per utterance the ids of its word unigrams and bigrams. Words are
//     lower-cased (ASCII) with every digit written as '0'. Vocabularies are built from the
//     training texts; unknown words map to kUnknown, unknown n-grams are dropped.
//   - BIO tags: TagsFromSpans (gold spans -> one IOB2 tag per token), DecodeBio (per-token
//     tag log-probabilities -> the best valid IOB2 sequence, an I-X only after B-X/I-X) and
//     SpansFromTags (tags -> byte spans of the text).
//
// Thread-safety: a built Featurizer is immutable; any number of threads may call its const
// methods.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json_fwd.hpp"
#include "nlu/data/dataset.h"
#include "nlu/model/sentence_pieces.h"

namespace helpline::nlu::model {

struct Token {
  // Byte span in the original text.
  size_t begin = 0;
  size_t end = 0;
  // The normalized form: ASCII lower-cased, digits -> '0'.
  std::string norm;
  // 0 lower, 1 Capitalized, 2 ALLCAPS, 3 digits, 4 letters+digits, 5 punctuation, 6 CJK,
  // 7 other (mixed case, non-ASCII letters).
  int shape = 0;
};
inline constexpr int kNumShapes = 8;

// Splits `text` into tokens (see the top of this file). Never fails; "" -> no tokens.
std::vector<Token> Tokenize(absl::string_view text);

// The inputs of one utterance.
struct Features {
  std::vector<Token> tokens;
  std::vector<int64_t> word_ids;                  // one per token
  std::vector<int64_t> shape_ids;                 // one per token
  std::vector<std::vector<int64_t>> char_ngrams;  // per token, may be empty
  std::vector<int64_t> sentence_ngrams;           // unigrams + bigrams, may be empty
  // With a pretrained transformer only (AddSentencePieces): the text's sentence pieces (at
  // most kMaxPieces) and, per token, the index of its first piece there.
  std::vector<int64_t> pieces;
  std::vector<int64_t> first_piece;
};

class Featurizer {
 public:
  static constexpr int64_t kPadding = 0;
  static constexpr int64_t kUnknown = 1;

  // Builds the vocabularies from training texts (every word, n-gram and bigram seen at
  // least `min_count` times).
  static Featurizer Build(const std::vector<std::string>& texts, int min_count = 1);

  // Build(texts) with the words and character n-grams of `extra` added (a pretrained
  // encoder's vocabulary, so that words met in pretraining but not in `texts` keep their
  // pretrained embedding). Sentence n-grams come from `texts` only.
  static Featurizer BuildWith(const std::vector<std::string>& texts, const Featurizer& extra,
                              int min_count = 1);
  // Build(texts, min_count) with `extra_words` (normalized forms) added to the words.
  static Featurizer BuildWith(const std::vector<std::string>& texts,
                              const std::vector<std::string>& extra_words, int min_count = 1);

  // The vocabulary of a pretraining corpus: the `max_words` most frequent words and the
  // `max_char_ngrams` most frequent character n-grams seen at least `min_count` times (ties
  // by text; ids in sorted order); no sentence n-grams. `word_counts` (when not null)
  // receives the count of every word id (0 for <pad> and <unk>).
  static Featurizer BuildCapped(const std::vector<std::string>& texts, int min_count,
                                size_t max_words, size_t max_char_ngrams,
                                std::vector<int64_t>* word_counts = nullptr);

  Features Featurize(absl::string_view text) const;

  int64_t num_words() const { return static_cast<int64_t>(words_.size()); }
  int64_t num_char_ngrams() const { return static_cast<int64_t>(char_ngrams_.size()); }
  int64_t num_sentence_ngrams() const { return static_cast<int64_t>(sentence_ngrams_.size()); }
  const std::vector<std::string>& words() const { return words_; }
  const std::vector<std::string>& char_ngrams() const { return char_ngrams_; }
  // Id of a normalized word / character n-gram, or -1 when it is not in the vocabulary.
  int64_t FindWord(absl::string_view norm) const;
  int64_t FindCharNgram(absl::string_view ngram) const;

  // {"words": [...], "char_ngrams": [...], "sentence_ngrams": [...]} (ids = positions).
  nlohmann::json ToJson() const;
  // INVALID_ARGUMENT when a list is missing or not a list of strings.
  static absl::StatusOr<Featurizer> FromJson(const nlohmann::json& json);

 private:
  void Index();

  std::vector<std::string> words_;  // [0] "<pad>", [1] "<unk>"
  std::vector<std::string> char_ngrams_;
  std::vector<std::string> sentence_ngrams_;
  absl::flat_hash_map<std::string, int64_t> word_index_;
  absl::flat_hash_map<std::string, int64_t> char_ngram_index_;
  absl::flat_hash_map<std::string, int64_t> sentence_ngram_index_;
};

// Fills `features.pieces` and `features.first_piece` from the tokens of `text` (each token's
// original text, marked as a word start when whitespace or the text's start precedes it).
// Pieces past kMaxPieces are dropped; a token whose first piece was dropped points at the
// last one kept.
inline constexpr size_t kMaxPieces = 128;
void AddSentencePieces(const SentencePieces& pieces, absl::string_view text, Features& features);

// The character n-grams (n = 3..5, whole code points) of "<" + norm + ">"; for words of one
// or two code points also the whole "<word>".
std::vector<std::string> CharNgrams(absl::string_view norm);

// IOB2 tag names for slot types: ["O", "B-<t0>", "I-<t0>", "B-<t1>", ...].
std::vector<std::string> TagNames(const std::vector<std::string>& slot_types);

// One tag index per token: B-X for the token that starts a span of type X, I-X for the
// following tokens inside it, O elsewhere (also for tokens that straddle a span's edge, and
// for spans of types not in `slot_types`).
std::vector<int> TagsFromSpans(const std::vector<Token>& tokens,
                               const std::vector<data::SlotSpan>& spans,
                               const std::vector<std::string>& slot_types);

// Scores of tag bigrams of a linear-chain CRF over the tags of TagNames: `transition[from *
// num_tags + to]`, `start[k]` (first tag), `end[k]` (last tag).
struct TagTransitions {
  std::vector<float> transition, start, end;
};

// The best IOB2-valid tag sequence under per-token scores `scores[t * num_tags + k]` over the
// tags of TagNames (log-probabilities, or a CRF's emission scores with `transitions`) by
// Viterbi; I-X may follow only B-X or I-X, and may not start the sentence.
std::vector<int> DecodeBio(const std::vector<float>& scores, size_t num_tokens, size_t num_tags,
                           const TagTransitions* transitions = nullptr);

// Spans of a valid tag sequence: [first token's begin, last token's end), value = the
// text of the span.
std::vector<data::SlotSpan> SpansFromTags(absl::string_view text, const std::vector<Token>& tokens,
                                          const std::vector<int>& tags,
                                          const std::vector<std::string>& slot_types);

}  // namespace helpline::nlu::model
