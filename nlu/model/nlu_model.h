// The trained utterance models: an intent classifier with calibrated confidence and
// out-of-scope detection, and a BIO slot tagger, sharing one utterance encoder (libtorch).
//
// Network (one ensemble member):
//   token = word embedding + mean of its character n-gram embeddings + shape embedding
//           [+ projected pretrained word vector] [+ projected transformer state of its
//           first sentence piece]
//   -> dropout -> BiGRU -> token states
//   encoding = [max pool of states, mean pool of states, mean of word uni/bigram embeddings
//               [, the transformer's sentence vector]]
//   intent logits = Linear(encoding); tag logits = Linear(token states)
// trained jointly (cross-entropy of intent + of tags) with Adam. Members of an ensemble
// differ by seed; their calibrated probabilities are averaged. Slots are decoded with a
// BIO-constrained Viterbi over the averaged tag log-probabilities, or (config.crf) a
// linear-chain CRF's: tag scores + learned tag bigram scores, trained by the sequence
// likelihood, members' scores averaged.
//
// The encoding of member 0 is exposed (`NluPrediction::encoding`) for a dialogue-level
// context encoder.
//
// Thread-safety: a loaded model is immutable; Predict may be called from several threads
// (libtorch inference without autograd). It blocks for the forward pass (20 words on one core:
// ~0.3-0.5 ms per member, ~2-3 ms with the transformer; see README.md).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlu/data/dataset.h"
#include "nlu/model/model_info.h"

namespace helpline::nlu::model {

struct NluPrediction {
  // The predicted intent, or "" when out of scope (explicit class or confidence below the
  // threshold when `use_threshold`) or when the text has no tokens.
  std::string intent;
  // The most probable in-scope intent whatever the decision ("" when the text has no tokens).
  std::string best_intent;
  // Calibrated probability of best_intent (of the out-of-scope class when that won).
  float confidence = 0;
  std::vector<data::SlotSpan> slots;
  // Utterance encoding of ensemble member 0 (config.encoding_dim() floats); empty when the
  // text has no tokens.
  std::vector<float> encoding;
};

struct TrainProgress {
  int member = 0;  // 0-based ensemble member
  int members = 1;
  int epoch = 0;  // 1-based
  int epochs = 0;
  size_t step = 0;             // steps done in this member
  size_t steps = 0;            // steps of this member
  double loss = 0;             // running mean over the epoch
  double intent_accuracy = 0;  // running, on training batches
  double elapsed_seconds = 0;
};

class PretrainedEncoder;       // pretrain.h
struct TransformerCheckpoint;  // transformer_checkpoint.h
class WordVectors;             // word_vectors.h

struct TrainOptions {
  NluModelConfig config;
  // When set (not owned; must outlive Train): every member's token embeddings (rows of the
  // words / n-grams the encoder knows) and BiGRU start from the encoder's weights (pretrain.h). Its dims must equal config.embedding_dim / hidden_dim.
  const PretrainedEncoder* init_encoder = nullptr;
  // With init_encoder: add the encoder's words and character n-grams to the vocabulary
  // (true), or keep the training texts' vocabulary and copy only the rows it shares (false).
  bool extend_vocabulary = true;
  // When set (not owned; must outlive Train): pretrained word vectors. Their words join the
  // vocabulary; each token gets its word's vector (frozen; zeros for words without one)
  // through a learned projection, beside the trained word embedding. Words that are not in
  // the training texts have no trained embedding: after training theirs is <unk>'s, which
  // word dropout taught to stand for a word known only by its vector. Sets
  // config.word_vectors_dim.
  const WordVectors* word_vectors = nullptr;
  // When set (not owned; must outlive Train): a pretrained sentence-piece transformer that
  // every member fine-tunes (NluModelConfig::transformer_*; its piece vocabulary travels in
  // the model folder), its weights at `transformer_learning_rate` (the rest at
  // `learning_rate`).
  const TransformerCheckpoint* transformer = nullptr;
  double transformer_learning_rate = 1e-4;
  // Train the transformer's matrix products in bfloat16 (autocast; about twice as fast where
  // the CPU has bf16 instructions); inference stays float32.
  bool transformer_bf16 = false;
  // The trained model runs the transformer's linear maps in bfloat16
  // (NluModelConfig::transformer_bf16_inference); calibration on dev sees it.
  bool transformer_bf16_inference = false;
  // Batches of utterances of similar length (EpochBatches::ShuffleInLengthBuckets) instead
  // of a plain shuffle: less padding, so faster, above all with a transformer.
  bool length_buckets = false;
  // Intent cross-entropy with label smoothing (0: none).
  double label_smoothing = 0.0;
  // R-Drop (Liang et al. 2021): every batch runs twice in one forward pass (other dropout
  // masks), both copies take the losses, plus this weight times the symmetric KL divergence
  // between the two copies' intent distributions and (with slots) their per-token tag
  // distributions (0: off). Twice the rows per step (~1.3x the time per epoch on this machine).
  double rdrop = 0.0;
  uint64_t seed = 1;
  // Ensemble members trained at once, each on its own thread (use one libtorch thread each:
  // SetTorchThreads(1)). The weights are the same for any value.
  int parallel_members = 1;
  // Knowledge distillation: the config.ensemble members are teachers; the model is one
  // student (seed + ensemble) trained on their mean softened intent probabilities mixed with
  // the gold labels (tags: gold only), so it predicts at the cost of one member.
  bool distill = false;
  // With distill and a transformer: the student has none (the members keep theirs), so it
  // predicts at the cost of the recurrent network alone.
  bool distill_without_transformer = false;
  // The student's epochs (0: `epochs`).
  int student_epochs = 0;
  // With distill: up to this many altered copies of every training utterance
  // (MakeTransferCopies: n-gram windows, dropped words with probability transfer_drop) join
  // the student's training set, labelled by the teachers alone (no gold-label term). Intent
  // data only (INVALID_ARGUMENT when there are slot types: a copy has no gold tags).
  int transfer_copies = 0;
  double transfer_drop = 0.15;
  int epochs = 15;
  int batch_size = 32;
  double learning_rate = 2e-3;
  // Out of scope with an explicit class: the threshold is the one with the best in-scope
  // dev accuracy among those reaching this out-of-scope recall on dev.
  double oos_recall_target = 0.6;
  // Closed-set data: the threshold rejects this fraction of the correctly classified dev
  // utterances (used by the service, not by closed-set evaluation).
  double closed_set_reject = 0.05;
  // Called after every step (the CLI draws a progress bar). May be empty.
  std::function<void(const TrainProgress&)> progress;
};

struct TrainReport {
  double seconds = 0;
  // Dev metrics (names of nlu/metrics/utterance_metrics.h) with the calibrated model.
  std::map<std::string, double> dev_metrics;
  double dev_nll_before = 0;  // mean NLL at temperature 1
  double dev_nll_after = 0;   // at the fitted temperature
  size_t transfer_copies = 0;  // the student's transfer copies (TrainOptions::transfer_copies)
};

// The pretrained transformer's own sentence embeddings of `texts` as it was pretrained (its
// sentence vector, L2-normalized), with the piece ids it read (the model's tokens, each
// segmented into pieces): for checking a checkpoint against a reference implementation. The
// network is built once for all texts; a text without tokens gets an empty result. INTERNAL
// for libtorch errors, INVALID_ARGUMENT for a checkpoint that does not fit the network.
struct TransformerEmbedding {
  std::vector<int64_t> pieces;
  std::vector<float> embedding;
};
absl::StatusOr<std::vector<TransformerEmbedding>> EmbedWithTransformer(
    const TransformerCheckpoint& checkpoint, const std::vector<std::string>& texts);

// Replaces the weights of `checkpoint` with the transformer fine-tuned inside the utterance
// model in `model_dir` (its first member's), so that a new model starts from what another
// data set taught it (intermediate-task transfer). The pieces stay the checkpoint's: the model
// must have been trained from the same checkpoint. NOT_FOUND for a missing folder or file;
// INVALID_ARGUMENT naming the folder when it has no transformer, other pieces, or a weight
// missing or of another shape.
absl::Status TakeFineTunedTransformer(const std::string& model_dir,
                                      TransformerCheckpoint& checkpoint);

// Sets libtorch's intra-op thread count for the process (training and inference), so that
// callers need not include libtorch.
void SetTorchThreads(int threads);

class NluModel {
 public:
  ~NluModel();
  NluModel(const NluModel&) = delete;
  NluModel& operator=(const NluModel&) = delete;

