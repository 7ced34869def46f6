// --model of helpline-eval -> a predictor. The one place where a new kind of model (the
// trained intent/slot models and the GRU tracker of issue 5) plugs in.
//
//   "rule"           the rule-based tracker with a domain built from the training split
//                    (rule_predictor.h); needs `train` for utterance data, uses it when given
//                    for dialogue data (examples and values of seen services).
//   a *.yaml file    the rule-based tracker with that domain file (utterance data only;
//                    its intent and slot names must be the data set's labels).
//   a folder with nlu_model.json   a trained utterance model (nlu/model; utterance data).
//   a folder with dst_model.json   a trained dialogue state tracker (nlu/dst; dialogue data).
//   anything else    UNIMPLEMENTED.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "nlu/data/dataset.h"
#include "tools/eval/predictor.h"

namespace helpline::eval {

// `train` may be null. `eval` is the data set to be evaluated (its format and
// out-of-scope label decide how the predictor answers).
absl::StatusOr<std::unique_ptr<UtterancePredictor>> LoadUtterancePredictor(
    const std::string& model, const data::UtteranceDataset* train,
    const data::UtteranceDataset& eval);

absl::StatusOr<std::unique_ptr<DialoguePredictor>> LoadDialoguePredictor(
    const std::string& model, const data::DialogueDataset* train,
    const data::DialogueDataset& eval);

}  // namespace helpline::eval
