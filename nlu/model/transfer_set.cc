#include "nlu/model/transfer_set.h"

#include <algorithm>
#include <random>

#include "absl/strings/str_join.h"
#include "nlu/model/featurizer.h"

namespace helpline::nlu::model {

std::vector<TransferCopy> MakeTransferCopies(const std::vector<std::string>& texts, int copies,
                                             double drop, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::vector<TransferCopy> out;
  for (size_t i = 0; i < texts.size(); ++i) {
    std::vector<std::string> words;
    for (const Token& t : Tokenize(texts[i])) {
      words.push_back(texts[i].substr(t.begin, t.end - t.begin));
    }
    const size_t n = words.size();
    if (n < 2) continue;
    const std::string original = absl::StrJoin(words, " ");
    std::vector<std::string> made;
    for (int c = 0; c < copies; ++c) {
      std::vector<std::string> kept;
      if (unit(rng) < 0.25) {
        const size_t len = std::min<size_t>(n, 1 + rng() % 5);
        const size_t start = rng() % (n - len + 1);
        kept.assign(words.begin() + start, words.begin() + start + len);
      } else {
        std::vector<bool> keep(n);
        size_t count = 0;
        for (size_t w = 0; w < n; ++w) count += (keep[w] = unit(rng) >= drop) ? 1 : 0;
        if (count == n) keep[rng() % n] = false;  // at least one dropped
        if (count == 0) keep[rng() % n] = true;   // at least one kept
        for (size_t w = 0; w < n; ++w) {
          if (keep[w]) kept.push_back(words[w]);
        }
      }
      std::string text = absl::StrJoin(kept, " ");
      if (text == original || std::find(made.begin(), made.end(), text) != made.end()) continue;
      made.push_back(text);
      out.push_back({i, std::move(text)});
    }
  }
  return out;
}

}  // namespace helpline::nlu::model
