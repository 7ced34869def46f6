// Decoding defaults of the neural reply engine, and how its candidates reach the filter,
// shared with helpline-eval generation so that the evaluation decodes exactly as the service
// does.
#pragma once

#include <utility>
#include <vector>

#include "lm/serving/engine.h"
#include "services/generation/reply/reply_chooser.h"

namespace helpline::generation {

// No n-gram of this many generated tokens is generated twice (lm::SamplingOptions::
// no_repeat_ngram): a small model's greedy decoding otherwise loops ("I'm sorry, I'm sorry,
// ..."), and the reply filter then rejects it. Chosen on the dev splits (the model card).
inline constexpr int kDefaultNoRepeatNgram = 3;

// A request for one unary reply at temperature 0 is decoded as this many candidates: the
// greedy reply (candidate 0) and samples at kDefaultCandidateTemperature, so that when the
// filter rejects the greedy reply there is still a model reply to choose before the
// template. The chooser ranks the survivors by its score (mostly their agreement with each
// other, see reply::RerankWeights::consensus), so a sample may also win over a surviving
// greedy reply. 8 rather than 4: +1.2 to +2.2 chrF on the dev splits with the consensus
// choice, for 1.7x the decoding work of a unary reply (the model card has the figures).
inline constexpr int kDefaultReplyCandidates = 8;
inline constexpr float kDefaultCandidateTemperature = 0.7f;

// The engine's candidates as the reply filter takes them.
inline std::vector<reply::RawCandidate> ToRawCandidates(const lm::GenerationResult& result) {
  std::vector<reply::RawCandidate> raws;
  raws.reserve(result.candidates.size());
  for (const lm::CandidateResult& c : result.candidates) {
    reply::RawCandidate raw;
    raw.text = c.text;
    raw.tokens = c.ids.size();
    raw.logprob_sum = c.logprob_sum;
    raw.finished_by_length = c.finish_reason == lm::FinishReason::kLength;
    raws.push_back(std::move(raw));
  }
  return raws;
}

}  // namespace helpline::generation
