// A GPT-2-family causal language model for inference: loads a Hugging Face GPT-2 folder
// (config.json + model.safetensors) and runs batched forward steps over sequences of
// different lengths, each with its own KV cache.
//
// The header is free of libtorch so that the serving engine and the tools that only drive
// the model compile without it; gpt2.cc is the one translation unit that runs the math.
//
// Threading: a Gpt2Model is used by one thread at a time (the engine's owner thread). The
// math itself uses the intra-op thread pool (both cores).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace helpline::lm {

// The fields of config.json the forward pass uses.
struct Gpt2Config {
  int vocab_size = 0;   // rows of the embedding (may exceed the tokenizer's vocabulary)
  int n_positions = 0;  // context length
  int n_embd = 0;
  int n_layer = 0;
  int n_head = 0;
  float layer_norm_epsilon = 1e-5f;
  int bos_token_id = -1;  // -1: none
  int eos_token_id = -1;  // -1: none
};

struct LoadOptions {
  // Threads of the intra-op pool; 0 keeps libtorch's default (all cores).
  int threads = 0;
  // The matrices of an F16 / BF16 checkpoint are kept in their 16-bit form and widened to
  // f32 in registers (exact, so the logits are bit-identical to widening them at load, at
  // half the memory and half the bytes streamed per token). true widens them to f32 at load
  // instead: the same numbers, for comparison. F32 checkpoints are always f32.
  bool f32_weights = false;
};

// The keys and values of one sequence, for every layer. Created by Gpt2Model::NewCache,
// owned by whoever runs the sequence. Grows as tokens are appended by Step.
class KvCache {
 public:
  virtual ~KvCache() = default;
  // Tokens whose keys and values are held.
  virtual int length() const = 0;
  // Bytes allocated (for memory budgets).
  virtual size_t bytes() const = 0;
  // Keeps the first n tokens (n <= length()).
  virtual void Truncate(int n) = 0;
  // A deep copy (candidates that share a prompt; the session prefix cache).
  virtual std::unique_ptr<KvCache> Clone() const = 0;
};

// One sequence's part of a batched step.
struct StepInput {
  // The sequence's cache; the tokens are appended to it. Not null.
  KvCache* cache = nullptr;
  // New tokens: a prefill chunk, or the one token of a decode step. Not empty;
  // cache->length() + tokens.size() <= n_positions.
  absl::Span<const int32_t> tokens;
};

class Gpt2Model {
 public:
  virtual ~Gpt2Model() = default;

  // Loads DIR/config.json and DIR/model.safetensors (F32, F16 or BF16; names with or without
  // the "transformer." prefix; lm_head.weight optional, tied to wte otherwise). The matrices
  // of F16 / BF16 checkpoints stay 16-bit (see LoadOptions::f32_weights); vectors (biases,
  // norms, positions) are f32. A missing file, a missing, unknown or misshaped tensor, or a config
  // the forward pass does not support: INVALID_ARGUMENT / NOT_FOUND naming the file and
  // the tensor or field.
  static absl::StatusOr<std::unique_ptr<Gpt2Model>> Load(const std::string& dir,
                                                          const LoadOptions& options = {});

  virtual const Gpt2Config& config() const = 0;

  // Bytes of weights held (packed matrices, biases, norms, positions).
  virtual size_t weight_bytes() const = 0;

  // An empty cache for one sequence.
  virtual std::unique_ptr<KvCache> NewCache() const = 0;

  // Runs one batched forward step: appends each input's tokens to its cache and writes,
  // for each input in order, the logits of its last new token into `logits`
  // (inputs.size() rows of config().vocab_size floats; resized as needed).
  // The result for a sequence does not depend on the other sequences in the batch
  // (batch invariance: same tokens alone or in a busy batch).
  // INVALID_ARGUMENT (and no cache changed) when an input would pass n_positions or holds
  // an id outside [0, vocab_size).
  virtual absl::Status Step(absl::Span<const StepInput> inputs, std::vector<float>& logits) = 0;
};

}  // namespace helpline::lm
