// A transfer set for distillation, in the spirit of Tang et al. (2019, "Distilling
// task-specific knowledge from BERT into simple neural networks"): altered copies of the
// training utterances, which the teachers label, so that the student sees more of the
// teachers' function than the training set alone shows. No libtorch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace helpline::nlu::model {

struct TransferCopy {
  size_t source = 0;  // index of the text it was made from
  std::string text;
};

// Up to `copies` copies of every text (Tokenize's tokens joined by single spaces). Each copy
// is, with probability 1/4, a window of 1..5 consecutive tokens (n-gram sampling), otherwise
// the text with each token dropped with probability `drop` (at least one dropped, at least one
// kept). A copy equal to its text or to an earlier copy of it is left out (a one-token text has
// none). Deterministic for a seed; sources in increasing order.
std::vector<TransferCopy> MakeTransferCopies(const std::vector<std::string>& texts, int copies,
                                             double drop, uint64_t seed);

}  // namespace helpline::nlu::model
