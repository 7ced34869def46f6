#include "common/domain/template.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace helpline::domain {

std::string DoneTemplateKey(absl::string_view intent) { return absl::StrCat(intent, ".done"); }
std::string ConfirmTemplateKey(absl::string_view intent) {
  return absl::StrCat(intent, ".confirm");
}
std::string DeclinedTemplateKey(absl::string_view intent) {
  return absl::StrCat(intent, ".declined");
}
std::string ConfirmSlotTemplateKey(absl::string_view slot) {
  return absl::StrCat("confirm.", slot);
}

std::string ResolveLanguage(const Domain& domain, absl::string_view requested,
                            const common::v1::DialogueState& state) {
  if (domain.SupportsLanguage(requested)) return std::string(requested);
  if (domain.SupportsLanguage(state.language())) return state.language();
  return domain.languages.empty() ? std::string("en") : domain.languages.front();
}

std::string FirstMissingSlot(const Domain& domain, const common::v1::DialogueState& state) {
  const Intent* intent = domain.FindIntent(state.active_intent());
  if (intent == nullptr) return "";
  for (const std::string& slot : intent->required_slots) {
    auto it = state.slots().find(slot);
    if (it == state.slots().end() || it->second.value().empty()) return slot;
  }
  return "";
}

std::string SelectTemplate(const Domain& domain, const common::v1::DialogueState& state,
                           absl::string_view language) {
  if (state.escalate()) return kEscalateTemplate;
  const Intent* intent = domain.FindIntent(state.active_intent());
  if (intent != nullptr && intent->escalate) return kEscalateTemplate;
  // The tracker asks one question per turn, and a value read from an attachment comes first
  // (a "yes" now confirms that value, not the transaction).
  if (!state.confirm_slots().empty()) {
    const std::string key = ConfirmSlotTemplateKey(state.confirm_slots(0));
    if (state.proposed_slots().contains(state.confirm_slots(0)) &&
        domain.FindTemplate(key, language) != nullptr) {
      return key;
    }
  }
  if (intent == nullptr) return kFallbackTemplate;
  const std::string missing = FirstMissingSlot(domain, state);
  if (!missing.empty()) {
    const Slot* slot = domain.FindSlot(missing);
    if (slot != nullptr && domain.FindTemplate(slot->prompt, language) != nullptr) {
      return slot->prompt;
    }
  }
  std::string key = DoneTemplateKey(intent->name);
  if (intent->transactional) {
    // Never "done" before the customer said yes: an unset status (a state from before the
    // tracker confirmed) asks like a pending one.
    switch (state.confirmation()) {
      case common::v1::CONFIRMATION_STATUS_CONFIRMED:
        break;
      case common::v1::CONFIRMATION_STATUS_DECLINED:
        key = DeclinedTemplateKey(intent->name);
        break;
      default:
        key = ConfirmTemplateKey(intent->name);
        break;
    }
  }
  if (domain.FindTemplate(key, language) != nullptr) return key;
  return kFallbackTemplate;
}

Rendered RenderTemplate(const Domain& domain, absl::string_view text,
                        const common::v1::DialogueState& state, absl::string_view language) {
  Rendered out;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t open = text.find("{{", pos);
    const size_t close =
        open == absl::string_view::npos ? absl::string_view::npos : text.find("}}", open + 2);
    if (close == absl::string_view::npos) {
      absl::StrAppend(&out.text, text.substr(pos));
      break;
    }
    absl::StrAppend(&out.text, text.substr(pos, open - pos));
    const std::string name(absl::StripAsciiWhitespace(text.substr(open + 2, close - open - 2)));
    auto it = state.slots().find(name);
    if (it != state.slots().end() && !it->second.value().empty()) {
      const Slot* slot = domain.FindSlot(name);
      absl::StrAppend(&out.text, slot != nullptr ? slot->Display(it->second.value(), language)
                                                 : it->second.value());
    } else {
      out.unfilled.push_back(name);
    }
    pos = close + 2;
  }
  return out;
}

absl::StatusOr<Reply> RenderReply(const Domain& domain, const common::v1::DialogueState& state,
                                  absl::string_view requested_language, uint32_t variant_offset) {
  Reply reply;
  reply.language = ResolveLanguage(domain, requested_language, state);
  reply.key = SelectTemplate(domain, state, reply.language);
  const std::vector<std::string>* variants = domain.FindTemplate(reply.key, reply.language);
  if (variants == nullptr) {
    return absl::InternalError(absl::StrCat("domain '", domain.name, "' has no template '",
                                            reply.key, "' in '", reply.language, "'"));
  }
  // "Is your order number {{order_id}}?" asks about the attachment's value, not the typed one.
  common::v1::DialogueState asked;
  const common::v1::DialogueState* rendered = &state;
  if (!state.confirm_slots().empty() &&
      reply.key == ConfirmSlotTemplateKey(state.confirm_slots(0))) {
    asked = state;
    const std::string& name = state.confirm_slots(0);
    (*asked.mutable_slots())[name] = state.proposed_slots().at(name);
    rendered = &asked;
  }
  const size_t count = variants->size();
  const size_t start = (static_cast<size_t>(state.turn_count()) + variant_offset) % count;
  // Prefer the first variant, from `start` on, whose placeholders all have values; when
  // none has, use `start` and report what is unfilled.
  for (size_t k = 0; k < count; ++k) {
    const size_t index = (start + k) % count;
    Rendered r = RenderTemplate(domain, (*variants)[index], *rendered, reply.language);
    if (r.unfilled.empty()) {
      reply.variant = index;
      reply.text = std::move(r.text);
      return reply;
    }
  }
  Rendered r = RenderTemplate(domain, (*variants)[start], *rendered, reply.language);
  reply.variant = start;
  reply.text = std::move(r.text);
  reply.unfilled = std::move(r.unfilled);
  return reply;
}

}  // namespace helpline::domain
