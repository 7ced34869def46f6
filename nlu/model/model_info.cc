#include "nlu/model/model_info.h"

#include <algorithm>
#include <iterator>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace helpline::nlu::model {
namespace {

template <typename T>
absl::Status Get(const nlohmann::json& json, const char* key, T* out, bool required = true) {
  auto it = json.find(key);
  if (it == json.end()) {
    if (!required) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat("'", key, "' missing"));
  }
  try {
    *out = it->get<T>();
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("'", key, "': ", e.what()));
  }
  return absl::OkStatus();
}

void Difference(const std::set<std::string>& a, const std::set<std::string>& b,
                std::vector<std::string>* out) {
  for (const std::string& x : a) {
    if (!b.contains(x)) out->push_back(x);
  }
}

}  // namespace

nlohmann::json ToJson(const NluModelInfo& info) {
  const NluModelConfig& c = info.config;
  return nlohmann::json{
      {"format", "helpline-nlu-model/1"},
      {"config",
       {{"embedding_dim", c.embedding_dim},
        {"hidden_dim", c.hidden_dim},
        {"sentence_dim", c.sentence_dim},
        {"dropout", c.dropout},
        {"word_dropout", c.word_dropout},
        {"ensemble", c.ensemble},
        {"crf", c.crf},
        {"word_vectors_dim", c.word_vectors_dim},
        {"transformer_pieces", c.transformer_pieces},
        {"transformer_embedding_dim", c.transformer_embedding_dim},
        {"transformer_hidden_dim", c.transformer_hidden_dim},
        {"transformer_ffn_dim", c.transformer_ffn_dim},
        {"transformer_bf16_inference", c.transformer_bf16_inference}}},
      {"intents", info.intents},
      {"slot_types", info.slot_types},
      {"oos_label", info.oos_label},
      {"temperature", info.temperature},
      {"oos_threshold", info.oos_threshold},
      {"training", info.training},
  };
}

absl::StatusOr<NluModelInfo> NluModelInfoFromJson(const nlohmann::json& json) {
  NluModelInfo info;
  if (!json.is_object()) return absl::InvalidArgumentError("not a JSON object");
  std::string format;
  if (auto s = Get(json, "format", &format); !s.ok()) return s;
  if (format != "helpline-nlu-model/1") {
    return absl::InvalidArgumentError(absl::StrCat("unsupported format '", format, "'"));
  }
  auto config = json.find("config");
  if (config == json.end() || !config->is_object()) {
    return absl::InvalidArgumentError("'config' missing");
  }
  NluModelConfig& c = info.config;
  for (absl::Status s :
       {Get(*config, "embedding_dim", &c.embedding_dim), Get(*config, "hidden_dim", &c.hidden_dim),
        Get(*config, "sentence_dim", &c.sentence_dim), Get(*config, "dropout", &c.dropout),
        Get(*config, "word_dropout", &c.word_dropout), Get(*config, "ensemble", &c.ensemble),
        Get(json, "intents", &info.intents), Get(json, "slot_types", &info.slot_types),
        Get(json, "oos_label", &info.oos_label), Get(json, "temperature", &info.temperature),
        Get(json, "oos_threshold", &info.oos_threshold)}) {
    if (!s.ok()) return s;
  }
  if (auto s = Get(*config, "crf", &c.crf, /*required=*/false); !s.ok()) return s;
  if (auto s = Get(*config, "word_vectors_dim", &c.word_vectors_dim, /*required=*/false); !s.ok()) {
    return s;
  }
  if (c.word_vectors_dim < 0) {
    return absl::InvalidArgumentError("config: word_vectors_dim must be >= 0");
  }
  for (absl::Status s :
       {Get(*config, "transformer_pieces", &c.transformer_pieces, false),
        Get(*config, "transformer_embedding_dim", &c.transformer_embedding_dim, false),
        Get(*config, "transformer_hidden_dim", &c.transformer_hidden_dim, false),
        Get(*config, "transformer_ffn_dim", &c.transformer_ffn_dim, false),
        Get(*config, "transformer_bf16_inference", &c.transformer_bf16_inference, false)}) {
    if (!s.ok()) return s;
  }
  const int64_t transformer_sizes[] = {c.transformer_pieces, c.transformer_embedding_dim,
                                       c.transformer_hidden_dim, c.transformer_ffn_dim};
  const bool any = std::any_of(std::begin(transformer_sizes), std::end(transformer_sizes),
                               [](int64_t v) { return v != 0; });
  const bool all = std::all_of(std::begin(transformer_sizes), std::end(transformer_sizes),
                               [](int64_t v) { return v > 0; });
  if (any && !all) {
    return absl::InvalidArgumentError(
        "config: the transformer sizes must be all positive or all 0");
  }
  if (c.embedding_dim <= 0 || c.hidden_dim <= 0 || c.sentence_dim <= 0 || c.ensemble <= 0) {
    return absl::InvalidArgumentError("config: sizes must be positive");
  }
  if (info.intents.empty()) return absl::InvalidArgumentError("'intents' is empty");
  if (!(info.temperature > 0)) return absl::InvalidArgumentError("'temperature' must be > 0");
  if (auto it = json.find("training"); it != json.end()) info.training = *it;
  return info;
}

absl::Status CheckModelMatchesDomain(const NluModelInfo& info, const domain::Domain& domain,
                                     absl::string_view model_origin) {
  std::set<std::string> model_intents, domain_intents, model_slots, domain_slots;
  for (const std::string& intent : info.intents) {
    if (intent != info.oos_label) model_intents.insert(intent);
  }
  for (const domain::Intent& intent : domain.intents) domain_intents.insert(intent.name);
  model_slots.insert(info.slot_types.begin(), info.slot_types.end());
  for (const domain::Slot& slot : domain.slots) domain_slots.insert(slot.name);

  std::vector<std::string> problems;
  auto describe = [&problems](const char* what, const std::set<std::string>& a,
                              const std::set<std::string>& b) {
    std::vector<std::string> diff;
    Difference(a, b, &diff);
    if (!diff.empty())
      problems.push_back(absl::StrCat(what, ": [", absl::StrJoin(diff, ", "), "]"));
  };
  describe("intents missing in the model", domain_intents, model_intents);
  describe("intents only in the model", model_intents, domain_intents);
  describe("slots missing in the model", domain_slots, model_slots);
  describe("slots only in the model", model_slots, domain_slots);
  if (problems.empty()) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat("model folder ", model_origin,
                                                    " does not match domain ", domain.origin, ": ",
                                                    absl::StrJoin(problems, "; ")));
}

}  // namespace helpline::nlu::model
