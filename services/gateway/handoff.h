// Handoffs of a conversation from the bot to a human agent, in the spirit of the Bot
// Framework handoff protocol: the bot initiates (a turn whose dialogue state first says
// `escalate`), the helpdesk accepts (an agent owns the conversation), the helpdesk may
// release it (the bot answers again).
//
//   (none) / RELEASED --turn with escalate--> INITIATED --accept--> ACCEPTED
//   INITIATED / ACCEPTED --release--> RELEASED (escalation cleared in the stored state)
//
// The handoff lives in the session's record (common/v1 SessionRecord.handoff), so it is
// written atomically with the turn that initiates it and read with the session's lease.
// The transitions and the summary are plain functions (no gRPC or Redis types);
// HandoffDesk runs accept/release/get against the session store for both APIs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/redis/session_store.h"
#include "helpline/common/v1/session.pb.h"
#include "helpline/common/v1/types.pb.h"

namespace helpline::domain {
struct Domain;
}  // namespace helpline::domain

namespace helpline::gateway {

// True while the bot must not reply: INITIATED or ACCEPTED.
bool HandoffActive(const common::v1::Handoff& handoff);

// "initiated", "accepted", "released" (the HTTP API's and the metric's spelling); "none" for
// UNSPECIFIED.
std::string HandoffStatusName(common::v1::HandoffStatus status);

// OK when `id` is 1 to 128 characters of [A-Za-z0-9._:@+-]; else INVALID_ARGUMENT naming
// `field`. An empty id is OK when !required.
absl::Status ValidateAgentId(absl::string_view id, absl::string_view field, bool required);

struct SummaryInput {
  // The state after the turn that hands over.
  const common::v1::DialogueState* state = nullptr;
  // Earlier turns of the session (what was loaded with the turn), oldest first.
  const std::vector<common::v1::Turn>* history = nullptr;
  // This turn: the customer's text and the bot's reply (the handover message).
  std::string user_text;
  std::string reply;
  // Index of this turn in the session.
  uint32_t turn_index = 0;
  // Lines of the conversation to keep (customer and bot lines, the newest).
  size_t max_lines = 6;
};

// The summary a human agent reads: intent, known slot values, missing slots, reason, turn
// count, the last lines, and all of it as one paragraph (`text`).
common::v1::HandoffSummary MakeHandoffSummary(const SummaryInput& input);

// A new handoff (INITIATED) for a turn whose state escalates. `previous` is the session's
// last handoff (its sequence is continued); `summary` from MakeHandoffSummary.
common::v1::Handoff InitiateHandoff(const common::v1::DialogueState& state,
                                    common::v1::HandoffSummary summary,
                                    const common::v1::Handoff& previous, uint32_t turn_index,
                                    absl::Time now);

// INITIATED -> ACCEPTED by `agent_id`. Returns true when the handoff changed, false when the
// same agent had accepted it already (idempotent). FAILED_PRECONDITION naming the session
// when there is nothing to accept (never handed over, released) or another agent has it.
absl::StatusOr<bool> AcceptHandoff(common::v1::Handoff& handoff, absl::string_view session_id,
                                   absl::string_view agent_id, absl::Time now);

// INITIATED or ACCEPTED -> RELEASED, and the state's escalation cleared (escalate, reason,
// the tracker's counters — out-of-scope streak, frustration signals, recent request
// fingerprints — and an active intent that the domain always escalates, which would hand
// over again at once) so that the next turn is the bot's. `domain` may be null. FAILED_PRECONDITION naming
// the session when no handoff is in progress.
absl::Status ReleaseHandoff(common::v1::Handoff& handoff, common::v1::DialogueState& state,
                            absl::string_view session_id, absl::string_view released_by,
                            const domain::Domain* domain, absl::Time now);

// Counts a handoff reaching `status` (helpline_gateway_handoffs_total{reason,status}).
void CountHandoff(const common::v1::Handoff& handoff);

// Reads and changes handoffs in the session store; the gRPC HandoffService and the HTTP
// routes both call it. Thread-safe; blocks. Get is one Redis round trip. Accept and Release
// first try the change on a plain read (a refused or idempotent call writes nothing, not
// even a lease), then take the session's lease (waiting for a turn of the same session to
// finish), apply the change to what they loaded and write it with UpdateAndRelease: three
// round trips. Errors: NOT_FOUND for an unknown session, FAILED_PRECONDITION (see above;
// Get: never handed over), INVALID_ARGUMENT (agent id), UNAVAILABLE (store),
// DEADLINE_EXCEEDED (the session stayed busy until `deadline`), ABORTED (the session changed
// under the call; retry).
class HandoffDesk {
 public:
  // Borrows both; `domain` may be null. Registers the handoff metric family.
  HandoffDesk(session::SessionStore& store, const domain::Domain* domain);

  absl::StatusOr<common::v1::Handoff> Get(const session::SessionKey& key);
  absl::StatusOr<common::v1::Handoff> Accept(const session::SessionKey& key,
                                             absl::string_view agent_id, absl::Time deadline);
  absl::StatusOr<common::v1::Handoff> Release(const session::SessionKey& key,
                                              absl::string_view released_by, absl::Time deadline);

 private:
  session::SessionStore& store_;
  const domain::Domain* domain_;
};

}  // namespace helpline::gateway
