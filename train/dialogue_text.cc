#include "train/dialogue_text.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <memory>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "common/domain/domain.h"
#include "nlohmann/json.hpp"
#include "nlu/data/read_util.h"
#include "nlu/data/readers.h"
#include "services/generation/reply/prompt_builder.h"
#include "services/generation/reply/reply_text.h"

namespace helpline::train {
namespace {

using json = nlohmann::json;

constexpr absl::string_view kStyle = " Be brief, warm and precise.";

std::string DefaultSystemPrompt(TextFormat format, absl::string_view service_description) {
  switch (format) {
    case TextFormat::kSgd: {
      std::string d = std::string(absl::StripAsciiWhitespace(service_description));
      if (!d.empty()) d[0] = absl::ascii_tolower(static_cast<unsigned char>(d[0]));
      if (d.empty()) d = "a service provider";
      return absl::StrCat("You are the customer service assistant of ", d, ".", kStyle);
    }
    case TextFormat::kMultiwoz21:
      return absl::StrCat(
          "You are the assistant of the Cambridge town information centre: restaurants, hotels, "
          "attractions, trains and taxis.",
          kStyle);
    case TextFormat::kTaskmaster:
      return absl::StrCat("You are the order assistant of a coffee bar.", kStyle);
    case TextFormat::kBitext:
      return absl::StrCat(
          "You are the customer service assistant of an online shop: orders, deliveries, "
          "refunds and accounts.",
          kStyle);
    case TextFormat::kCamrest:
      return absl::StrCat("You are the assistant of a Cambridge restaurant guide.", kStyle);
  }
  return "";
}

// The line (1-based) of byte `offset` in `content`.
size_t LineOf(absl::string_view content, size_t offset) {
  offset = std::min(offset, content.size());
  return 1 + static_cast<size_t>(std::count(content.begin(), content.begin() + offset, '\n'));
}

absl::StatusOr<json> ParseJson(absl::string_view content, const std::string& origin) {
  try {
    return json::parse(content.begin(), content.end());
  } catch (const json::parse_error& e) {
    const size_t byte = e.byte > 0 ? e.byte - 1 : 0;
    return nlu::data::internal::LineError(origin, LineOf(content, byte),
                                          absl::StrCat("not valid JSON: ", e.what()));
  }
}

// MultiWOZ's text is whitespace-tokenized ("stars ." / "it 's"); undo the common cases.
std::string Detokenize(absl::string_view text) {
  std::string s = generation::reply::CollapseWhitespace(text);
  for (const char* p : {" .", " ,", " ?", " !", " :", " ;", " 's", " 'm", " 're", " 've", " 'd",
                        " 'll", " n't"}) {
    s = absl::StrReplaceAll(s, {{p, p + 1}});
  }
  return s;
}

bool IsWordByte(unsigned char c) { return absl::ascii_isalnum(c) || c >= 0x80; }

std::string SnakeCase(absl::string_view name) {
  std::string out;
  for (unsigned char c : name) {
    if (absl::ascii_isalnum(c)) {
      out += static_cast<char>(absl::ascii_tolower(c));
    } else if (!out.empty() && out.back() != '_') {
      out += '_';
    }
  }
  while (!out.empty() && out.back() == '_') out.pop_back();
  return out;
}

// "{{Order Number}}" -> "{{order_number}}".
std::string NormalizeBitextPlaceholders(absl::string_view text) {
  std::string out;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t open = text.find("{{", pos);
    const size_t close = open == absl::string_view::npos ? open : text.find("}}", open + 2);
    if (close == absl::string_view::npos) {
      absl::StrAppend(&out, text.substr(pos));
      break;
    }
    absl::StrAppend(&out, text.substr(pos, open - pos), "{{",
                    SnakeCase(text.substr(open + 2, close - open - 2)), "}}");
    pos = close + 2;
  }
  return out;
}

void FillState(const TextTurn& t, common::v1::DialogueState& state) {
  state.set_active_intent(t.intent);
  for (const auto& [slot, value] : t.slots) (*state.mutable_slots())[slot].set_value(value);
  for (const std::string& m : t.missing) state.add_missing_slots(m);
}

}  // namespace

absl::StatusOr<TextFormat> ParseTextFormat(absl::string_view name) {
  if (name == "sgd") return TextFormat::kSgd;
  if (name == "multiwoz21") return TextFormat::kMultiwoz21;
  if (name == "taskmaster") return TextFormat::kTaskmaster;
  if (name == "bitext") return TextFormat::kBitext;
  if (name == "camrest") return TextFormat::kCamrest;
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown format '", name, "' (expected sgd, multiwoz21, taskmaster, bitext or camrest)"));
}

