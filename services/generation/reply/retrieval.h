// Retrieval over past turns by TF-IDF. Two users:
//   - helpline-eval's retrieval baseline: the training reply whose context is nearest.
//   - exemplars: the reply of the nearest past turn is shown to the reply model in its
//     prompt (PromptFormat::exemplar_label), which it may follow; the training text gets
//     them the same way (train/dialogue_text.h AddExemplars), from other dialogues only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/strings/string_view.h"
#include "helpline/generation/v1/generation_service.pb.h"

namespace helpline::generation::reply {

// The text two turns are compared by: the previous agent reply (the last history turn), this
// turn's intent, slot names and values (sorted by name), missing slots, and the customer's
// text. The exemplar is not part of it. Without with_previous_reply the first line is left out.
std::string RetrievalKey(const v1::GenerationContext& context, bool with_previous_reply = true);

// Lowercase words of `text`: runs of ASCII letters and digits, bytes >= 0x80 joining them.
std::vector<std::string> RetrievalWords(absl::string_view text);

// TF-IDF over RetrievalWords: tf = count, idf = ln((1 + N) / (1 + df)) + 1 (scikit-learn's
// smooth idf), vectors L2 normalised, cosine similarity. Immutable after construction;
// queries are thread-safe.
class TfidfIndex {
 public:
  explicit TfidfIndex(const std::vector<std::string>& documents);

  struct Match {
    size_t document = 0;
    double score = 0.0;  // the cosine times the query's norm; 0: no word in common
    double cosine = 0.0;  // in [0, 1]; the query's words the index does not know count 0
  };
  // The document of highest cosine among those `skip` does not reject (empty: none
  // rejected), ties to the lowest index; {0, 0} when nothing is left or the index is empty.
  Match Best(absl::string_view query, const std::function<bool(size_t)>& skip = {}) const;
  // Best(query).document: the first document when no word is shared.
  size_t Nearest(absl::string_view query) const { return Best(query).document; }
  // The k documents of highest cosine that share a word with `query` and that `skip` does not
  // reject, in Best's order (highest first, ties to the lowest index); fewer when fewer match.
  std::vector<Match> Top(absl::string_view query, size_t k,
                         const std::function<bool(size_t)>& skip = {}) const;
  size_t size() const { return documents_; }

 private:
  // Every document's score against `query`, and the query's norm.
  std::vector<double> Scores(absl::string_view query, double& query_norm) const;

  struct Posting {
    uint32_t document;
    float weight;
  };
  std::unordered_map<std::string, uint32_t> term_ids_;
  std::vector<double> idf_;
  std::vector<std::vector<Posting>> postings_;  // by term id
  size_t documents_ = 0;
};

// Past turns and their replies, to find the exemplar of a new turn.
class ExemplarIndex {
 public:
  struct Entry {
    std::string key;    // RetrievalKey of the turn's context
    std::string reply;  // what the model is shown (for training data: with {{slot}} placeholders)
    std::string group;  // the dialogue the turn belongs to
    bool has_previous_reply = false;  // the key starts with a previous agent reply
  };
  explicit ExemplarIndex(std::vector<Entry> entries);

  // The reply of the entry nearest to `context` by RetrievalKey (without the context's
  // previous reply when no entry has one), leaving out the entries of
  // group `skip_group` (a turn's own dialogue; "" leaves none out); nullptr when no entry
  // shares a word with the context.
  const std::string* Find(const v1::GenerationContext& context,
                          absl::string_view skip_group = "") const;
  // The replies of the k entries nearest to `context`, nearest first (the first is Find's),
  // with the same skip; only entries that share a word with the context.
  std::vector<const std::string*> FindNearest(const v1::GenerationContext& context, size_t k,
                                              absl::string_view skip_group = "") const;
  size_t size() const { return entries_.size(); }

 private:
  std::vector<Entry> entries_;
  TfidfIndex index_;
  // False for a pool of one-turn dialogues (Bitext): a request's key then leaves out its
  // previous reply, which no entry has.
  bool any_previous_reply_ = false;
};

// Writes `nearest` (FindNearest's answer) into `context`: the first as the exemplar, the rest
// as the similar replies (both cleared first).
void SetExemplars(const std::vector<const std::string*>& nearest, v1::GenerationContext& context);

}  // namespace helpline::generation::reply
