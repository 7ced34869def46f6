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
// 0.5 rather than 0.7 since the consensus has the similar replies as references: Bitext dev
// 52.2 -> 53.0, Taskmaster 42.8 -> 44.5 with them (without them 0.7 was the better one).
inline constexpr float kDefaultCandidateTemperature = 0.5f;

// A request without an exemplar gets, beside the exemplar, the replies of this many next
// most similar past turns as GenerationContext.similar_replies: more human references for the
// chooser's consensus, one vote each (reply.similar_replies in the config). Bitext dev, shipped
// model, consensus weight 100: 0 / 8 / 16 / 32 similar replies: chrF 51.9 / 52.1 / 52.2 / 52.5.
inline constexpr int kDefaultSimilarReplies = 16;
inline constexpr int kMaxSimilarReplies = 64;

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