absl::string_view TextFormatName(TextFormat format) {
  switch (format) {
    case TextFormat::kSgd: return "sgd";
    case TextFormat::kMultiwoz21: return "multiwoz21";
    case TextFormat::kTaskmaster: return "taskmaster";
    case TextFormat::kBitext: return "bitext";
    case TextFormat::kCamrest: return "camrest";
  }
  return "";
}

std::string TrainingExample::Text() const { return absl::StrCat(prompt, reply, kEndOfText); }

std::string InsertPlaceholders(absl::string_view reply,
                               const std::map<std::string, std::string>& slots) {
  std::vector<std::pair<std::string, std::string>> values;  // (lower value, slot)
  for (const auto& [slot, value] : slots) {
    const std::string v = absl::AsciiStrToLower(absl::StripAsciiWhitespace(value));
    if (v.empty() || v == "dontcare" || v == "none" || v == "?") continue;
    values.emplace_back(v, slot);
  }
  std::stable_sort(values.begin(), values.end(),
                   [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  std::string text(reply);
  for (const auto& [value, slot] : values) {
    std::string lower = absl::AsciiStrToLower(text);
    std::string out;
    size_t pos = 0, from = 0;
    while ((pos = lower.find(value, from)) != std::string::npos) {
      const size_t end = pos + value.size();
      const bool left_ok = pos == 0 || !IsWordByte(lower[pos - 1]);
      const bool right_ok = end == lower.size() || !IsWordByte(lower[end]);
      // Never inside an earlier placeholder.
      const size_t open = lower.rfind("{{", pos), close = lower.rfind("}}", pos);
      const bool inside = open != std::string::npos && (close == std::string::npos || close < open);
      if (left_ok && right_ok && !inside) {
        absl::StrAppend(&out, absl::string_view(text).substr(from, pos - from), "{{", slot, "}}");
      } else {
        absl::StrAppend(&out, absl::string_view(text).substr(from, end - from));
      }
      from = end;
    }
    out.append(text.substr(from));
    text = std::move(out);
  }
  return text;
}

std::vector<TextDialogue> FromDialogueDataset(const nlu::data::DialogueDataset& data,
                                              const TextOptions& options) {
  using nlu::data::Speaker;
  const bool multiwoz = data.format == "multiwoz21";
  const TextFormat format = multiwoz ? TextFormat::kMultiwoz21 : TextFormat::kSgd;
  std::vector<TextDialogue> out;
  for (const nlu::data::Dialogue& d : data.dialogues) {
    TextDialogue dialogue;
    dialogue.origin = absl::StrCat(data.origin, ":", d.id);
    std::string description;
    if (!multiwoz && !d.services.empty()) {
      if (const auto* s = data.FindService(d.services[0])) description = s->description;
    }
    dialogue.system_prompt =
        options.system_prompt.empty() ? DefaultSystemPrompt(format, description) : options.system_prompt;
    const nlu::data::Turn* user = nullptr;
    for (const nlu::data::Turn& turn : d.turns) {
      if (turn.speaker == Speaker::kUser) {
        user = &turn;
        continue;
      }
      if (user == nullptr) continue;  // an agent line before any customer line
      TextTurn t;
      t.user = multiwoz ? Detokenize(user->utterance) : user->utterance;
      t.agent = multiwoz ? Detokenize(turn.utterance) : turn.utterance;
      if (multiwoz) {
        for (const nlu::data::Frame& f : user->frames) {
          if (t.intent.empty() && !f.actions.empty()) t.intent = f.service;
          if (!f.has_state) continue;
          for (const auto& [slot, values] : f.state.slot_values) {
            if (!values.empty()) t.slots[SnakeCase(absl::StrCat(f.service, "_", slot))] = values[0];
          }
        }
      } else {
        // The frame of the service the user is busy with: the first with an active intent.
        const nlu::data::Frame* frame = nullptr;
        for (const nlu::data::Frame& f : user->frames) {
          if (!f.has_state) continue;
          if (frame == nullptr || (frame->state.active_intent == "NONE" && f.state.active_intent != "NONE")) {
            frame = &f;
          }
        }
        if (frame != nullptr) {
          if (frame->state.active_intent != "NONE") t.intent = frame->state.active_intent;
          for (const auto& [slot, values] : frame->state.slot_values) {
            if (!values.empty()) t.slots[slot] = values[0];
          }
          if (const auto* service = data.FindService(frame->service)) {
            for (const auto& intent : service->intents) {
              if (intent.name != frame->state.active_intent) continue;
              for (const std::string& slot : intent.required_slots) {
                if (!t.slots.count(slot)) t.missing.push_back(slot);
              }
            }
          }
        }
      }
      dialogue.turns.push_back(std::move(t));
      user = nullptr;
    }
    out.push_back(std::move(dialogue));
  }
  return out;
}

absl::StatusOr<std::vector<TextDialogue>> ParseTaskmaster(absl::string_view content,
                                                          const std::string& origin,
                                                          const TextOptions& options) {
  absl::StatusOr<json> doc = ParseJson(content, origin);
  if (!doc.ok()) return doc.status();
  if (!doc->is_array()) return nlu::data::internal::FileError(origin, "expected a JSON array of dialogues");
  const std::string system =
      options.system_prompt.empty() ? DefaultSystemPrompt(TextFormat::kTaskmaster, "") : options.system_prompt;
  std::vector<TextDialogue> out;
  for (size_t i = 0; i < doc->size(); ++i) {
    const json& d = (*doc)[i];
    const std::string where = absl::StrCat("[", i, "]");
    if (!d.is_object() || !d.contains("utterances") || !d["utterances"].is_array()) {
      return nlu::data::internal::FileError(origin, absl::StrCat(where, ": 'utterances' missing"));
    }
    TextDialogue dialogue;
    dialogue.origin = absl::StrCat(origin, ":", d.value("conversation_id", where));
    dialogue.system_prompt = system;
    std::map<std::string, std::string> state;
    std::string user, agent;
    auto flush = [&] {
      if (!user.empty() && !agent.empty()) {
        TextTurn t;
        t.user = user;
        t.agent = agent;
        t.intent = "order_drink";
        t.slots = state;
        dialogue.turns.push_back(std::move(t));
      }
      user.clear();
      agent.clear();
    };
    const json& utts = d["utterances"];
    for (size_t k = 0; k < utts.size(); ++k) {
      const json& u = utts[k];
      if (!u.is_object() || !u.contains("speaker") || !u["speaker"].is_string() || !u.contains("text") ||
          !u["text"].is_string()) {
        return nlu::data::internal::FileError(
            origin, absl::StrCat(where, ".utterances[", k, "]: 'speaker' or 'text' missing"));
      }
      const std::string speaker = u["speaker"].get<std::string>();
      const std::string text = generation::reply::CollapseWhitespace(u["text"].get<std::string>());
      if (speaker == "user") {
        if (!agent.empty()) flush();
        absl::StrAppend(&user, user.empty() ? "" : " ", text);
      } else if (speaker == "assistant") {
        absl::StrAppend(&agent, agent.empty() ? "" : " ", text);
      } else {
        return nlu::data::internal::FileError(
            origin, absl::StrCat(where, ".utterances[", k, "]: unknown speaker '", speaker, "'"));
      }
      // The API requests and responses annotated on this utterance join the state.
      if (u.contains("annotations") && u["annotations"].is_array()) {
        for (const json& a : u["annotations"]) {
          if (!a.is_object() || !a.contains("name") || !a.contains("value") || !a["value"].is_string()) continue;
          const std::string name = a["name"].is_string() ? a["name"].get<std::string>() : "";
          if (name != "request" && name != "response") continue;
          const std::string value = a["value"].get<std::string>();
          const json fields = json::parse(value, nullptr, /*allow_exceptions=*/false);
          if (!fields.is_object()) continue;
          for (const auto& [key, v] : fields.items()) {
            if (absl::EndsWith(key, "item_id")) continue;
            if (v.is_string() && !v.get<std::string>().empty()) {
              state[SnakeCase(key)] = v.get<std::string>();
            } else if (v.is_number()) {
              state[SnakeCase(key)] = v.dump();
            }
          }
        }
      }
    }
    flush();
    out.push_back(std::move(dialogue));
  }
  return out;
}

absl::StatusOr<std::vector<TextDialogue>> ParseBitext(absl::string_view content,
                                                      const std::string& origin,
                                                      const TextOptions& options) {
  const std::string system =
      options.system_prompt.empty() ? DefaultSystemPrompt(TextFormat::kBitext, "") : options.system_prompt;
  std::vector<TextDialogue> out;
  size_t line_no = 0;
  for (absl::string_view line : absl::StrSplit(content, '\n')) {
    ++line_no;
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    const json row = json::parse(line.begin(), line.end(), nullptr, /*allow_exceptions=*/false);
    if (row.is_discarded() || !row.is_object()) {
      return nlu::data::internal::LineError(origin, line_no, "not a JSON object");
    }
    if (!row.contains("instruction") || !row["instruction"].is_string() || !row.contains("response") ||
        !row["response"].is_string()) {
      return nlu::data::internal::LineError(origin, line_no,
                                            "'instruction' or 'response' missing or not a string");
    }
    TextDialogue d;
    d.origin = absl::StrCat(origin, ":", line_no);
    d.system_prompt = system;
    TextTurn t;
    t.user = NormalizeBitextPlaceholders(row["instruction"].get<std::string>());
    t.agent = NormalizeBitextPlaceholders(row["response"].get<std::string>());
    d.turns.push_back(std::move(t));
    out.push_back(std::move(d));
  }
  return out;
}

absl::StatusOr<std::vector<TextDialogue>> ParseCamrest(absl::string_view content,
                                                       const std::string& origin,
                                                       const TextOptions& options) {
  absl::StatusOr<json> doc = ParseJson(content, origin);
  if (!doc.ok()) return doc.status();
  if (!doc->is_array()) return nlu::data::internal::FileError(origin, "expected a JSON array of dialogues");
  const std::string system =
      options.system_prompt.empty() ? DefaultSystemPrompt(TextFormat::kCamrest, "") : options.system_prompt;
  std::vector<TextDialogue> out;
  for (size_t i = 0; i < doc->size(); ++i) {
    const json& d = (*doc)[i];
    const std::string where = absl::StrCat("[", i, "]");
    if (!d.is_object() || !d.contains("dial") || !d["dial"].is_array()) {
      return nlu::data::internal::FileError(origin, absl::StrCat(where, ": 'dial' missing"));
    }
    TextDialogue dialogue;
    dialogue.origin = absl::StrCat(origin, ":", where);
    dialogue.system_prompt = system;
    for (size_t k = 0; k < d["dial"].size(); ++k) {
      const json& turn = d["dial"][k];
      const std::string tw = absl::StrCat(where, ".dial[", k, "]");
      if (!turn.is_object() || !turn.contains("usr") || !turn.contains("sys") ||
          !turn["usr"].is_object() || !turn["sys"].is_object() ||
          !turn["usr"].contains("transcript") || !turn["usr"]["transcript"].is_string() ||
          !turn["sys"].contains("sent") || !turn["sys"]["sent"].is_string()) {
        return nlu::data::internal::FileError(origin,
                                              absl::StrCat(tw, ": 'usr.transcript' or 'sys.sent' missing"));
      }
      TextTurn t;
      t.user = turn["usr"]["transcript"].get<std::string>();
      t.agent = turn["sys"]["sent"].get<std::string>();
      t.intent = "find_restaurant";
      if (turn["usr"].contains("slu") && turn["usr"]["slu"].is_array()) {
        for (const json& act : turn["usr"]["slu"]) {
          if (!act.is_object() || act.value("act", "") != "inform" || !act.contains("slots") ||
              !act["slots"].is_array()) {
            continue;
          }
          for (const json& pair : act["slots"]) {
            if (pair.is_array() && pair.size() == 2 && pair[0].is_string() && pair[1].is_string()) {
              t.slots[SnakeCase(pair[0].get<std::string>())] = pair[1].get<std::string>();
            }
          }
        }
      }
      dialogue.turns.push_back(std::move(t));
    }
    out.push_back(std::move(dialogue));
  }
  return out;
}

absl::StatusOr<std::vector<TextDialogue>> ReadTextDialogues(const std::string& path,
                                                            TextFormat format,
                                                            const TextOptions& options) {
  nlu::data::ReadOptions read;
  read.split = options.split;
  if (format == TextFormat::kSgd || format == TextFormat::kMultiwoz21) {
    absl::StatusOr<nlu::data::DialogueDataset> data = nlu::data::ReadDialogues(
        path, format == TextFormat::kSgd ? nlu::data::Format::kSgd : nlu::data::Format::kMultiwoz21, read);
    if (!data.ok()) return data.status();
    return FromDialogueDataset(*data, options);
  }
  const absl::string_view ext = format == TextFormat::kBitext ? ".jsonl" : ".json";
  absl::StatusOr<nlu::data::internal::SplitFile> file =
      nlu::data::internal::ResolveSplitFile(path, ext, read);
  if (!file.ok()) return file.status();
  absl::StatusOr<std::string> content = nlu::data::ReadFileContent(file->path);
  if (!content.ok()) return content.status();
  switch (format) {
    case TextFormat::kTaskmaster: return ParseTaskmaster(*content, file->path, options);
    case TextFormat::kBitext: return ParseBitext(*content, file->path, options);
    case TextFormat::kCamrest: return ParseCamrest(*content, file->path, options);
    default: break;
  }
  return absl::InternalError("unreachable format");
}

std::shared_ptr<const domain::Domain> PromptDomain(const std::string& system_prompt) {
  auto domain = std::make_shared<domain::Domain>();
  domain->name = "training";
  domain->languages = {"en"};
  domain->system_prompt["en"] = system_prompt;
  return domain;
}

namespace {

// The whole prompt of a context, untrimmed: system part, every history turn, this turn.
std::string RenderPrompt(const generation::reply::PromptBuilder& builder,
                         const generation::v1::GenerationContext& context) {
  std::string prompt = builder.SystemPart("en");
  for (const common::v1::Turn& turn : context.history()) prompt += builder.HistoryPart(turn, "en");
  return prompt + builder.TurnPart(context, "en");
}

// One prompt builder per distinct system prompt (a domain carries the prompt). The token
// counter is never used: the examples are not trimmed to a budget here.
class Builders {
 public:
  absl::StatusOr<const generation::reply::PromptBuilder*> For(const std::string& system) {
    auto it = builders_.find(system);
    if (it != builders_.end()) return it->second.get();
    absl::StatusOr<std::unique_ptr<const generation::reply::PromptBuilder>> b =
        generation::reply::PromptBuilder::Create(
            PromptDomain(system), generation::reply::PromptFormat{},
            generation::reply::PromptOptions{}, [](absl::string_view text) { return text.size(); });
    if (!b.ok()) return b.status();
    return (builders_[system] = std::move(*b)).get();
  }

 private:
  std::map<std::string, std::unique_ptr<const generation::reply::PromptBuilder>> builders_;
};

// Renders every example of `dialogues` and hands each to `emit` with its record fields.
// One loop for the training text and the evaluation records, so they cannot differ.
absl::Status RenderEach(
    const std::vector<TextDialogue>& dialogues, const TextOptions& options,
    const std::function<void(TrainingExample, const TextDialogue&, generation::v1::GenerationContext,
                             std::string reference)>& emit) {
  namespace reply = generation::reply;
  Builders builders;
  for (const TextDialogue& d : dialogues) {
    absl::StatusOr<const reply::PromptBuilder*> builder = builders.For(d.system_prompt);
    if (!builder.ok()) return builder.status();
    for (size_t i = 0; i < d.turns.size(); ++i) {
      const TextTurn& t = d.turns[i];
      const std::string user = reply::CollapseWhitespace(t.user);
      std::string agent = reply::CollapseWhitespace(t.agent);
      if (user.empty() || agent.empty()) continue;
      if (options.max_reply_bytes > 0 && agent.size() > options.max_reply_bytes) continue;
      TrainingExample ex;
      ex.origin = absl::StrCat(d.origin, "#", i);
      generation::v1::GenerationContext context;
      const size_t first = i > static_cast<size_t>(std::max(0, options.max_history_turns))
                                ? i - static_cast<size_t>(options.max_history_turns)
                                : 0;
      // History turns carry their state, as the gateway stores them: each is rendered as
      // it was prompted, so an example's prompt extends the previous example's prompt+reply.
      for (size_t h = first; h < i; ++h) {
        common::v1::Turn& turn = *context.add_history();
        turn.set_index(static_cast<uint32_t>(h));
        turn.set_user_text(d.turns[h].user);
        turn.set_reply(d.turns[h].agent);
        turn.set_intent(d.turns[h].intent);
        FillState(d.turns[h], *turn.mutable_state());
      }
      context.set_user_text(t.user);
      context.set_language("en");
      context.set_cache_key(d.origin);
      FillState(t, *context.mutable_state());
      ex.prompt = RenderPrompt(**builder, context);
      ex.reply = absl::StrCat(" ", options.placeholders ? InsertPlaceholders(agent, t.slots) : agent);
      emit(std::move(ex), d, std::move(context), std::move(agent));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<TrainingExample>> RenderExamples(
    const std::vector<TextDialogue>& dialogues, const TextOptions& options) {
  std::vector<TrainingExample> out;
  absl::Status s = RenderEach(dialogues, options,
                              [&out](TrainingExample ex, const TextDialogue&,
                                     generation::v1::GenerationContext, std::string) {
                                out.push_back(std::move(ex));
                              });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::vector<ExampleRecord>> RenderExampleRecords(
    const std::vector<TextDialogue>& dialogues, const TextOptions& options) {
  std::vector<ExampleRecord> out;
  absl::Status s = RenderEach(
      dialogues, options,
      [&out](TrainingExample ex, const TextDialogue& d, generation::v1::GenerationContext context,
             std::string reference) {
        ExampleRecord r;
        r.example = std::move(ex);
        r.system_prompt = d.system_prompt;
        r.context = std::move(context);
        r.reference = std::move(reference);
        out.push_back(std::move(r));
      });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::vector<ExampleRecord>> ReadExampleRecords(const std::string& path,
                                                              TextFormat format,
                                                              const TextOptions& options) {
  absl::StatusOr<std::vector<TextDialogue>> dialogues = ReadTextDialogues(path, format, options);
  if (!dialogues.ok()) return dialogues.status();
  return RenderExampleRecords(*dialogues, options);
}

generation::reply::ExemplarIndex MakeExemplarIndex(const std::vector<ExampleRecord>& pool) {
  std::vector<generation::reply::ExemplarIndex::Entry> entries;
  entries.reserve(pool.size());
  for (const ExampleRecord& r : pool) {
    entries.push_back({generation::reply::RetrievalKey(r.context),
                       std::string(absl::StripLeadingAsciiWhitespace(r.example.reply)),
                       r.context.cache_key(), !r.context.history().empty()});
  }
  return generation::reply::ExemplarIndex(std::move(entries));
}

absl::Status AddExemplars(std::vector<ExampleRecord>& records,
                          const std::vector<ExampleRecord>& pool, const ExemplarOptions& options) {
  if (!(options.drop_share >= 0.0 && options.drop_share <= 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("exemplar drop share ", options.drop_share, " is not in [0, 1]"));
  }
  const generation::reply::ExemplarIndex index = MakeExemplarIndex(pool);
  Builders builders;
  for (ExampleRecord& r : records) {
    // FNV-1a of the seed and the origin: the same examples go without, run after run.
    uint64_t h = 1469598103934665603ull ^ options.seed;
    for (unsigned char c : r.example.origin) h = (h ^ c) * 1099511628211ull;
    const double u = static_cast<double>(h >> 11) / static_cast<double>(1ull << 53);
    std::vector<const std::string*> nearest;
    if (u >= options.drop_share) {
      nearest = index.FindNearest(r.context, 1 + options.similar_replies, r.context.cache_key());
    }
    generation::reply::SetExemplars(nearest, r.context);
    absl::StatusOr<const generation::reply::PromptBuilder*> builder = builders.For(r.system_prompt);
    if (!builder.ok()) return builder.status();
    r.example.prompt = RenderPrompt(**builder, r.context);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<TrainingExample>> ReadTrainingExamples(const std::string& path,
                                                                  TextFormat format,
                                                                  const TextOptions& options) {
  absl::StatusOr<std::vector<TextDialogue>> dialogues = ReadTextDialogues(path, format, options);
  if (!dialogues.ok()) return dialogues.status();
  return RenderExamples(*dialogues, options);
}

absl::StatusOr<std::vector<TrainingExample>> WeightExamples(std::vector<TrainingExample> examples,
                                                            double w) {
  if (!(w >= 0.0) || !std::isfinite(w)) {
    return absl::InvalidArgumentError(absl::StrCat("weight ", w, " is not a number >= 0"));
  }
  if (w == 1.0) return examples;
  std::vector<TrainingExample> out;
  out.reserve(static_cast<size_t>(static_cast<double>(examples.size()) * w) + 1);
  for (size_t i = 0; i < examples.size(); ++i) {
    const double before = std::floor(static_cast<double>(i) * w);
    const double after = std::floor(static_cast<double>(i + 1) * w);
    for (double k = before; k < after; k += 1.0) out.push_back(examples[i]);
  }
  return out;
}

absl::Status WriteTrainingText(const std::vector<TrainingExample>& examples,
                               const std::string& path) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  for (const TrainingExample& e : examples) out << e.Text() << '\n';
  out.close();
  if (!out) return absl::InternalError(absl::StrCat(path, ": write failed"));
  return absl::OkStatus();
}

}  // namespace helpline::train
