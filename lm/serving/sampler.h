// Choosing the next token from a row of logits: greedy, temperature, top-k, top-p, the
// repetition / frequency / presence penalties, the n-gram repeat ban, and a seeded random
// stream per candidate.
//
// No libtorch: it works on the float row the model wrote.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/types/span.h"
#include "lm/serving/engine.h"

namespace helpline::lm {

// A counter-based random stream: draw i of candidate `index` under `seed` is a pure
// function of (seed, index, i), so a candidate samples the same tokens whatever else runs
// in the batch. Copyable; not thread-safe.
class CandidateRng {
 public:
  CandidateRng(uint64_t seed, uint64_t index);
  // Uniform in [0, 1), 53 random bits.
  double NextUniform();

 private:
  uint64_t key_;
  uint64_t counter_ = 0;
};

// The ids one sequence has seen, for the penalties: every id of prompt + output (repetition
// penalty) and how often each was generated (frequency and presence penalties).
class TokenHistory {
 public:
  void AddPrompt(absl::Span<const int32_t> ids);
  void AddOutput(int32_t id);
  // The generated ids, in order (for no_repeat_ngram).
  const std::vector<int32_t>& output() const { return output_; }

  struct Entry {
    int output_count = 0;  // times generated
  };
  // Every id of prompt + output.
  const absl::flat_hash_map<int32_t, Entry>& entries() const { return entries_; }

 private:
  absl::flat_hash_map<int32_t, Entry> entries_;
  std::vector<int32_t> output_;
};

// True when the options use any penalty (so the caller needs a TokenHistory).
bool UsesPenalties(const SamplingOptions& options);

struct SampledToken {
  int32_t id = 0;
  // log-softmax of the raw logits (before penalties and temperature) at `id`.
  float logprob = 0.0f;
};

// Keeps scratch buffers of vocabulary size, so one Sampler serves many sequences without
// allocating per step. Not thread-safe: one per thread (the engine's owner thread).
class Sampler {
 public:
  Sampler() = default;

  // Picks a token from `logits` (one row, vocabulary size). `history` may be null when the
  // options use no penalty. Greedy (temperature 0) takes the argmax of the penalised logits,
  // ties to the lowest id, and draws nothing from `rng`; otherwise exactly one draw.
  // Order: penalties (and the no_repeat_ngram ban), temperature, top-k, top-p (over the
  // top-k renormalised), sample. When every id is banned the ban is lifted.
  SampledToken Sample(absl::Span<const float> logits, const SamplingOptions& options,
                      const TokenHistory* history, CandidateRng& rng);

 private:
  std::vector<float> work_;   // penalised logits
  std::vector<float> probs_;  // unnormalised probabilities
  std::vector<int32_t> ids_;  // candidate ids
  std::vector<int32_t> banned_;  // ids the n-gram ban masks this step
};

}  // namespace helpline::lm
