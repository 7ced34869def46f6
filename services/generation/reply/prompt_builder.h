// Builds the model's prompt for a turn from the GenerationContext the gateway sends and the
// domain, under a token budget.
//
// Layout (default PromptFormat; one utterance per line, whitespace folded):
//
//   <system prompt of the domain in the reply language>\n          stable
//   Intent: / Known: / Missing: lines of history[0].state\n         stable: rendered the
//   Customer: <history[0].user_text>\n                              same way every turn
//   Agent: <history[0].reply>\n                                     (state lines only when
//   ...                                                             the turn carries one)
//   Intent: <active intent or "none">\n                             this turn
//   Known: <slot>=<value>, ... (domain slot order) or "none"\n
//   Missing: <required slots of the intent still empty> or "none"\n
//   Confirmation: pending|confirmed|declined\n                      only for a transactional
//                                                                   intent the tracker
//                                                                   confirms (state.confirmation)
//   Handover: yes\n                                                 only when escalating
//   Evidence: (<source>) <text>\n                                   one per attachment
//   Example: <context.exemplar>\n                                    only with an exemplar
//   Customer: <user_text>\n
//   Agent:                                                          the cue, no space
//
// Stable parts come first and the per-turn part last, so the prompt of turn k+1 starts
// with the whole stable part of turn k's prompt (system prompt + history), which the
// engine's session prefix cache can reuse. With history turns that carry their state, turn
// k+1's prompt even starts with the whole prompt of turn k followed by its reply (unless
// turn k had evidence, which history does not keep), so only the new turn is prefilled. That holds token for token, not only as text,
// because every part ends with "\n" and every label starts with a non-space character: a
// GPT-2 pre-tokenizer then splits at each part boundary the same way whatever follows.
// Create() refuses labels that would break this.
//
// Trimming: when the prompt does not fit max_prompt_tokens, history turns are dropped from
// the oldest. With history_alignment g > 1 the first kept turn is always one whose
// Turn.index is a multiple of g (so the start of the prompt, and the cached prefix, moves
// only every g turns, not every turn). When even the system prompt and this turn do not
// fit, the exemplar line is left out; when that does not fit either: INVALID_ARGUMENT naming
// context.user_text.
//
// Thread-safe after construction (const methods only).
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/domain/domain.h"
#include "helpline/generation/v1/generation_service.pb.h"

namespace helpline::generation::reply {

// Counts the model tokens of a text (the real BPE tokenizer in production). Must be
// thread-safe if the builder is shared across threads.
using TokenCounter = std::function<size_t(absl::string_view)>;

// Labels and layout of the prompt. The model trained for Helpline is trained on exactly
// this layout; change it only together with the training data. Every label must be
// non-empty and start with a non-whitespace character.
struct PromptFormat {
  std::string customer_label = "Customer:";
  std::string agent_label = "Agent:";
  std::string intent_label = "Intent:";
  std::string known_label = "Known:";
  std::string missing_label = "Missing:";
  std::string escalate_label = "Handover:";
  // Where a transactional intent stands with the customer's yes (state.confirmation): the
  // reply asks to confirm (pending), says it is done (confirmed) or that nothing was done
  // (declined). Absent when unset, so prompts of training data without it do not change.
  std::string confirmation_label = "Confirmation:";
  std::string evidence_label = "Evidence:";
  // The reply of a similar past turn (context.exemplar), which the model may follow.
  std::string exemplar_label = "Example:";
  // Written where there is no intent, no filled slot or nothing missing.
  std::string none_value = "none";
  // Between "slot=value" items and between missing slot names.
  std::string list_separator = ", ";
  // After the system prompt: "\n" or "\n\n" (a blank line). Must end with "\n".
  std::string system_suffix = "\n";
  // Render enum slot values as their label in the reply language ("it arrived damaged")
  // instead of the canonical value ("damaged").
  bool enum_labels = false;
  // Write "<intent_label> <turn.intent>" before each history turn too.
  bool history_intents = false;
  // Longest evidence text per attachment, in bytes (cut at a character boundary).
  size_t max_evidence_bytes = 1000;
  // Longest exemplar, in bytes (cut at a character boundary).
  size_t max_exemplar_bytes = 1000;
};

// The stop sequences a model needs with this format: "\n" (a reply is one line; after it
// come the next turn's lines — Intent:, Known:, Customer: — which the model must not write).
std::vector<std::string> FormatStopSequences(const PromptFormat& format);

struct PromptOptions {
  // See "Trimming" above; 1 (or 0) drops exactly as many of the oldest turns as needed.
  size_t history_alignment = 1;
};

struct BuiltPrompt {
  std::string text;
  // Tokens of `text` by the builder's counter.
  size_t tokens = 0;
  // Bytes of `text` that are the stable part (system prompt + history); the rest is this
  // turn's part. text.substr(0, stable_bytes) is a prefix of the next turn's prompt when
  // no history turn is dropped in between.
  size_t stable_bytes = 0;
  // The reply language (ResolveLanguage of the context's language and state).
  std::string language;
  size_t history_turns_kept = 0;
  size_t history_turns_dropped = 0;
  // The context had an exemplar but the turn did not fit with it: the prompt has none.
  bool exemplar_dropped = false;
};

class PromptBuilder {
 public:
  // INVALID_ARGUMENT "format.<field>: ..." for a label that is empty or starts with
  // whitespace, a system_suffix not ending in "\n", or a missing counter ("count_tokens").
  static absl::StatusOr<std::unique_ptr<const PromptBuilder>> Create(
      std::shared_ptr<const domain::Domain> domain, PromptFormat format, PromptOptions options,
      TokenCounter count_tokens);

  // Builds the prompt for `context` in at most `max_prompt_tokens` tokens (the model's
  // context minus the tokens to generate). INVALID_ARGUMENT "context.user_text: ..." when
  // the system prompt and this turn alone are over the budget. Does not block.
  absl::StatusOr<BuiltPrompt> Build(const v1::GenerationContext& context,
                                    size_t max_prompt_tokens) const;

  // The parts, public for tests and for tools that must write the same lines (training
  // data). SystemPart and HistoryPart end with "\n"; TurnPart ends with the cue (the agent
  // label, no space after it).
  std::string SystemPart(absl::string_view language) const;
  // A past turn. A turn that carries its state (Turn.state, set by the gateway) is written
  // as it was prompted — its state lines, then the customer and agent lines — so that the
  // prompt of turn k+1 starts with the prompt of turn k plus its reply; without a state
  // only the customer and agent lines (and the intent with history_intents).
  std::string HistoryPart(const common::v1::Turn& turn, absl::string_view language = "") const;
  std::string TurnPart(const v1::GenerationContext& context, absl::string_view language,
                       bool with_exemplar = true) const;
  // The state lines (intent, known, missing, handover) and the evidence lines.
  std::string StatePart(const common::v1::DialogueState& state,
                        const google::protobuf::RepeatedPtrField<common::v1::Evidence>& evidence,
                        absl::string_view language) const;

  const PromptFormat& format() const { return format_; }

 private:
  PromptBuilder(std::shared_ptr<const domain::Domain> domain, PromptFormat format,
                PromptOptions options, TokenCounter count_tokens);

  // "<label> <text>\n" with text whitespace-folded; "<label>\n" when text is empty.
  std::string Line(absl::string_view label, absl::string_view text) const;

  std::shared_ptr<const domain::Domain> domain_;
  PromptFormat format_;
  PromptOptions options_;
  TokenCounter count_tokens_;
};

}  // namespace helpline::generation::reply
