// Scores of intent and slot predictions on utterance data sets (Banking77, CLINC150, SNIPS,
// Bitext), by the definitions the published figures use:
//   intent_accuracy    predicted intent == gold intent, over all examples (an out-of-scope
//                      prediction counts as the data set's out-of-scope label);
//   in_scope_accuracy  the same over the in-scope examples only (CLINC150, Larson et al. 2019);
//   oos_recall         out-of-scope examples predicted out-of-scope / out-of-scope examples;
//   slot_f1            CoNLL span F1: micro-averaged over all spans, a span counts when its
//                      type and both ends are exactly right (conlleval);
//   entity_f1          the same for Bitext's entities;
//   sentence_accuracy  intent right and the predicted spans exactly the gold spans (SNIPS).
//
// Not thread-safe; one scorer per thread.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include "nlu/data/dataset.h"

namespace helpline::nlu::metrics {

// What a model says about one utterance.
struct UtterancePrediction {
  // The predicted intent; "" (or the data set's out-of-scope label) for out-of-scope.
  std::string intent;
  // The model's confidence in `intent`, in [0, 1] (informational).
  float confidence = 0;
  // Predicted slot / entity spans (byte offsets into the utterance's text).
  std::vector<data::SlotSpan> slots;
};

// Counts of one comparison of span sets.
struct SpanCounts {
  size_t correct = 0;
  size_t predicted = 0;
  size_t gold = 0;

  void Add(const SpanCounts& other);
  // correct / predicted, correct / gold, and their harmonic mean; each 1 when its
  // denominator is 0 (nothing to find, nothing claimed).
  double Precision() const;
  double Recall() const;
  double F1() const;
};

// Exact matches of (slot, begin, end); each gold span matches at most one prediction.
// `value` is not compared.
SpanCounts CompareSpans(const std::vector<data::SlotSpan>& gold,
                        const std::vector<data::SlotSpan>& predicted);

enum class SlotMetric {
  kNone,      // intents only (Banking77, CLINC150)
  kSlots,     // slot_f1 and sentence_accuracy (SNIPS)
  kEntities,  // entity_f1 (Bitext)
};

class UtteranceScorer {
 public:
  // `oos_label`: the data set's out-of-scope label ("" when it has none): adds
  // in_scope_accuracy and oos_recall.
  UtteranceScorer(std::string oos_label, SlotMetric slot_metric);

  void Add(const data::UtteranceExample& gold, const UtterancePrediction& predicted);

  // Metric name (see the top of this file) -> value in [0, 1]; only the metrics that
  // apply. Empty before the first Add.
  std::map<std::string, double> Result() const;

  size_t examples() const { return examples_; }
  const SpanCounts& spans() const { return spans_; }

 private:
  std::string oos_label_;
  SlotMetric slot_metric_;
  size_t examples_ = 0;
  size_t intents_right_ = 0;
  size_t in_scope_ = 0;
  size_t in_scope_right_ = 0;
  size_t oos_ = 0;
  size_t oos_found_ = 0;
  size_t sentences_right_ = 0;
  SpanCounts spans_;
};

}  // namespace helpline::nlu::metrics
