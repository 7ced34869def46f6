// chrF, the character n-gram F-score, exactly as sacrebleu's CHRF() with its defaults defines
// it (char_order 6, word_order 0, beta 2, case kept, whitespace removed, no eps smoothing).
// Two users: helpline-eval scores replies against references with it (corpus chrF), and the
// reply chooser uses it to measure how much candidates agree with each other (consensus:
// the candidate the others support most, a minimum-Bayes-risk choice).
//
// Per sentence pair: the counts of character n-grams (n = 1..6, Unicode code points, after
// deleting every whitespace character) in the hypothesis (0 when the reference has no n-gram
// of that order), in the reference and in both (clipped). A corpus sums the counts; precision
// and recall are averaged over the orders where both sides have n-grams; score = 100 (1 + b^2)
// P R / (b^2 P + R), 0 when P + R = 0. Invalid UTF-8 bytes count as one character each.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>

#include "absl/strings/string_view.h"

namespace helpline::generation::reply {

// The character n-gram counts of one text, computed once for many comparisons.
class ChrfProfile {
 public:
  static constexpr int kOrder = 6;

  explicit ChrfProfile(absl::string_view text);

  // Count of each n-gram of order index + 1.
  const std::unordered_map<std::u32string, int64_t>& grams(int order_index) const {
    return grams_[static_cast<size_t>(order_index)];
  }
  // Number of n-grams of order index + 1.
  int64_t total(int order_index) const { return totals_[static_cast<size_t>(order_index)]; }

 private:
  std::array<std::unordered_map<std::u32string, int64_t>, kOrder> grams_;
  std::array<int64_t, kOrder> totals_{};
};

class ChrfAccumulator {
 public:
  static constexpr int kOrder = ChrfProfile::kOrder;
  static constexpr double kBeta = 2.0;

  void Add(absl::string_view hypothesis, absl::string_view reference);
  void Add(const ChrfProfile& hypothesis, const ChrfProfile& reference);
  // 0..100; 0 with no pairs.
  double Score() const;
  size_t pairs() const { return pairs_; }

 private:
  // Per order: n-grams of the hypotheses, of the references, matched.
  std::array<std::array<int64_t, 3>, kOrder> stats_{};
  size_t pairs_ = 0;
};

// chrF of one pair (a corpus of one), 0..100.
double SentenceChrf(absl::string_view hypothesis, absl::string_view reference);
double SentenceChrf(const ChrfProfile& hypothesis, const ChrfProfile& reference);

}  // namespace helpline::generation::reply
