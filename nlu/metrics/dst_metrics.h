// Dialogue state tracking scores.
//
// SGD (Rastogi et al. 2020; the DSTC8 evaluation script's definitions), per frame of every
// user turn (a frame = one service the turn is about), then averaged over frames:
//   joint_goal_accuracy     product over ALL slots of the service of the slot's score:
//                           1 when gold and prediction both leave it unset; 0 when only one
//                           sets it; when both set it, categorical slots score 1 if the
//                           prediction equals the first gold form exactly, non-categorical
//                           slots the best TokenSortRatio against any gold form;
//   average_goal_accuracy   the mean of those scores over the slots the gold state sets
//                           (frames without any are skipped);
//   active_intent_accuracy  predicted active intent == gold;
//   requested_slot_f1       F1 of the requested slot lists (1 when both are empty);
// each also as <name>_seen / <name>_unseen for services in / not in the training schema.
//
// MultiWOZ 2.1 (as TRADE, Wu et al. 2019, scores it), per user turn:
//   joint_goal_accuracy  the set of (domain-slot, value) pairs of the five domains hotel,
//                        train, restaurant, attraction, taxi equals the gold set exactly,
//                        after NormalizeMultiwozValue on both sides;
//   slot_accuracy        the share of those domains' schema slots whose value is right.
//
// Not thread-safe; one scorer per thread.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "nlu/data/dataset.h"

namespace helpline::nlu::metrics {

// A predicted dialogue state: service (domain) -> its state.
using DialogueStatePrediction = std::map<std::string, data::FrameState>;

// fuzzywuzzy's token_sort_ratio / 100, which the SGD script uses for non-categorical
// values: both strings lower-cased, characters other than letters, digits and '_' made
// spaces (U+0080..U+00FF dropped), words sorted and joined by one space; then
// 2 * LCS / (length a + length b) over code points, rounded to two decimals (half to even).
// 0 when either processed string is empty.
double TokenSortRatio(absl::string_view a, absl::string_view b);

struct SgdFrameScores {
  double joint_goal = 0;
  // Unset when the gold state sets no slot.
  std::optional<double> average_goal;
  double active_intent = 0;
  double requested_slot_f1 = 0;
};

SgdFrameScores ScoreSgdFrame(const data::FrameState& gold, const data::FrameState& predicted,
                             const data::ServiceSchema& service);

class SgdScorer {
 public:
  // `seen_services`: the services of the training schema. Empty: no _seen/_unseen metrics.
  explicit SgdScorer(std::set<std::string> seen_services);

  // Scores every gold frame of a user turn against the prediction (a service the
  // prediction lacks counts as an empty state with intent "NONE").
  void AddTurn(const std::vector<data::Frame>& gold_frames,
               const DialogueStatePrediction& predicted, const data::DialogueDataset& schema);
  void AddFrame(const std::string& service, const SgdFrameScores& scores);

  // Metric name -> value in [0, 1]. Empty before the first frame.
  std::map<std::string, double> Result() const;
  size_t frames() const { return all_.frames; }

 private:
  struct Sums {
    size_t frames = 0;
    double joint_goal = 0;
    double active_intent = 0;
    double requested_slot_f1 = 0;
    size_t goal_frames = 0;
    double average_goal = 0;
    void Add(const SgdFrameScores& s);
  };
  std::set<std::string> seen_services_;
  Sums all_;
  Sums seen_;
  Sums unseen_;
};

// MultiWOZ value normalisation: lower-cased, trimmed, inner spaces collapsed; the ways of
// saying "don't care" become "dontcare"; "", "none" and "not mentioned" become "" (not
// set); a few spelling variants of the data are unified ("guest house" -> "guesthouse",
// "center" -> "centre", ...; the table is in the .cc).
std::string NormalizeMultiwozValue(absl::string_view value);

// The five domains TRADE evaluates.
bool IsMultiwozEvalDomain(absl::string_view domain);

class MultiwozScorer {
 public:
  // `schema`: the data set's domains and slots (for slot_accuracy).
  explicit MultiwozScorer(const data::DialogueDataset& schema);

  void AddTurn(const std::vector<data::Frame>& gold_frames,
               const DialogueStatePrediction& predicted);

  // joint_goal_accuracy and slot_accuracy. Empty before the first turn.
  std::map<std::string, double> Result() const;
  size_t turns() const { return turns_; }

 private:
  std::vector<std::string> slots_;  // "domain-slot" of the evaluated domains.
  size_t turns_ = 0;
  size_t joint_right_ = 0;
  size_t slots_right_ = 0;
};

// "domain-slot" -> normalized value, for the evaluated domains' set slots.
std::map<std::string, std::string> MultiwozBelief(const DialogueStatePrediction& state);
std::map<std::string, std::string> MultiwozBelief(const std::vector<data::Frame>& frames);

}  // namespace helpline::nlu::metrics
