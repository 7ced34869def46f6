#include "tools/eval/evaluate.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"
#include "nlu/metrics/dst_metrics.h"
#include "nlu/metrics/utterance_metrics.h"

namespace helpline::eval {
namespace {

using Clock = std::chrono::steady_clock;

// Indices of the items to evaluate: all, or `limit` spread evenly.
std::vector<size_t> Pick(size_t size, size_t limit) {
  std::vector<size_t> out;
  if (limit == 0 || limit >= size) {
    for (size_t i = 0; i < size; ++i) out.push_back(i);
    return out;
  }
  for (size_t i = 0; i < limit; ++i) out.push_back(i * size / limit);
  return out;
}

class Progress {
 public:
  Progress(std::ostream* out, size_t total, std::string unit)
      : out_(out), total_(total), unit_(std::move(unit)), start_(Clock::now()) {}

  void Step(size_t done) {
    if (out_ == nullptr || total_ == 0) return;
    const size_t decile = done * 10 / total_;
    if (decile == last_decile_ && done != total_) return;
    last_decile_ = decile;
    const double seconds = std::chrono::duration<double>(Clock::now() - start_).count();
    *out_ << absl::StrFormat("[eval] %zu/%zu %s (%.0f%%), %.1f s\n", done, total_, unit_,
                             100.0 * done / total_, seconds)
          << std::flush;
  }

