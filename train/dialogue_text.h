// Training text for the reply model: dialogues of the public data sets turned into examples
// laid out exactly like the serving prompt (services/generation/reply/prompt_builder.h),
// followed by the agent's reply and the end-of-text token:
//
//   <system prompt>\n                          PromptBuilder::SystemPart
//   Intent/Known/Missing of an earlier turn     PromptBuilder::HistoryPart, per earlier turn
//   Customer: ...\nAgent: ...\n                 (with its state, as the gateway stores it)
//   Intent: ...\nKnown: ...\nMissing: ...\n     PromptBuilder::TurnPart (state of this turn,
//   Customer: <this turn>\nAgent:                the customer's line, the agent cue)
//    <reply with {{slot}} placeholders><|endoftext|>
//
// The lines come from the PromptBuilder itself (same labels, same whitespace folding, same
// slot order), so training and serving prompts cannot drift apart. In the target reply, a
// word-bounded occurrence of a state slot value (case-insensitive, longest value first) is
// replaced by {{slot}}, which the serving filter fills from the state again. History
// replies keep their values (at serving time the history holds the filled replies).
//
// Formats (as laid out in shared/data; see each README there):
//   sgd          split folder(s) of dialogues_*.json[.gz] + schema.json (nlu/data reader);
//                intent = the active intent, Known = the frame's slot values, Missing =
//                the intent's required slots without a value (schema)
//   multiwoz21   ConvLab-2 JSON[.gz] (nlu/data reader); intent = the domain of the user's
//                acts, Known = <domain>_<slot> of every domain's belief state; the
//                pre-tokenized text is detokenized ("stars ." -> "stars.")
//   taskmaster   Taskmaster-4 JSON array[.gz]; intent "order_drink", Known = the scalar
//                fields of the API calls and responses annotated so far (ids of menu items
//                left out)
//   bitext       JSON Lines {"instruction", "response"}; one turn, intent and Known "none";
//                Bitext's {{Order Number}} placeholders become {{order_number}}
//   camrest      ConvLab-2 CamRest676 JSON array; intent "find_restaurant", Known = the
//                cumulative inform slots of usr.slu
//
// Errors: NOT_FOUND for a missing path; INVALID_ARGUMENT naming the file and the line (JSON
// Lines: the line; JSON: the line of the syntax error, or the entry of a missing field).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/domain/domain.h"
#include "helpline/generation/v1/generation_service.pb.h"
#include "nlu/data/dataset.h"
#include "services/generation/reply/retrieval.h"

namespace helpline::train {

enum class TextFormat { kSgd, kMultiwoz21, kTaskmaster, kBitext, kCamrest };

// "sgd", "multiwoz21", "taskmaster", "bitext", "camrest"; INVALID_ARGUMENT listing them.
absl::StatusOr<TextFormat> ParseTextFormat(absl::string_view name);
absl::string_view TextFormatName(TextFormat format);

struct TextOptions {
  // Split to read where the path holds several ("train", "dev"; camrest's "val" = "dev").
  // A path that is one file is read whatever this says.
  std::string split = "train";
  // Earlier turns kept before this turn (the most recent ones).
  int max_history_turns = 3;
  // System prompt of every example; "" picks the data set's default (see the .cc).
  std::string system_prompt;
  // Replace state slot values in the target reply with {{slot}}.
  bool placeholders = true;
  // Longest reply kept, in bytes (longer replies are skipped); 0: no limit.
  size_t max_reply_bytes = 1200;
};

// One dialogue turn in a data-set-neutral form.
struct TextTurn {
  std::string user;
  std::string agent;
  std::string intent;                        // "" = none
  std::map<std::string, std::string> slots;  // the state after the user's line
  std::vector<std::string> missing;          // required slots still empty
};

struct TextDialogue {
  std::string origin;  // "train.jsonl:12", "dialogues_001.json:1_00000"
  std::string system_prompt;
  std::vector<TextTurn> turns;
};

struct TrainingExample {
  std::string origin;
  std::string prompt;  // ends with the agent cue "Agent:"
  std::string reply;   // " " + reply text (placeholders applied)

