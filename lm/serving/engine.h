// The serving engine: one owner thread per model instance runs the step loop (continuous
// batching with chunked prefill), samples, matches stop sequences on text, and streams
// tokens back through callbacks. RPC handlers call Submit/Cancel from any thread.
//
// No libtorch here: the engine drives lm::Gpt2Model through its header.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "lm/model/gpt2.h"
#include "lm/tokenizer/bpe.h"

namespace helpline::lm {

struct SamplingOptions {
  // 0: greedy (argmax; ties to the lowest id). Otherwise softmax(logits / temperature).
  float temperature = 0.0f;
  // Nucleus mass in (0, 1]; 1 = off.
  float top_p = 1.0f;
  // Keep the k most likely; 0 = off.
  int top_k = 0;
  // > 1 discourages tokens already in prompt or output (CTRL-style: divide positive
  // logits, multiply negative ones); 1 = off.
  float repetition_penalty = 1.0f;
  // OpenAI-style, over generated tokens only: logit -= frequency * count + presence * (count > 0).
  float frequency_penalty = 0.0f;
  float presence_penalty = 0.0f;
  // Same seed + same input = same output, alone or in a batch. Candidate i of a request
  // samples with its own stream derived from (seed, i).
  uint64_t seed = 0;
};

enum class FinishReason { kLength, kStop, kEos, kCancelled };

// One finished candidate.
struct CandidateResult {
  std::vector<int32_t> ids;       // generated ids (stop-sequence tokens excluded where whole)
  std::string text;               // decoded text, cut before the stop sequence
  FinishReason finish_reason = FinishReason::kLength;
  double logprob_sum = 0.0;       // sum of log-probabilities (under the model, before
                                  // temperature) of the generated ids
};

struct GenerationResult {
  std::vector<CandidateResult> candidates;
  int prompt_tokens = 0;
  int cached_prompt_tokens = 0;   // prompt tokens taken from the session prefix cache
  std::chrono::nanoseconds queue_time{0};
  std::chrono::nanoseconds time_to_first_token{0};
};

struct GenerationRequest {
  std::vector<int32_t> prompt;    // not empty, shorter than n_positions
  SamplingOptions sampling;
  int max_tokens = 64;            // per candidate, >= 1
  std::vector<std::string> stop;  // matched on decoded text, across token boundaries
  int n = 1;                      // candidates
  // Prefix-cache key (tenant + session); empty: no caching. Reuse is decided token by
  // token on the ids, never by key alone.
  std::string cache_key;
  // The request leaves the batch at the next step once this passes (finish kCancelled).
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  // Called on the owner thread for every text piece of candidate `index` (never splitting
  // UTF-8; stop sequences held back until they can no longer match). May be empty.
  std::function<void(int index, const std::string& piece)> on_text;
  // Called exactly once on the owner thread when the request ends (all candidates done,
  // cancelled, or failed).
  std::function<void(absl::StatusOr<GenerationResult>)> on_done;
};

struct EngineOptions {
  int max_running_sequences = 64;   // sequences (candidates) in the running batch
  int max_batch_tokens = 512;       // tokens per step (prefill chunks + decodes)
  int prefill_chunk = 256;          // most prompt tokens of one sequence per step
  int max_waiting_requests = 256;   // past it Submit answers RESOURCE_EXHAUSTED
  size_t prefix_cache_bytes = 256u << 20;  // LRU budget of the session prefix cache
};

class Engine {
 public:
  // Starts the owner thread. `model` and `tokenizer` must outlive the engine.
  Engine(Gpt2Model& model, const BpeTokenizer& tokenizer, EngineOptions options);
  ~Engine();  // cancels everything (on_done with kCancelled results), joins

  // Validates and queues. INVALID_ARGUMENT naming the field; RESOURCE_EXHAUSTED (with a
  // retry hint in the message) when the waiting queue is full. Returns a request id.
  absl::StatusOr<uint64_t> Submit(GenerationRequest request);
  // The request leaves the batch at the next step; on_done reports kCancelled candidates.
  void Cancel(uint64_t request_id);
};

}  // namespace helpline::lm