 private:
  std::ostream* out_;
  size_t total_;
  std::string unit_;
  Clock::time_point start_;
  size_t last_decile_ = 0;
};

metrics::SlotMetric SlotMetricOf(const data::UtteranceDataset& data) {
  if (!data.has_slots) return metrics::SlotMetric::kNone;
  return data.format == "bitext" ? metrics::SlotMetric::kEntities : metrics::SlotMetric::kSlots;
}

// HELPLINE_DST_DEBUG: every scored user turn's wrong slots on stderr, one line each
// ("[eval-error] dialogue turn service-slot gold=... hyp=..."), for error analysis.
bool DebugErrors() { return std::getenv("HELPLINE_DST_DEBUG") != nullptr; }

void PrintSlotErrors(const data::Dialogue& dialogue, size_t turn,
                     const std::vector<data::Frame>& gold_frames,
                     const metrics::DialogueStatePrediction& predicted) {
  std::map<std::string, std::string> gold, hyp;
  for (const data::Frame& frame : gold_frames) {
    if (!frame.has_state) continue;
    for (const auto& [slot, forms] : frame.state.slot_values) {
      if (!forms.empty()) gold[absl::StrCat(frame.service, "-", slot)] = forms.front();
    }
    auto it = predicted.find(frame.service);
    if (it == predicted.end()) continue;
    for (const auto& [slot, forms] : it->second.slot_values) {
      if (!forms.empty()) hyp[absl::StrCat(frame.service, "-", slot)] = forms.front();
    }
  }
  std::set<std::string> keys;
  for (const auto& [k, v] : gold) keys.insert(k);
  for (const auto& [k, v] : hyp) keys.insert(k);
  for (const std::string& key : keys) {
    auto g = gold.find(key);
    auto h = hyp.find(key);
    const std::string gv = g != gold.end() ? g->second : "";
    const std::string hv = h != hyp.end() ? h->second : "";
    if (gv == hv) continue;
    std::fprintf(stderr, "[eval-error] %s %zu %s gold=%s hyp=%s\n", dialogue.id.c_str(), turn,
                 key.c_str(), gv.c_str(), hv.c_str());
  }
}

}  // namespace

absl::StatusOr<EvalResult> EvaluateUtterances(UtterancePredictor& predictor,
                                              const data::UtteranceDataset& data,
                                              const EvalOptions& options) {
  metrics::UtteranceScorer scorer(data.oos_label, SlotMetricOf(data));
  const std::vector<size_t> picked = Pick(data.examples.size(), options.limit);
  Progress progress(options.progress, picked.size(), "utterances");
  const Clock::time_point start = Clock::now();
  for (size_t n = 0; n < picked.size(); ++n) {
    const data::UtteranceExample& example = data.examples[picked[n]];
    absl::StatusOr<metrics::UtterancePrediction> prediction = predictor.Predict(example.text);
    if (!prediction.ok()) {
      return absl::Status(prediction.status().code(),
                          absl::StrCat(example.origin, ": ", prediction.status().message()));
    }
    scorer.Add(example, *prediction);
    progress.Step(n + 1);
  }
  EvalResult result;
  result.predict_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  result.metrics = scorer.Result();
  result.items = picked.size();
  result.unit = "utterances";
  return result;
}

absl::StatusOr<EvalResult> EvaluateDialogues(DialoguePredictor& predictor,
                                             const data::DialogueDataset& data,
                                             const std::set<std::string>& seen_services,
                                             const EvalOptions& options) {
  const bool sgd = data.format == "sgd";
  metrics::SgdScorer sgd_scorer(seen_services);
  metrics::MultiwozScorer multiwoz_scorer(data);
  const std::vector<size_t> picked = Pick(data.dialogues.size(), options.limit);
  Progress progress(options.progress, picked.size(), "dialogues");
  EvalResult result;
  const Clock::time_point start = Clock::now();
  for (size_t n = 0; n < picked.size(); ++n) {
    const data::Dialogue& dialogue = data.dialogues[picked[n]];
    std::vector<const data::ServiceSchema*> services;
    for (const std::string& name : dialogue.services) {
      const data::ServiceSchema* service = data.FindService(name);
      if (service != nullptr) services.push_back(service);
    }
    auto error = [&](const absl::Status& status, size_t turn) {
      return absl::Status(status.code(), absl::StrCat(data.origin, ": dialogue ", dialogue.id,
                                                      " turn ", turn, ": ", status.message()));
    };
    absl::StatusOr<std::unique_ptr<DialogueSession>> session = predictor.NewSession(services);
    if (!session.ok()) return error(session.status(), 0);
    for (size_t t = 0; t < dialogue.turns.size(); ++t) {
      const data::Turn& turn = dialogue.turns[t];
      if (turn.speaker == data::Speaker::kSystem) {
        absl::Status status = (*session)->SystemTurn(turn);
        if (!status.ok()) return error(status, t);
        continue;
      }
      absl::StatusOr<metrics::DialogueStatePrediction> state = (*session)->UserTurn(turn.utterance);
      if (!state.ok()) return error(state.status(), t);
      bool has_state = false;
      for (const data::Frame& frame : turn.frames) has_state = has_state || frame.has_state;
      if (!has_state) continue;  // Nothing to score (e.g. a last user turn without reply).
      ++result.items;
      if (DebugErrors()) PrintSlotErrors(dialogue, t, turn.frames, *state);
      if (sgd) {
        sgd_scorer.AddTurn(turn.frames, *state, data);
      } else {
        multiwoz_scorer.AddTurn(turn.frames, *state);
      }
    }
    progress.Step(n + 1);
  }
  result.predict_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  result.metrics = sgd ? sgd_scorer.Result() : multiwoz_scorer.Result();
  result.unit = "user turns";
  result.frames = sgd ? sgd_scorer.frames() : 0;
  return result;
}

bool IsReportedMetric(const std::string& name) {
  static const char* const kNames[] = {
      "intent_accuracy",      "in_scope_accuracy",      "oos_recall",
      "slot_f1",              "sentence_accuracy",      "entity_f1",
      "joint_goal_accuracy",  "active_intent_accuracy", "requested_slot_f1"};
  for (const char* base : kNames) {
    if (name == base || name == absl::StrCat(base, "_seen") ||
        name == absl::StrCat(base, "_unseen")) {
      return true;
    }
  }
  return false;
}

std::string ReportJson(const std::map<std::string, double>& metrics) {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [name, value] : metrics) {
    if (IsReportedMetric(name)) out[name] = value;
  }
  return out.dump(2) + "\n";
}

std::string FormatTable(const EvalResult& result) {
  std::string out = absl::StrFormat("%-32s %8s %8s\n", "metric", "value", "%");
  for (const auto& [name, value] : result.metrics) {
    out += absl::StrFormat("%-32s %8.4f %8.2f\n", name, value, 100 * value);
  }
  out += absl::StrFormat("scored %zu %s", result.items, result.unit);
  if (result.frames > 0) out += absl::StrFormat(" (%zu frames)", result.frames);
  out += absl::StrFormat(", prediction %.1f s (%.3f ms each)\n", result.predict_seconds,
                         result.items > 0 ? 1000 * result.predict_seconds / result.items : 0.0);
  return out;
}

}  // namespace helpline::eval
