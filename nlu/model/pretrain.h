// Pretraining of the utterance encoder on unlabeled text (no downloadable weights exist for
// it): the token embeddings (word, character n-gram, shape) and the BiGRU of nlu_model.h are
// trained as a forward + backward language model (ELMo-style): the forward GRU state at a
// token predicts the next word (the last one: end of utterance), the backward state the
// previous word (the first one: start of utterance). The softmax over the corpus vocabulary
// is sampled: each step scores the batch's target words plus `negatives` words drawn from
// the unigram distribution raised to 0.75, with one shared output embedding for both
// directions. Target words outside the vocabulary are not predicted.
//
// A pretrained encoder initialises NluModel::Train (TrainOptions::init_encoder): the model's
// vocabulary is the training texts' plus the encoder's, each word / character n-gram of the
// encoder keeps its pretrained row, the shape embedding and the GRU start from the encoder.
//
// Folder: `encoder.json` (format, dims, vocabulary, training record) and
// `encoder.safetensors` (F32: word.weight, chars.weight, shape.weight, gru.*).
//
// Thread-compatible: a loaded encoder is immutable.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "nlu/model/featurizer.h"
#include "nlu/model/nlu_model.h"

namespace helpline::nlu::model {

inline constexpr char kEncoderJsonName[] = "encoder.json";
inline constexpr char kEncoderWeightsName[] = "encoder.safetensors";

struct PretrainOptions {
  int64_t embedding_dim = 128;  // must equal the utterance model's to initialise it
  int64_t hidden_dim = 128;
  double dropout = 0.1;  // on the token embeddings and on the states before the softmax
  int epochs = 1;
  int batch_size = 64;
  double learning_rate = 2e-3;  // Adam, linear decay to 0
  int negatives = 1024;         // sampled words per step
  int min_count = 2;            // vocabulary: words / n-grams seen at least this often
  size_t max_words = 20000;
  size_t max_char_ngrams = 40000;
  uint64_t seed = 1;
  // > 0: a time budget. The learning rate then decays with the larger of the step fraction
  // and the elapsed-time fraction, and training stops when either reaches 1 (the run is then
  // not reproducible step for step: it depends on the machine's speed).
  double max_seconds = 0;
  // Called after every step; TrainProgress::intent_accuracy is the share of targets ranked
  // first among the step's candidates.
  std::function<void(const TrainProgress&)> progress;
};

struct PretrainReport {
  size_t sentences = 0;  // with at least one token
  size_t tokens = 0;
  size_t words = 0;        // vocabulary
  size_t char_ngrams = 0;  // vocabulary
  double first_epoch_loss = 0;  // mean sampled-softmax loss of the first epoch
  double final_epoch_loss = 0;  // of the last epoch
  double seconds = 0;
  size_t steps = 0;             // done (fewer than planned when the time budget ran out)
  bool stopped_by_time = false;
};

// One tensor of a pretrained encoder.
struct EncoderTensor {
  std::vector<int64_t> shape;
  std::vector<float> values;
};

class PretrainedEncoder {
 public:
  // Trains on `texts` (duplicates are kept; deduplicate before when wanted). INVALID_ARGUMENT
  // when no text has a token or an option is out of range; INTERNAL for libtorch errors.
  static absl::StatusOr<std::unique_ptr<PretrainedEncoder>> Train(
      const std::vector<std::string>& texts, const PretrainOptions& options,
      PretrainReport* report);

  // Reads `dir`/encoder.json and `dir`/encoder.safetensors. NOT_FOUND when missing,
  // INVALID_ARGUMENT naming the file for malformed content or tensors of the wrong shape.
  static absl::StatusOr<std::unique_ptr<PretrainedEncoder>> Load(const std::string& dir);

  // Writes the two files into `dir` (created if missing). INTERNAL on I/O errors.
  absl::Status Save(const std::string& dir) const;

  const Featurizer& featurizer() const { return featurizer_; }
  int64_t embedding_dim() const { return embedding_dim_; }
  int64_t hidden_dim() const { return hidden_dim_; }
  // word.weight [words, E], chars.weight [n-grams, E], shape.weight [kNumShapes, E], and the
  // BiGRU's parameters under their libtorch names prefixed "gru.".
  const std::map<std::string, EncoderTensor>& tensors() const { return tensors_; }
  // Free-form record of the pretraining run (corpus, sizes, time, losses).
  nlohmann::json& training() { return training_; }
  const nlohmann::json& training() const { return training_; }

 private:
  PretrainedEncoder() = default;

  Featurizer featurizer_;
  int64_t embedding_dim_ = 0;
  int64_t hidden_dim_ = 0;
  std::map<std::string, EncoderTensor> tensors_;
  nlohmann::json training_ = nlohmann::json::object();
};

}  // namespace helpline::nlu::model
