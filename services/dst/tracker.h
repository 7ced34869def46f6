// The first dialogue state tracker: intents matched against the domain's examples with
// TF-IDF cosine similarity, slots filled by typed extractors, merged into the prior state by
// fixed rules. No gRPC types here; the service adapter (dst_service.h) converts.
//
// Thread-safe after construction: Track() is const and shares nothing mutable.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/domain/domain.h"
#include "helpline/common/v1/types.pb.h"
#include "services/dst/extractors.h"

namespace helpline::dst {

struct IntentScore {
  std::string intent;
  float score = 0;
};

// Scores every intent of a domain against a text: cosine similarity of TF-IDF vectors
// (English: words, word bigrams and character trigrams; Chinese: character unigrams and
// bigrams) to each example; an intent's score is its best example's.
class IntentClassifier {
 public:
  explicit IntentClassifier(const domain::Domain& domain);
  // Highest first; empty when the text has no features (e.g. only digits).
  std::vector<IntentScore> Score(absl::string_view text) const;

  // The features of a text (feature -> weighted term frequency), for tests.
  static std::unordered_map<std::string, float> Features(absl::string_view text);

 private:
  // One example's weight of a feature (its L2-normalized TF-IDF vector's component).
  struct Posting {
    uint32_t example;  // Index into example_intents_.
    float weight;
  };
  // A feature some example has: its IDF and the examples that have it (an inverted index,
  // so that scoring costs one lookup per feature of the text, not one per example).
  struct IndexedFeature {
    float idf = 1;
    std::vector<Posting> postings;
  };
  std::vector<std::string> intent_names_;
  std::vector<size_t> example_intents_;  // Example -> index into intent_names_.
  absl::flat_hash_map<std::string, IndexedFeature> index_;
  float unseen_idf_ = 1;
};

// What a trained utterance model (nlu/model, loaded by the service from a model folder)
// says about one customer turn. Implemented outside the tracker (services/dst/model_scorer.h)
// so that the tracker itself does not depend on libtorch.
struct UtteranceAnalysis {
  // Intents of the domain with calibrated probabilities, highest first.
  std::vector<IntentScore> intents;
  // True when the model judges the turn out of scope (explicit class or below its threshold).
  bool out_of_scope = false;
  // Slot values the model tagged (BIO spans), with byte spans in the analysed text.
  std::vector<SlotCandidate> slots;
};

class UtteranceModel {
 public:
  virtual ~UtteranceModel() = default;
  // Thread-safe. `text` is the normalized customer text; `language` "en", "zh" or "und".
  virtual UtteranceAnalysis Analyze(absl::string_view text, absl::string_view language) const = 0;
};

struct TrackerOptions {
  // Lowest intent score that sets a new active intent.
  float intent_threshold = 0.35f;
  // A turn that fills a slot we asked for keeps the prior intent unless another intent
  // scores at least this much.
  float switch_threshold = 0.6f;
  // A trained utterance model; when set it replaces the TF-IDF classifier for intents and
  // adds its slot spans to the typed extractors' candidates. Null: rules only.
  std::shared_ptr<const UtteranceModel> model;
};

// One customer turn.
struct TurnInput {
  // What the customer typed (normalized). May be empty when only attachments were sent.
  std::string user_text;
  // "en", "zh", "und" or empty.
  std::string language;
  // Text read from attachments.
  std::vector<common::v1::Evidence> evidence;
  // The state after the previous turn; default for a new session.
  common::v1::DialogueState prior;
};

struct TrackResult {
  common::v1::DialogueState state;
  // The best-scoring intent of this turn's text, even when below the threshold.
  IntentScore best;
  // True when the turn's intent came from the text (not carried over).
  bool intent_from_text = false;
};

class Tracker {
 public:
  Tracker(std::shared_ptr<const domain::Domain> domain, TrackerOptions options);

  // Updates input.prior with the turn. INVALID_ARGUMENT when the turn has neither text nor
  // evidence.
  absl::StatusOr<TrackResult> Track(const TurnInput& input) const;

  // True when `text` contains one of the domain's escalation phrases.
  bool AsksForHuman(absl::string_view text) const;

  const domain::Domain& domain() const { return *domain_; }

 private:
  // AsksForHuman on text already prepared for matching (lower-cased, spaces collapsed).
  bool AsksForHumanPrepared(absl::string_view prepared) const;

  struct EscalationPhrase {
    std::string text;  // Lower-cased, spaces collapsed; never empty.
    bool cjk = false;  // Matched as a substring, not at word boundaries.
  };

  std::shared_ptr<const domain::Domain> domain_;
  TrackerOptions options_;
  IntentClassifier classifier_;
  SlotExtractor extractor_;
  // The domain's escalation phrases of every language, prepared once.
  std::vector<EscalationPhrase> escalation_phrases_;
};

}  // namespace helpline::dst
