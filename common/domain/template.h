// Choosing and filling response templates from a dialogue state. Shared by the generation
// service (its template engine) and the gateway (its fallback reply when generation is
// down), so both answer the same thing for the same state.
//
// Template keys (see README.md):
//   "escalate"          state.escalate is set (a human takes over);
//   "fallback"          no active intent, or one the domain does not know;
//   "confirm.<slot>"    the state asks to confirm a value read from an attachment
//                       (state.confirm_slots; optional: without it the scheme goes on);
//   slot.prompt         the intent still misses a required slot: the prompt of the first
//                       missing one (default "ask.<slot>");
//   "<intent>.confirm"  a transactional intent has every required slot, not yet confirmed
//                       (confirmation PENDING, or UNSPECIFIED from an older state): the
//                       reply repeats the values and asks yes or no;
//   "<intent>.declined" the customer said no to that question (DECLINED): nothing was done;
//   "<intent>.done"     every required slot is filled (and, for a transactional intent, the
//                       customer confirmed: CONFIRMED).
// Among a template's variants the choice is deterministic: variant (turn_count + offset)
// modulo the count, skipping variants whose placeholders cannot be filled when another can.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/domain/domain.h"
#include "helpline/common/v1/types.pb.h"

namespace helpline::domain {

inline constexpr char kEscalateTemplate[] = "escalate";
inline constexpr char kFallbackTemplate[] = "fallback";

// "<intent>.done", "<intent>.confirm", "<intent>.declined", "confirm.<slot>".
std::string DoneTemplateKey(absl::string_view intent);
std::string ConfirmTemplateKey(absl::string_view intent);
std::string DeclinedTemplateKey(absl::string_view intent);
std::string ConfirmSlotTemplateKey(absl::string_view slot);

// The language to answer in: `requested` when the domain supports it, else the state's
// language when supported, else the domain's first language.
std::string ResolveLanguage(const Domain& domain, absl::string_view requested,
                            const common::v1::DialogueState& state);

// The name of the first required slot of the state's active intent that has no value;
// empty when none is missing or the intent is unknown.
std::string FirstMissingSlot(const Domain& domain, const common::v1::DialogueState& state);

// The template key for the reply to `state` (scheme above). Always a key the domain has
// (validation guarantees "escalate", "fallback", every "<intent>.done" of a non-escalating
// intent, ".confirm" and ".declined" of every transactional one, and every required slot's
// prompt). A transactional intent's ".done" is chosen only once the customer confirmed.
std::string SelectTemplate(const Domain& domain, const common::v1::DialogueState& state,
                           absl::string_view language);

struct Rendered {
  std::string text;
  // Placeholders that had no value (rendered as empty text), in order of appearance.
  std::vector<std::string> unfilled;
};

// Replaces each {{slot}} in `text` by the state's value of that slot (an enum's label in
// `language`). Placeholders without a value become "" and are listed in `unfilled`.
Rendered RenderTemplate(const Domain& domain, absl::string_view text,
                        const common::v1::DialogueState& state, absl::string_view language);

struct Reply {
  std::string key;       // Template key chosen by SelectTemplate.
  std::string language;  // Language answered in.
  size_t variant = 0;    // Index of the variant used.
  std::string text;      // The rendered reply.
  std::vector<std::string> unfilled;
};

// SelectTemplate + variant choice + RenderTemplate: the whole template reply for a state.
// A "confirm.<slot>" template renders {{<slot>}} as the proposed value it asks about.
// `requested_language` goes through ResolveLanguage. `variant_offset` picks another
// variant (candidate i of n uses offset i). INTERNAL only if the domain lacks the template,
// which validation rules out.
absl::StatusOr<Reply> RenderReply(const Domain& domain, const common::v1::DialogueState& state,
                                  absl::string_view requested_language,
                                  uint32_t variant_offset = 0);

}  // namespace helpline::domain