  // Trains on `train`; `dev` (may be empty: then a tenth of `train`, per intent, is held out)
  // fits the temperature and the out-of-scope threshold. Labels: the intents of `train` in
  // sorted order; slot types: `slot_types` when non-empty, else the span types of `train`.
  // `oos_label`: the intent that means out of scope ("" none). Deterministic for a seed and a
  // thread count. INVALID_ARGUMENT for empty data; INTERNAL for libtorch errors.
  static absl::StatusOr<std::unique_ptr<NluModel>> Train(
      const std::vector<data::UtteranceExample>& train,
      const std::vector<data::UtteranceExample>& dev, const std::string& oos_label,
      const std::vector<std::string>& slot_types, const TrainOptions& options, TrainReport* report);

  // Reads `dir`/nlu_model.json and `dir`/model.safetensors. NOT_FOUND when they are missing,
  // INVALID_ARGUMENT naming the file for malformed content or weights that do not fit.
  static absl::StatusOr<std::unique_ptr<NluModel>> Load(const std::string& dir);

  // Writes the two files into `dir` (created if missing). INTERNAL on I/O errors.
  absl::Status Save(const std::string& dir) const;

  // `use_threshold`: apply the confidence threshold (out-of-scope detection); the explicit
  // out-of-scope class is always applied. INTERNAL for libtorch errors.
  absl::StatusOr<NluPrediction> Predict(absl::string_view text, bool use_threshold = true) const;

  // Predict for every text, the texts with tokens run as one libtorch batch (training's dev
  // evaluation takes this path; a lone text goes Predict's way). INTERNAL for libtorch errors.
  absl::StatusOr<std::vector<NluPrediction>> PredictBatch(const std::vector<std::string>& texts,
                                                          bool use_threshold = true) const;

  // True when Predict runs the whole network without libtorch (utterance_inference.h): every
  // model except one whose transformer is kept in float32 (no transformer_bf16_inference).
  bool PredictsOffLibtorch() const;

  const NluModelInfo& info() const;
  NluModelInfo& mutable_info();

  // All weights of all members by name (for the determinism test), copied as float32.
  std::map<std::string, std::vector<float>> Weights() const;

  struct Impl;

 private:
  explicit NluModel(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace helpline::nlu::model
