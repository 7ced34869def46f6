#include "nlu/metrics/utterance_metrics.h"

#include <algorithm>

namespace helpline::nlu::metrics {

void SpanCounts::Add(const SpanCounts& other) {
  correct += other.correct;
  predicted += other.predicted;
  gold += other.gold;
}

double SpanCounts::Precision() const {
  return predicted == 0 ? 1.0 : static_cast<double>(correct) / predicted;
}

double SpanCounts::Recall() const { return gold == 0 ? 1.0 : static_cast<double>(correct) / gold; }

double SpanCounts::F1() const {
  if (predicted == 0 && gold == 0) return 1.0;
  const double p = Precision();
  const double r = Recall();
  return p + r > 0 ? 2 * p * r / (p + r) : 0.0;
}

SpanCounts CompareSpans(const std::vector<data::SlotSpan>& gold,
                        const std::vector<data::SlotSpan>& predicted) {
  SpanCounts counts;
  counts.gold = gold.size();
  counts.predicted = predicted.size();
  std::vector<bool> used(gold.size(), false);
  for (const data::SlotSpan& p : predicted) {
    for (size_t i = 0; i < gold.size(); ++i) {
      if (!used[i] && gold[i].slot == p.slot && gold[i].begin == p.begin && gold[i].end == p.end) {
        used[i] = true;
        ++counts.correct;
        break;
      }
    }
  }
  return counts;
}

UtteranceScorer::UtteranceScorer(std::string oos_label, SlotMetric slot_metric)
    : oos_label_(std::move(oos_label)), slot_metric_(slot_metric) {}

void UtteranceScorer::Add(const data::UtteranceExample& gold,
                          const UtterancePrediction& predicted) {
  ++examples_;
  // An empty prediction is out-of-scope: the data set's label for it when it has one.
  const std::string& intent =
      predicted.intent.empty() && !oos_label_.empty() ? oos_label_ : predicted.intent;
  const bool intent_right = intent == gold.intent;
  intents_right_ += intent_right;
  if (!oos_label_.empty()) {
    if (gold.in_scope) {
      ++in_scope_;
      in_scope_right_ += intent_right;
    } else {
      ++oos_;
      oos_found_ += intent == oos_label_;
    }
  }
  if (slot_metric_ != SlotMetric::kNone) {
    const SpanCounts counts = CompareSpans(gold.spans, predicted.slots);
    spans_.Add(counts);
    sentences_right_ +=
        intent_right && counts.correct == counts.gold && counts.correct == counts.predicted;
  }
}

std::map<std::string, double> UtteranceScorer::Result() const {
  std::map<std::string, double> out;
  if (examples_ == 0) return out;
  auto ratio = [](size_t a, size_t b) { return b == 0 ? 0.0 : static_cast<double>(a) / b; };
  out["intent_accuracy"] = ratio(intents_right_, examples_);
  if (!oos_label_.empty()) {
    if (in_scope_ > 0) out["in_scope_accuracy"] = ratio(in_scope_right_, in_scope_);
    if (oos_ > 0) out["oos_recall"] = ratio(oos_found_, oos_);
  }
  if (slot_metric_ == SlotMetric::kSlots) {
    out["slot_f1"] = spans_.F1();
    out["sentence_accuracy"] = ratio(sentences_right_, examples_);
  } else if (slot_metric_ == SlotMetric::kEntities) {
    out["entity_f1"] = spans_.F1();
  }
  return out;
}

}  // namespace helpline::nlu::metrics
