// The learned dialogue state tracker (issue 5): schema-guided, with a recurrent (GRU) context
// encoder over the dialogue so far. Trains on SGD or MultiWOZ 2.1 dialogues (nlu/data) and
// tracks any service whose schema it is given, including services unseen in training.
//
// Network (dimensions in DstModelConfig; D = 2 * hidden_dim):
//   user utterance: word + character n-gram + shape embeddings -> BiGRU -> token states [T, D]
//                   -> u = tanh(Linear([mean pool, max pool]))                           [D]
//   system turn:    hashed bag of its acts ("OFFER", "REQUEST time") -> embedding       [S]
//   context GRU:    over the user turns of the dialogue, input [u; system acts]
//                   -> h_t, the conversation memory (DstSession::context_vector)       [D]
//   slot q:         tanh(Linear(hashed bag of the slot's name + description))           [D]
//   per (service, slot): attention of q over the token states -> a;
//     status  = MLP([q, h, u, a, features]) over {none, dontcare, span, system,
//               categorical, refer} (dst_features.h), masked to what the slot allows;
//     requested = the same hidden layer -> sigmoid (the user asked for the slot);
//     span    = start / end pointers: token states . Linear([q, h]);
//     value   = MLP([q, v, a, v * a, h, value features]) per possible value v (categorical);
//     refer   = MLP([q, q_source, q * q_source, refer features]) per history value;
//   active intent per service = MLP([k, h, u, k * u, is previous]) over NONE + its intents
//   (k from the intent's name + description).
// The state is carried over: a slot changes only when its status is not `none`.
//
// Training: teacher forcing (the previous gold state builds the features), cross-entropy of
// every head, Adam with linear decay, batches of dialogues. Deterministic for a seed and a
// thread count.
//
// Thread-safety: a loaded DstModel is immutable; sessions may run on different threads at
// once (inference without autograd). A DstSession is used by one thread at a time. Calls block
// for the forward pass (about a millisecond per turn on one core).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"
#include "nlu/data/dataset.h"
#include "nlu/dst/dst_features.h"
#include "nlu/model/nlu_model.h"

namespace helpline::nlu::dst {

inline constexpr char kDstModelJsonName[] = "dst_model.json";
inline constexpr char kDstWeightsName[] = "model.safetensors";

struct DstModelConfig {
  int64_t embedding_dim = 64;  // word, character n-gram and shape embeddings (summed)
  int64_t hidden_dim = 64;     // utterance BiGRU per direction; the model dimension is twice it
  int64_t schema_dim = 64;     // hashed schema-text bags and system-act bags
  int64_t mlp_dim = 192;       // hidden layer of the status / value heads
  double dropout = 0.2;
  double word_dropout = 0.1;  // training only: a word id becomes <unk> with this chance
  int min_count = 2;          // vocabulary: words / n-grams seen at least this often
  // > 0: each token also gets a frozen pretrained word vector of this size, projected to
  // embedding_dim and added (DstTrainOptions::word_vectors). Absent in older folders: 0.
  int64_t word_vectors_dim = 0;

  int64_t model_dim() const { return 2 * hidden_dim; }
};

struct DstTrainOptions {
  DstModelConfig config;
  uint64_t seed = 1;
  int epochs = 3;
  int batch_dialogues = 16;
  double learning_rate = 2e-3;
  // Train on at most this many dialogues, spread evenly over the set (0: all).
  size_t max_dialogues = 0;
  // Weight of the statuses other than `none` in the status loss (1: plain cross-entropy).
  // `none` is 95-97% of the decisions; a weight above 1 keeps the head from learning the
  // prior (MultiWOZ's model never left `none` at 1).
  double status_weight = 1.0;
  // When set (not owned; must outlive Train): pretrained word vectors, used as by the
  // utterance model (nlu/model/nlu_model.h, TrainOptions::word_vectors): their words join
  // the vocabulary, frozen vectors beside the trained embedding, vector-only words take
  // <unk>'s trained row. Sets config.word_vectors_dim.
  const model::WordVectors* word_vectors = nullptr;
  // Called after every step (the CLI draws a progress bar). May be empty.
  // `intent_accuracy` carries the running slot-status accuracy.
  std::function<void(const model::TrainProgress&)> progress;
};

struct DstTrainReport {
  double seconds = 0;
  double prepare_seconds = 0;
  size_t dialogues = 0;
  size_t user_turns = 0;
  size_t slot_instances = 0;
  // Slot instances per status label ("none", "span", ...; "unreachable": a new value no
  // status can produce, left out of the status loss).
  std::map<std::string, size_t> status_counts;
  double final_loss = 0;
};

// A dialogue's tracking. Feed the turns in order.
class DstSession {
 public:
  virtual ~DstSession() = default;
  // A system turn: its utterance and acts per service (frames; no state is read).
  virtual absl::Status SystemTurn(const data::Turn& turn) = 0;
  // A user turn -> the state of every service of the dialogue after it (active intent,
  // "NONE" for none, "" for schemas without intents; requested slots; slot -> {value}).
  // INTERNAL for libtorch errors.
  virtual absl::StatusOr<std::map<std::string, data::FrameState>> UserTurn(
      absl::string_view utterance) = 0;
  // The context GRU's state after the last user turn (model_dim floats; zeros before).
  virtual std::vector<float> context_vector() const = 0;
  // Everything the session knows (context and GRU state), for DstModel::ResumeSession.
  virtual Snapshot snapshot() const = 0;
};

// The schema encodings of a dialogue's services: every slot, possible value and intent text
// through the model's schema encoder (hashed bag -> projection). They depend only on the model
// and the services, never on the dialogue, so a caller that tracks the same services turn after
// turn computes them once (DstModel::EncodeServices) and starts every session from them instead
// of re-encoding the schema per session. Opaque outside dst_model.cc; immutable once made, so
// any number of sessions on any threads may share one. Borrows the model and the services:
// both must outlive it.
struct ServiceEncodings;

class DstModel {
 public:
  ~DstModel();
  DstModel(const DstModel&) = delete;
  DstModel& operator=(const DstModel&) = delete;

