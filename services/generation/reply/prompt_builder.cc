#include "services/generation/reply/prompt_builder.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/domain/template.h"
#include "services/generation/reply/reply_text.h"

namespace helpline::generation::reply {
namespace {

// The longest prefix of `s` of at most `max_bytes` that does not split a UTF-8 sequence.
absl::string_view Utf8Prefix(absl::string_view s, size_t max_bytes) {
  if (s.size() <= max_bytes) return s;
  size_t end = max_bytes;
  while (end > 0 && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80) --end;
  return s.substr(0, end);
}

absl::Status CheckLabel(absl::string_view field, absl::string_view label) {
  if (label.empty()) return absl::InvalidArgumentError(absl::StrCat("format.", field, ": empty"));
  if (absl::ascii_isspace(static_cast<unsigned char>(label.front()))) {
    // A leading space would merge with the "\n" before it in a GPT-2 pre-tokenizer, so the
    // previous part would no longer end on a token boundary.
    return absl::InvalidArgumentError(
        absl::StrCat("format.", field, ": must not start with whitespace"));
  }
  if (label.find('\n') != absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("format.", field, ": must be one line"));
  }
  return absl::OkStatus();
}

// The Confirmation: line's value; empty when there is nothing to confirm.
absl::string_view ConfirmationName(common::v1::ConfirmationStatus status) {
  switch (status) {
    case common::v1::CONFIRMATION_STATUS_PENDING:
      return "pending";
    case common::v1::CONFIRMATION_STATUS_CONFIRMED:
      return "confirmed";
    case common::v1::CONFIRMATION_STATUS_DECLINED:
      return "declined";
    default:
      return "";
  }
}

}  // namespace

std::vector<std::string> FormatStopSequences(const PromptFormat& /*format*/) {
  // A reply is one line (Line() folds whitespace): whatever follows a newline is the next
  // turn's lines (Intent:, Customer:, ...), never the reply.
  return {"\n"};
}

absl::StatusOr<std::unique_ptr<const PromptBuilder>> PromptBuilder::Create(
    std::shared_ptr<const domain::Domain> domain, PromptFormat format, PromptOptions options,
    TokenCounter count_tokens) {
  if (domain == nullptr) return absl::InvalidArgumentError("domain: missing");
  if (!count_tokens) return absl::InvalidArgumentError("count_tokens: missing");
  const std::pair<absl::string_view, const std::string*> labels[] = {
      {"customer_label", &format.customer_label}, {"agent_label", &format.agent_label},
      {"intent_label", &format.intent_label},     {"known_label", &format.known_label},
      {"missing_label", &format.missing_label},   {"escalate_label", &format.escalate_label},
      {"evidence_label", &format.evidence_label}, {"none_value", &format.none_value},
      {"confirmation_label", &format.confirmation_label},
      {"exemplar_label", &format.exemplar_label}};
  for (const auto& [field, label] : labels) {
    if (absl::Status s = CheckLabel(field, *label); !s.ok()) return s;
  }
  if (format.system_suffix.empty() || format.system_suffix.back() != '\n') {
    return absl::InvalidArgumentError("format.system_suffix: must end with a newline");
  }
  return std::unique_ptr<const PromptBuilder>(new PromptBuilder(
      std::move(domain), std::move(format), std::move(options), std::move(count_tokens)));
}

PromptBuilder::PromptBuilder(std::shared_ptr<const domain::Domain> domain, PromptFormat format,
                             PromptOptions options, TokenCounter count_tokens)
    : domain_(std::move(domain)),
      format_(std::move(format)),
      options_(std::move(options)),
      count_tokens_(std::move(count_tokens)) {}

std::string PromptBuilder::Line(absl::string_view label, absl::string_view text) const {
  const std::string folded = CollapseWhitespace(text);
  if (folded.empty()) return absl::StrCat(label, "\n");
  return absl::StrCat(label, " ", folded, "\n");
}

std::string PromptBuilder::SystemPart(absl::string_view language) const {
  auto it = domain_->system_prompt.find(std::string(language));
  if (it == domain_->system_prompt.end() || CollapseWhitespace(it->second).empty()) return "";
  return absl::StrCat(CollapseWhitespace(it->second), format_.system_suffix);
}

std::string PromptBuilder::HistoryPart(const common::v1::Turn& turn,
                                       absl::string_view language) const {
  std::string out;
  if (turn.has_state()) {
    // The turn as it was prompted (its state lines; evidence is not kept in history).
    out = StatePart(turn.state(), {}, language);
  } else if (format_.history_intents) {
    absl::StrAppend(&out, Line(format_.intent_label,
                               turn.intent().empty() ? format_.none_value : turn.intent()));
  }
  absl::StrAppend(&out, Line(format_.customer_label, turn.user_text()),
                  Line(format_.agent_label, turn.reply()));
  return out;
}

std::string PromptBuilder::TurnPart(const v1::GenerationContext& context,
                                    absl::string_view language, bool with_exemplar) const {
  std::string exemplar;
  if (with_exemplar) {
    const std::string text = CollapseWhitespace(Utf8Prefix(context.exemplar(), format_.max_exemplar_bytes));
    if (!text.empty()) exemplar = Line(format_.exemplar_label, text);
  }
  return absl::StrCat(StatePart(context.state(), context.evidence(), language), exemplar,
                      Line(format_.customer_label, context.user_text()), format_.agent_label);
}

