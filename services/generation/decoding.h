// Decoding defaults of the neural reply engine, shared with helpline-eval generation so that
// the evaluation decodes exactly as the service does.
#pragma once

namespace helpline::generation {

// No n-gram of this many generated tokens is generated twice (lm::SamplingOptions::
// no_repeat_ngram): a small model's greedy decoding otherwise loops ("I'm sorry, I'm sorry,
// ..."), and the reply filter then rejects it. Chosen on the dev splits (the model card).
inline constexpr int kDefaultNoRepeatNgram = 3;

}  // namespace helpline::generation