  // Trains on the user turns of `train` (their states and SGD spans are the labels).
  // INVALID_ARGUMENT when it holds no user turn with a state or options are not positive;
  // INTERNAL for libtorch errors.
  static absl::StatusOr<std::unique_ptr<DstModel>> Train(const data::DialogueDataset& train,
                                                         const DstTrainOptions& options,
                                                         DstTrainReport* report);

  // Reads `dir`/dst_model.json and `dir`/model.safetensors. NOT_FOUND when missing,
  // INVALID_ARGUMENT naming the file for malformed content or weights that do not fit.
  static absl::StatusOr<std::unique_ptr<DstModel>> Load(const std::string& dir);

  // Writes both files into `dir` (created if missing). INTERNAL on I/O errors.
  absl::Status Save(const std::string& dir) const;

  // A session over `services` (they outlive the session, which borrows the model).
  // Encodes the services' schemas for this session alone (EncodeServices).
  // INVALID_ARGUMENT when `services` is empty.
  absl::StatusOr<std::unique_ptr<DstSession>> NewSession(
      const std::vector<const data::ServiceSchema*>& services) const;

  // The schema encodings of `services` (see ServiceEncodings), to share between sessions.
  // Blocks for the encoder's forward pass (the cost of a schema: well under a turn's).
  // INVALID_ARGUMENT when `services` is empty; INTERNAL for libtorch errors.
  absl::StatusOr<std::shared_ptr<const ServiceEncodings>> EncodeServices(
      const std::vector<const data::ServiceSchema*>& services) const;

  // A session over the services of `encodings` (made by this model's EncodeServices), which
  // it keeps alive. The same predictions as NewSession over those services, bit for bit.
  // INVALID_ARGUMENT when `encodings` is null or another model's.
  absl::StatusOr<std::unique_ptr<DstSession>> NewSession(
      std::shared_ptr<const ServiceEncodings> encodings) const;

  // A session that continues from `snapshot` (a DstSession::snapshot of a session over the
  // same services, possibly of another process): it predicts the next turns exactly as the
  // session the snapshot was taken from would. Names the snapshot has and `services` lack
  // are skipped (a domain that changed); an empty context vector starts from zeros.
  // INVALID_ARGUMENT when `services` is empty or the vector is not model_dim floats.
  absl::StatusOr<std::unique_ptr<DstSession>> ResumeSession(
      const std::vector<const data::ServiceSchema*>& services, const Snapshot& snapshot) const;
  // The same, from encodings of this model's EncodeServices (no schema encoding per call):
  // what a stateless service does every turn. INVALID_ARGUMENT as ResumeSession above, and
  // when `encodings` is null or another model's.
  absl::StatusOr<std::unique_ptr<DstSession>> ResumeSession(
      std::shared_ptr<const ServiceEncodings> encodings, const Snapshot& snapshot) const;

  const DstModelConfig& config() const;
  // The record of the training run (data, seed, epochs, time, label counts, services seen).
  const nlohmann::json& training() const;
  nlohmann::json& mutable_training();

  // All weights by name, copied as float32 (determinism and round-trip tests).
  std::map<std::string, std::vector<float>> Weights() const;

  struct Impl;

 private:
  explicit DstModel(std::unique_ptr<Impl> impl);
  // INVALID_ARGUMENT unless `encodings` were made by this model.
  absl::Status CheckEncodings(const ServiceEncodings* encodings) const;
  std::unique_ptr<Impl> impl_;
};

}  // namespace helpline::nlu::dst