  // prompt + reply + "<|endoftext|>".
  std::string Text() const;
};

inline constexpr absl::string_view kEndOfText = "<|endoftext|>";

// One example as a structured record, for evaluation (tools/eval generation): what the
// gateway would send the generation service for this turn, and what the agent answered.
struct ExampleRecord {
  // The rendered training example (prompt and target reply with placeholders).
  TrainingExample example;
  // The dialogue's system prompt (PromptDomain(system_prompt) renders the same prompt).
  std::string system_prompt;
  // This turn's context: state (intent, slot values, missing slots), user_text, language
  // "en", cache_key = the dialogue's origin, and the earlier turns of the prompt as history
  // (each with its state and its reply as the data has it). A PromptBuilder over
  // PromptDomain(system_prompt) builds example.prompt from it when nothing is trimmed.
  generation::v1::GenerationContext context;
  // The agent's reply as the data has it (whitespace folded, slot values, no placeholders).
  std::string reference;
};

// Reads a data set and renders its examples (one per agent turn with a customer line).
absl::StatusOr<std::vector<TrainingExample>> ReadTrainingExamples(const std::string& path,
                                                                  TextFormat format,
                                                                  const TextOptions& options);

// The steps, public for tests.
absl::StatusOr<std::vector<TextDialogue>> ReadTextDialogues(const std::string& path,
                                                            TextFormat format,
                                                            const TextOptions& options);
// From an nlu/data dialogue set (sgd or multiwoz21).
std::vector<TextDialogue> FromDialogueDataset(const nlu::data::DialogueDataset& data,
                                              const TextOptions& options);
// Parsers of the formats nlu/data does not read; `origin` names the file in errors.
absl::StatusOr<std::vector<TextDialogue>> ParseTaskmaster(absl::string_view content,
                                                          const std::string& origin,
                                                          const TextOptions& options);
absl::StatusOr<std::vector<TextDialogue>> ParseBitext(absl::string_view content,
                                                      const std::string& origin,
                                                      const TextOptions& options);
absl::StatusOr<std::vector<TextDialogue>> ParseCamrest(absl::string_view content,
                                                       const std::string& origin,
                                                       const TextOptions& options);
absl::StatusOr<std::vector<TrainingExample>> RenderExamples(
    const std::vector<TextDialogue>& dialogues, const TextOptions& options);

// Like ReadTrainingExamples / RenderExamples, with each example's structured record. The
// examples are the same, in the same order.
absl::StatusOr<std::vector<ExampleRecord>> ReadExampleRecords(const std::string& path,
                                                              TextFormat format,
                                                              const TextOptions& options);
absl::StatusOr<std::vector<ExampleRecord>> RenderExampleRecords(
    const std::vector<TextDialogue>& dialogues, const TextOptions& options);

// Exemplars (services/generation/reply/retrieval.h) in the examples' prompts.
struct ExemplarOptions {
  // Share of the examples shown no exemplar, so that the model also answers without one
  // (a domain with no past dialogues); chosen by a hash of the example's origin and the seed.
  double drop_share = 0.2;
  uint64_t seed = 1;
  // How many next-nearest pool replies each record with an exemplar also gets as
  // context.similar_replies (the reply chooser's extra references; not in the prompt).
  size_t similar_replies = 0;
};

// Gives each record, as context.exemplar, the target reply (with its {{slot}} placeholders)
// of the pool example nearest by reply::RetrievalKey, leaving out the pool examples of the
// record's own dialogue (context.cache_key), and renders example.prompt again with it. With
// the records' own split as the pool that is leave-one-dialogue-out (training text); other
// splits take the train split as the pool, as serving would. `records` may be `pool` itself.
// With options.similar_replies k, the next k nearest replies go to context.similar_replies.
// INVALID_ARGUMENT for a drop share outside [0, 1].
absl::Status AddExemplars(std::vector<ExampleRecord>& records,
                          const std::vector<ExampleRecord>& pool, const ExemplarOptions& options);

// The exemplar index of a pool: each example's key, target reply (placeholders kept, no
// leading space) and dialogue.
generation::reply::ExemplarIndex MakeExemplarIndex(const std::vector<ExampleRecord>& pool);

// The domain the examples' prompts are rendered with: name "training", language "en", the
// system prompt, no slots or intents (so Known lists slots by name and Missing is the
// state's missing_slots, as in the data).
std::shared_ptr<const domain::Domain> PromptDomain(const std::string& system_prompt);

// `reply` with every word-bounded, case-insensitive occurrence of a slot value replaced by
// {{slot}} (longest values first; "dontcare"/"none" and empty values ignored).
std::string InsertPlaceholders(absl::string_view reply,
                               const std::map<std::string, std::string>& slots);

// The examples of one data set weighted in a mix: example i appears
// floor((i + 1) w) - floor(i w) times, consecutively, so w = 4 gives every example four times,
// w = 0.5 every second one (the 2nd, 4th, ...), w = 1 the examples as they are. Used to give
// small data sets more weight in a training text than their size. INVALID_ARGUMENT when w is
// negative or not finite.
absl::StatusOr<std::vector<TrainingExample>> WeightExamples(std::vector<TrainingExample> examples,
                                                            double w);

// Writes the examples' texts, each followed by "\n" (the trainer drops one "\n" after
// every "<|endoftext|>"). INTERNAL naming the file on a write error.
absl::Status WriteTrainingText(const std::vector<TrainingExample>& examples,
                               const std::string& path);

}  // namespace helpline::train
