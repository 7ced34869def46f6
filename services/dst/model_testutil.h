// Tests and benchmarks only: trains a small utterance model (nlu/model) on a domain's examples in
// about a second and writes its folder, so that the dst tests load a real model folder without a
// shipped one. Slot spans are the domain's typed extractors' (silver labels), plus a few
// examples that carry an order number so that the tagger has something to learn.
#pragma once

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/domain/domain.h"
#include "nlu/model/nlu_model.h"
#include "services/dst/extractors.h"

namespace helpline::dst::model_testing {

inline std::vector<nlu::data::UtteranceExample> DomainExamples(
    const std::shared_ptr<const domain::Domain>& d) {
  SlotExtractor extractor(d);
  ExtractOptions options;
  options.allow_free_text = false;
  std::vector<nlu::data::UtteranceExample> out;
  auto add = [&](const std::string& intent, const std::string& text) {
    nlu::data::UtteranceExample e;
    e.origin = absl::StrCat(intent, "[", out.size(), "]");
    e.text = text;
    e.intent = intent;
    for (const SlotCandidate& c : extractor.Extract(text, options)) {
      e.spans.push_back({c.slot, c.begin, c.end, c.value});
    }
    std::sort(e.spans.begin(), e.spans.end(),
              [](const auto& a, const auto& b) { return a.begin < b.begin; });
    out.push_back(std::move(e));
  };
  for (const domain::Intent& intent : d->intents) {
    for (const auto& [language, examples] : intent.examples) {
      for (const std::string& text : examples) add(intent.name, text);
    }
    if (intent.Uses("order_id")) {
      for (const char* id : {"12345678", "AB123456", "A-7654321", "99887766"}) {
        add(intent.name, absl::StrCat(intent.examples.at("en").front(), " ", id));
        add(intent.name, absl::StrCat("order ", id, ": ", intent.examples.at("en").back()));
      }
    }
  }
  return out;
}

// Trains on `d`'s examples (slot types: every slot of the domain) and saves to `dir`.
// `tiny`: 24-wide layers (a second or two); else nlu/model's default architecture (the size
// the service would run, for benchmarks).
inline absl::Status TrainTinyModel(const std::shared_ptr<const domain::Domain>& d,
                                   const std::string& dir, int epochs = 25, bool tiny = true) {
  nlu::model::TrainOptions options;
  options.seed = 7;
  options.epochs = epochs;
  if (tiny) {
    options.config.embedding_dim = 24;
    options.config.hidden_dim = 24;
    options.config.sentence_dim = 16;
    options.config.dropout = 0.1;
    options.config.word_dropout = 0.0;
  }
  std::vector<std::string> slot_types;
  for (const domain::Slot& slot : d->slots) slot_types.push_back(slot.name);
  nlu::model::SetTorchThreads(1);
  auto model = nlu::model::NluModel::Train(DomainExamples(d), {}, "", slot_types, options, nullptr);
  if (!model.ok()) return model.status();
  return (*model)->Save(dir);
}

}  // namespace helpline::dst::model_testing
