// Trains a GPT-2-architecture language model with libtorch autograd (pre-LN blocks,
// GELU-tanh MLP, learned positions, output head tied to the token embedding; the weight
// layout of Hugging Face's GPT-2, Conv1D [in, out]) and writes the Hugging Face folder that
// lm::Gpt2Model::Load reads (config.json, model.safetensors in F32 or F16, plus the
// tokenizer files). The trainer's forward pass and lm::Gpt2Model's are proven equal by
// lm_trainer_test (same folder, logits within 1e-4).
//
// Training: AdamW (decay on matrices only), linear warmup then cosine decay to
// min_lr_ratio * lr, global-norm gradient clipping, batches of batch_tokens tokens: the
// training stream (every example followed by <|endoftext|>) is cut into windows of
// n_positions + 1 tokens, visited in a seeded random order per epoch. Deterministic for a
// given seed and thread count: the data order depends only on (seed, position), the
// initialisation only on the seed.
//
// Loss weights: a stream may mark its reply tokens (the agent's reply that ends an example,
// and the <|endoftext|> after it). Every other token is predicted with weight
// context_weight: 1 trains on all text alike; 0 trains on the replies only, so the model's
// capacity goes to what it is asked to write, not to the prompts it is given.
//
// This header is free of libtorch; lm_trainer.cc is the one translation unit that uses it.
// A trainer is used by one thread; the math uses the intra-op pool (options.threads).
#pragma once

#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace helpline::train {

struct LmShape {
  int vocab_size = 0;  // rows of the embedding: the tokenizer's vocab_size
  int n_positions = 256;
  int n_embd = 256;
  int n_layer = 4;
  int n_head = 4;

  bool operator==(const LmShape&) const = default;
};

struct LmTrainOptions {
  LmShape shape;
  int64_t steps = 1000;
  // Tokens per optimizer step (rounded down to whole rows of n_positions; at least one row).
  int64_t batch_tokens = 8192;
  // Rows per forward/backward pass; gradients of a step's micro-batches are summed.
  int64_t micro_rows = 8;
  double lr = 1e-3;
  int64_t warmup = 100;
  double min_lr_ratio = 0.1;
  double weight_decay = 0.1;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double clip = 1.0;  // 0: no clipping
  uint64_t seed = 1;
  int threads = 2;    // intra-op threads; 0 keeps libtorch's default
  int eos_id = -1;    // bos/eos of config.json
  // Loss weight of the tokens a stream does not mark as reply tokens (0..1).
  double context_weight = 1.0;
};

// Token ids, and which of them are reply tokens (empty: none marked; every token then has
// weight 1 whatever context_weight says).
struct TokenStream {
  std::vector<int32_t> ids;
  std::vector<uint8_t> reply;  // empty, or one 0/1 per id

  TokenStream() = default;
  TokenStream(std::vector<int32_t> ids_in) : ids(std::move(ids_in)) {}  // NOLINT: implicit
  TokenStream(std::vector<int32_t> ids_in, std::vector<uint8_t> reply_in)
      : ids(std::move(ids_in)), reply(std::move(reply_in)) {}
  size_t size() const { return ids.size(); }
};

// Learning rate of step `step` (0-based): linear warmup over `warmup` steps to lr, then
// cosine decay to min_lr_ratio * lr at `steps`.
inline double LearningRate(const LmTrainOptions& o, int64_t step) {
  if (o.warmup > 0 && step < o.warmup) return o.lr * static_cast<double>(step + 1) / o.warmup;
  const int64_t span = std::max<int64_t>(1, o.steps - o.warmup);
  const double progress = std::min(1.0, static_cast<double>(step - o.warmup) / span);
  const double min_lr = o.lr * o.min_lr_ratio;
  return min_lr + 0.5 * (o.lr - min_lr) * (1.0 + std::cos(M_PI * progress));
}

struct StepStats {
  int64_t step = 0;  // steps done after this one
  double loss = 0;   // mean cross-entropy of the step's tokens (nats)
  double lr = 0;
  double grad_norm = 0;  // before clipping
  int64_t tokens = 0;
};

class LmTrainer {
 public:
  // Checks the options (shape divisible, vocab covers every token, enough tokens for one
  // window) and initialises the model from options.seed. INVALID_ARGUMENT otherwise.
  static absl::StatusOr<std::unique_ptr<LmTrainer>> Create(const LmTrainOptions& options,
                                                           TokenStream train_tokens,
                                                           TokenStream dev_tokens);
  virtual ~LmTrainer() = default;

  // One optimizer step on the next batch.
  virtual StepStats Step() = 0;
  // Mean cross-entropy (nats/token) on the dev stream's windows, at most max_tokens
  // predicted tokens (0: all), weighted as in training (with context_weight 0: the reply
  // tokens' loss). Evaluation does not change the training state.
  virtual double EvalLoss(int64_t max_tokens) = 0;

  // Writes DIR/checkpoint.pt atomically (a temporary file renamed over the old one): the
  // parameters, the optimizer state, the step (which fixes the schedule and the data
  // position), the shape and the seed.
  virtual absl::Status SaveCheckpoint(const std::string& dir) = 0;
  // Restores DIR/checkpoint.pt. INVALID_ARGUMENT (nothing changed) when it was written for
  // another shape or seed; NOT_FOUND when missing.
  virtual absl::Status LoadCheckpoint(const std::string& dir) = 0;
  // Starts from the parameters of DIR/checkpoint.pt (another run's, any seed), keeping this
  // run's fresh optimizer, step 0 and schedule: fine-tuning. INVALID_ARGUMENT (nothing
  // changed) for another shape; NOT_FOUND when missing.
  virtual absl::Status InitFromCheckpoint(const std::string& dir) = 0;
  // Writes DIR/config.json and DIR/model.safetensors (tensor names "transformer.<hf name>").
  virtual absl::Status ExportHf(const std::string& dir, bool f16) const = 0;

  // Logits of the last position of `ids` (eval mode, no gradient), vocab_size floats.
  virtual std::vector<float> LastLogits(absl::Span<const int32_t> ids) = 0;
  // Copy of every parameter's values, in a fixed order (tests).
  virtual std::vector<std::vector<float>> ParameterValues() const = 0;

  virtual int64_t step() const = 0;
  virtual int64_t parameter_count() const = 0;
  virtual const LmTrainOptions& options() const = 0;
};

// Reads the shape and seed a checkpoint was written for, and in `steps` the steps it had
// done. NOT_FOUND when
// DIR/checkpoint.pt is missing, INVALID_ARGUMENT when it is not a checkpoint.
absl::StatusOr<LmTrainOptions> ReadCheckpointOptions(const std::string& dir);

}  // namespace helpline::train