std::string PromptBuilder::StatePart(
    const common::v1::DialogueState& state,
    const google::protobuf::RepeatedPtrField<common::v1::Evidence>& evidence,
    absl::string_view language) const {
  const domain::Intent* intent = domain_->FindIntent(state.active_intent());
  std::string out;
  absl::StrAppend(&out,
                  Line(format_.intent_label,
                       state.active_intent().empty() ? format_.none_value : state.active_intent()));

  // Filled slots in domain order (a proto map has no stable order), then any slot the
  // domain does not know, by name.
  std::vector<std::string> known;
  auto value_of = [&state](const std::string& name) -> std::string {
    auto it = state.slots().find(name);
    return it == state.slots().end() ? "" : CollapseWhitespace(it->second.value());
  };
  for (const domain::Slot& slot : domain_->slots) {
    std::string value = value_of(slot.name);
    if (value.empty()) continue;
    if (format_.enum_labels) value = slot.Display(value, language);
    known.push_back(absl::StrCat(slot.name, "=", value));
  }
  std::vector<std::string> unknown_names;
  for (const auto& [name, value] : state.slots()) {
    if (domain_->FindSlot(name) == nullptr && !CollapseWhitespace(value.value()).empty()) {
      unknown_names.push_back(name);
    }
  }
  std::sort(unknown_names.begin(), unknown_names.end());
  for (const std::string& name : unknown_names) {
    known.push_back(absl::StrCat(CollapseWhitespace(name), "=", value_of(name)));
  }
  absl::StrAppend(&out, Line(format_.known_label,
                             known.empty() ? format_.none_value
                                           : absl::StrJoin(known, format_.list_separator)));

  std::vector<std::string> missing;
  if (intent != nullptr) {
    for (const std::string& slot : intent->required_slots) {
      if (value_of(slot).empty()) missing.push_back(slot);
    }
  } else {
    missing.assign(state.missing_slots().begin(), state.missing_slots().end());
  }
  absl::StrAppend(&out, Line(format_.missing_label,
                             missing.empty() ? format_.none_value
                                             : absl::StrJoin(missing, format_.list_separator)));
  if (const absl::string_view status = ConfirmationName(state.confirmation()); !status.empty()) {
    absl::StrAppend(&out, Line(format_.confirmation_label, status));
  }
  if (state.escalate() || (intent != nullptr && intent->escalate)) {
    absl::StrAppend(&out, Line(format_.escalate_label, "yes"));
  }
  for (const common::v1::Evidence& e : evidence) {
    const std::string text = CollapseWhitespace(Utf8Prefix(e.text(), format_.max_evidence_bytes));
    if (text.empty()) continue;
    const std::string source = CollapseWhitespace(e.source());
    absl::StrAppend(&out, Line(format_.evidence_label,
                               source.empty() ? text : absl::StrCat("(", source, ") ", text)));
  }
  return out;
}

absl::StatusOr<BuiltPrompt> PromptBuilder::Build(const v1::GenerationContext& context,
                                                 size_t max_prompt_tokens) const {
  BuiltPrompt built;
  built.language = domain::ResolveLanguage(*domain_, context.language(), context.state());
  const std::string system = SystemPart(built.language);
  std::string turn = TurnPart(context, built.language);
  size_t base_tokens = count_tokens_(absl::StrCat(system, turn));
  if (base_tokens > max_prompt_tokens && !context.exemplar().empty()) {
    turn = TurnPart(context, built.language, /*with_exemplar=*/false);
    base_tokens = count_tokens_(absl::StrCat(system, turn));
    built.exemplar_dropped = true;
  }
  if (base_tokens > max_prompt_tokens) {
    return absl::InvalidArgumentError(absl::StrCat(
        "context.user_text: this turn needs ", base_tokens,
        " prompt tokens with the system prompt, state and evidence (", count_tokens_(system),
        " for the system prompt alone) but at most ", max_prompt_tokens, " fit"));
  }

  const auto& history = context.history();
  const size_t n = static_cast<size_t>(history.size());
  std::vector<std::string> parts;
  std::vector<size_t> part_tokens;
  parts.reserve(n);
  part_tokens.reserve(n);
  for (const common::v1::Turn& t : history) {
    parts.push_back(HistoryPart(t, built.language));
    part_tokens.push_back(count_tokens_(parts.back()));
  }
  // suffix_tokens[i]: estimated tokens of history parts i..n-1. Part boundaries are
  // pre-token boundaries, so the sum is exact for a GPT-2 tokenizer; the full count below
  // still confirms it, in case a counter is not additive.
  std::vector<size_t> suffix_tokens(n + 1, 0);
  for (size_t i = n; i-- > 0;) suffix_tokens[i] = suffix_tokens[i + 1] + part_tokens[i];

  const size_t g = std::max<size_t>(options_.history_alignment, 1);
  auto allowed_start = [&](size_t i) {
    return i == n || g == 1 || history[static_cast<int>(i)].index() % g == 0;
  };
  for (size_t start = 0; start <= n; ++start) {
    if (!allowed_start(start)) continue;
    if (base_tokens + suffix_tokens[start] > max_prompt_tokens) continue;
    std::string text = system;
    for (size_t i = start; i < n; ++i) text += parts[i];
    const size_t stable = text.size();
    text += turn;
    const size_t tokens = start == n ? base_tokens : count_tokens_(text);
    if (tokens > max_prompt_tokens) continue;
    built.text = std::move(text);
    built.tokens = tokens;
    built.stable_bytes = stable;
    built.history_turns_kept = n - start;
    built.history_turns_dropped = start;
    return built;
  }
  // Unreachable: start == n is the base prompt, which fits.
  return absl::InternalError("prompt trimming found no fitting prompt");
}

}  // namespace helpline::generation::reply
