// What a trained utterance-model folder says about itself besides its weights (the JSON file
// `nlu_model.json` next to `model.safetensors`): architecture, labels, calibration, and the
// record of the training run. No libtorch here, so the service can check a folder against its
// domain cheaply.
//
// Plain values; thread-compatible.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/domain/domain.h"
#include "nlohmann/json.hpp"

namespace helpline::nlu::model {

inline constexpr char kModelJsonName[] = "nlu_model.json";
inline constexpr char kWeightsName[] = "model.safetensors";

// The architecture (nlu_model.h explains the network).
struct NluModelConfig {
  int64_t embedding_dim = 128;  // word, character n-gram and shape embeddings (summed)
  int64_t hidden_dim = 128;     // BiGRU state per direction
  int64_t sentence_dim = 64;    // bag of word uni/bigrams
  double dropout = 0.3;
  double word_dropout = 0.1;  // training only: a word id becomes <unk> with this chance
  int ensemble = 1;  // members trained with seeds seed, seed+1, ...; probabilities averaged
  // Slot tagger: a linear-chain CRF over the tag scores (learned transitions, trained by the
  // sequence likelihood) instead of per-token softmax. Absent in older folders: false.
  bool crf = false;
  // > 0: each token also gets a frozen pretrained word vector of this size (zeros for words
  // without one), projected to embedding_dim and added. Absent in older folders: 0.
  int64_t word_vectors_dim = 0;
  // A pretrained sentence-piece transformer fine-tuned inside each member
  // (transformer_checkpoint.h): its piece states, at each word's first piece, are projected
  // to embedding_dim and added to the token; its sentence vector joins the encoding. Sizes of
  // its piece vocabulary, piece embedding, states and feed-forward; all 0 (absent in older
  // folders): no transformer.
  int64_t transformer_pieces = 0;
  int64_t transformer_embedding_dim = 0;
  int64_t transformer_hidden_dim = 0;
  int64_t transformer_ffn_dim = 0;
  // Inference runs the transformer's linear maps in bfloat16 (copies of the weights made at
  // load; the folder keeps float32): the whole model 1.7x faster on this CPU (bf16
  // instructions); the calibration on dev already saw it. Absent in older folders: false.
  bool transformer_bf16_inference = false;

  bool has_transformer() const { return transformer_hidden_dim > 0; }
  // Size of the utterance encoding (max pool, mean pool, bag of n-grams, the transformer's
  // sentence vector) of one member.
  int64_t encoding_dim() const { return 4 * hidden_dim + sentence_dim + transformer_hidden_dim; }
};

struct NluModelInfo {
  NluModelConfig config;
  // Intent labels, in the order of the classifier's outputs. May include `oos_label`.
  std::vector<std::string> intents;
  // Slot types of the tagger (tags: O, B-<type>, I-<type> in this order).
  std::vector<std::string> slot_types;
  // The intent label that means out of scope (an explicit class, "oos" for CLINC150), or ""
  // when the model has none.
  std::string oos_label;
  // Calibration: probabilities are softmax(logits / temperature) (fitted on dev by NLL).
  double temperature = 1.0;
  // An utterance whose calibrated confidence is below this is out of scope (tuned on dev;
  // see README.md for how, per kind of data).
  double oos_threshold = 0.0;
  // Free-form record of the training run (data, seed, epochs, time, dev metrics).
  nlohmann::json training = nlohmann::json::object();
};

nlohmann::json ToJson(const NluModelInfo& info);
// INVALID_ARGUMENT naming the missing or mistyped field.
absl::StatusOr<NluModelInfo> NluModelInfoFromJson(const nlohmann::json& json);

// OK when the model's intents (without its out-of-scope label) and slot types are exactly the
// domain's; else FAILED_PRECONDITION naming the difference, e.g. "model folder m does not
// match domain shop.yaml: intents missing in the model: [refund]; slots only in the model:
// [size]".
absl::Status CheckModelMatchesDomain(const NluModelInfo& info, const domain::Domain& domain,
                                     absl::string_view model_origin);

}  // namespace helpline::nlu::model
