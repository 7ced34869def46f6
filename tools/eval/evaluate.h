// The evaluation loop of helpline-eval: feeds a data set to a predictor, scores the answers
// with nlu/metrics, and formats the result (a table for people, a flat JSON object for
// machines).
#pragma once

#include <cstddef>
#include <map>
#include <ostream>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "nlu/data/dataset.h"
#include "tools/eval/predictor.h"

namespace helpline::eval {

struct EvalOptions {
  // Evaluate at most this many utterances / dialogues (0: all), spread evenly over the
  // data set (every k-th), so that a limited run still covers every part of it.
  size_t limit = 0;
  // Progress lines go here (null: none), about every 10% of the work.
  std::ostream* progress = nullptr;
};

struct EvalResult {
  // Metric name -> value in [0, 1] (see nlu/metrics for the definitions).
  std::map<std::string, double> metrics;
  // What was scored: "utterances", "user turns" (plus the number of SGD frames).
  size_t items = 0;
  std::string unit;
  size_t frames = 0;
  double predict_seconds = 0;
};

// INVALID_ARGUMENT when the predictor fails on an utterance (its error, naming the example).
absl::StatusOr<EvalResult> EvaluateUtterances(UtterancePredictor& predictor,
                                              const data::UtteranceDataset& data,
                                              const EvalOptions& options);

// `seen_services`: the training schema's services, for the SGD _seen/_unseen metrics
// (empty: not reported).
absl::StatusOr<EvalResult> EvaluateDialogues(DialoguePredictor& predictor,
                                             const data::DialogueDataset& data,
                                             const std::set<std::string>& seen_services,
                                             const EvalOptions& options);

// The names the --report file may hold: the metric names and their _seen/_unseen
// variants.
bool IsReportedMetric(const std::string& name);

// One flat JSON object {"intent_accuracy": 0.8123, ...} of the reported metrics.
std::string ReportJson(const std::map<std::string, double>& metrics);

// A readable table: one metric per line, as a fraction and a percentage.
std::string FormatTable(const EvalResult& result);

}  // namespace helpline::eval
