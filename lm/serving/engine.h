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
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/metrics/metrics.h"
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
  // > 0: no n-gram of this many generated tokens is generated twice (an id that would
  // complete one is never chosen), which stops the loops greedy decoding of a small model
  // falls into ("I'm sorry, I'm sorry, I'm sorry"); 0 = off. The prompt does not count.
  int no_repeat_ngram = 0;
  // Candidate 0 decodes greedily (as with temperature 0) whatever `temperature` says: one
  // deterministic reply and n - 1 sampled alternatives to choose from.
  bool greedy_first = false;
  // Same seed + same input = same output, alone or in a batch. Candidate i of a request
  // samples with its own stream derived from (seed, i). 0: the engine picks a random seed
  // and reports it in GenerationResult::seed.
  uint64_t seed = 0;
};

enum class FinishReason { kLength, kStop, kEos, kCancelled };

// One finished candidate.
struct CandidateResult {
  // Generated ids. The end-of-text id is not included; after a stop sequence, the ids whose
  // text starts at or after the stop sequence are left out (an id whose text straddles its
  // start stays).
  std::vector<int32_t> ids;
  // Decoded text (the concatenation of the on_text pieces), cut before the stop sequence.
  std::string text;
  FinishReason finish_reason = FinishReason::kLength;
  double logprob_sum = 0.0;       // sum of log-probabilities (log-softmax of the raw logits,
                                  // before penalties and temperature) of `ids`
};

const char* FinishReasonName(FinishReason reason);  // "length", "stop", "eos", "cancelled"

struct GenerationResult {
  std::vector<CandidateResult> candidates;
  int prompt_tokens = 0;
  int cached_prompt_tokens = 0;   // prompt tokens taken from the session prefix cache
  uint64_t seed = 0;               // the seed used (the engine's pick when the request had 0)
  bool deadline_exceeded = false;  // kCancelled because the deadline passed
  std::chrono::nanoseconds queue_time{0};           // Submit -> admitted into the batch
  std::chrono::nanoseconds time_to_first_token{0};  // Submit -> first token sampled (0: none)
};

struct GenerationRequest {
  std::vector<int32_t> prompt;    // not empty, shorter than n_positions, ids < vocab_size
  SamplingOptions sampling;
  // Per candidate, in [1, n_positions - 1]. Clamped to the room the context has left
  // (n_positions - prompt size); a candidate that reaches it finishes kLength.
  int max_tokens = 64;
  // Matched on decoded text, across token boundaries. At most max_stop_sequences, each
  // 1..kMaxStopBytes bytes.
  std::vector<std::string> stop;
  int n = 1;                      // candidates, in [1, max_candidates]
  // Set: the candidates may write "{{name}}" placeholders only with these names (the ids that
  // would write any other, or a "}}" closing nothing, are banned; placeholders.h). Unset: no
  // constraint.
  std::optional<std::vector<std::string>> allowed_placeholders;
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

inline constexpr size_t kMaxStopBytes = 256;

struct EngineOptions {
  // Sequences (candidates) in the running batch; a request takes n of them from admission
  // to its end.
  int max_running_sequences = 64;
  // Tokens per step: every decoding sequence's one token always runs; prefill chunks fill
  // what is left. Keep it above max_running_sequences or prefill waits for a free batch.
  int max_batch_tokens = 512;
  int prefill_chunk = 256;          // most prompt tokens of one sequence per step
  int max_waiting_requests = 256;   // past it Submit answers RESOURCE_EXHAUSTED
  int max_candidates = 16;          // largest n
  int max_stop_sequences = 16;
  size_t prefix_cache_bytes = 256u << 20;  // LRU budget of the session prefix cache; 0: off
};

// INVALID_ARGUMENT naming the field when an option is out of range (every count >= 1,
// max_candidates <= max_running_sequences).
absl::Status ValidateEngineOptions(const EngineOptions& options);

// Metrics recorded into the registry given to the engine:
//   helpline_generation_tokens_total{kind="prompt"|"completion"}  prompt tokens of admitted
//       requests; generated tokens
//   helpline_generation_prefill_tokens_total          prompt tokens actually run (not cached)
//   helpline_generation_time_to_first_token_seconds   Submit -> first token
//   helpline_generation_time_per_output_token_seconds between a request's steps that made tokens
//   helpline_generation_request_duration_seconds      Submit -> on_done
//   helpline_generation_queue_time_seconds            Submit -> admitted
//   helpline_generation_batch_size                    sequences per model step
//   helpline_generation_batch_tokens                  tokens per model step
//   helpline_generation_running_sequences             gauge: sequence slots held
//   helpline_generation_waiting_requests              gauge: queued, not admitted
//   helpline_generation_kv_cache_bytes                gauge: KV memory of running sequences
//   helpline_generation_candidates_total{finish_reason}  finished candidates
//   helpline_generation_requests_rejected_total{code="invalid_argument"|"resource_exhausted"|"unavailable"}
//   helpline_generation_prefix_cache_lookups_total{result="hit"|"miss"}  requests with a key
//   helpline_generation_prefix_cache_tokens_saved_total  prompt tokens not prefilled
//   helpline_generation_prefix_cache_bytes / _keys    gauges
class Engine {
 public:
  // Starts the owner thread. `model`, `tokenizer` and `registry` must outlive the engine.
  // Options out of range are brought into range (see ValidateEngineOptions to refuse them).
  Engine(Gpt2Model& model, const BpeTokenizer& tokenizer, EngineOptions options,
         metrics::Registry& registry = metrics::Registry::Default());
  ~Engine();  // cancels everything (on_done with kCancelled results), joins
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Thread-safe, does not block on the step loop. Validates and queues. INVALID_ARGUMENT
  // naming the field; RESOURCE_EXHAUSTED (with a retry hint in the message) when the
  // waiting queue is full; UNAVAILABLE once the engine is shutting down. On success
  // returns the request id and on_done will be called exactly once; on error never.
  absl::StatusOr<uint64_t> Submit(GenerationRequest request);
  // Thread-safe. The request leaves the batch (or the queue) at the next step; on_done
  // reports kCancelled candidates with what they had generated. Unknown or finished ids
  // are ignored.
  void Cancel(uint64_t request_id);

  const Gpt2Config& model_config() const;

 private:
  class Loop;
  std::unique_ptr<Loop> loop_;
};

}  // namespace helpline::lm
