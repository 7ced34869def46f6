#include "services/gateway/handoff.h"

#include <algorithm>
#include <map>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/domain/domain.h"
#include "common/log/log.h"
#include "common/metrics/metrics.h"
#include "google/protobuf/util/time_util.h"

namespace helpline::gateway {
namespace {

using common::v1::DialogueState;
using common::v1::Handoff;
using common::v1::HandoffSummary;
using common::v1::TranscriptLine;
using common::v1::Turn;

// A transcript line is cut to this many bytes: enough for a customer's message, short
// enough that a summary stays one screen.
constexpr size_t kLineBytes = 240;

metrics::Family<metrics::Counter>& HandoffsTotal() {
  static auto& family = metrics::Registry::Default().AddCounter(
      "helpline_gateway_handoffs_total",
      "Handoffs to a human agent by escalation reason and the status they reached.",
      {"reason", "status"});
  return family;
}

// Cuts `text` to at most `max_bytes` without splitting a UTF-8 character.
std::string Truncate(absl::string_view text, size_t max_bytes) {
  if (text.size() <= max_bytes) return std::string(text);
  size_t end = max_bytes;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  return absl::StrCat(text.substr(0, end), "…");
}

void AddLine(std::vector<TranscriptLine>& lines, const char* speaker, absl::string_view text,
             uint32_t turn_index) {
  if (absl::StripAsciiWhitespace(text).empty()) return;
  TranscriptLine line;
  line.set_speaker(speaker);
  line.set_text(Truncate(text, kLineBytes));
  line.set_turn_index(turn_index);
  lines.push_back(std::move(line));
}

google::protobuf::Timestamp ProtoTime(absl::Time t) {
  return google::protobuf::util::TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(t));
}

std::string SummaryText(const HandoffSummary& summary) {
  std::vector<std::string> parts;
  parts.push_back(absl::StrCat(
      "Handed over (", summary.reason().empty() ? "unknown reason" : summary.reason(), ") after ",
      summary.turn_count(), summary.turn_count() == 1 ? " turn." : " turns."));
  parts.push_back(
      absl::StrCat("Intent: ", summary.intent().empty() ? "unknown" : summary.intent(), "."));
  // Sorted, so that the paragraph is the same for the same state.
  const std::map<std::string, std::string> slots(summary.slots().begin(), summary.slots().end());
  std::vector<std::string> known;
  for (const auto& [name, value] : slots) known.push_back(absl::StrCat(name, "=", value));
  parts.push_back(absl::StrCat("Known: ", known.empty() ? "-" : absl::StrJoin(known, ", "), "."));
  parts.push_back(absl::StrCat(
      "Missing: ",
      summary.missing_slots().empty() ? "-" : absl::StrJoin(summary.missing_slots(), ", "), "."));
  std::vector<std::string> lines;
  for (const TranscriptLine& line : summary.recent_lines()) {
    lines.push_back(absl::StrCat(line.speaker(), ": ", line.text()));
  }
  parts.push_back(absl::StrCat("Last messages: ", absl::StrJoin(lines, " | ")));
  return absl::StrJoin(parts, " ");
}

absl::Status NothingPending(absl::string_view session_id, const Handoff& handoff,
                            absl::string_view verb) {
  if (handoff.status() == common::v1::HANDOFF_STATUS_RELEASED) {
    return absl::FailedPreconditionError(absl::StrCat(
        "session '", session_id, "': its handoff was released to the bot; there is no handoff to ",
        verb, " (a new one starts when the customer escalates again)"));
  }
  return absl::FailedPreconditionError(
      absl::StrCat("session '", session_id, "' has no handoff to ", verb,
                   ": the bot has not handed it over (no turn escalated)"));
}

}  // namespace

bool HandoffActive(const Handoff& handoff) {
  return handoff.status() == common::v1::HANDOFF_STATUS_INITIATED ||
         handoff.status() == common::v1::HANDOFF_STATUS_ACCEPTED;
}

std::string HandoffStatusName(common::v1::HandoffStatus status) {
  switch (status) {
    case common::v1::HANDOFF_STATUS_INITIATED:
      return "initiated";
    case common::v1::HANDOFF_STATUS_ACCEPTED:
      return "accepted";
    case common::v1::HANDOFF_STATUS_RELEASED:
      return "released";
    default:
      return "none";
  }
}

absl::Status ValidateAgentId(absl::string_view id, absl::string_view field, bool required) {
  if (id.empty()) {
    return required ? absl::InvalidArgumentError(absl::StrCat(field, ": required"))
                    : absl::OkStatus();
  }
  if (id.size() > 128) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": must be 1 to 128 characters, got ", id.size()));
  }
  for (size_t i = 0; i < id.size(); ++i) {
    const char c = id[i];
    if (absl::ascii_isalnum(c) || absl::string_view("._:@+-").find(c) != absl::string_view::npos) {
      continue;
    }
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": character ",
        absl::ascii_isgraph(c)
            ? absl::StrCat("'", absl::string_view(&c, 1), "'")
            : absl::StrCat("byte 0x", absl::Hex(static_cast<unsigned char>(c), absl::kZeroPad2)),
        " at offset ", i, " is not allowed; use [A-Za-z0-9._:@+-]"));
  }
  return absl::OkStatus();
}

HandoffSummary MakeHandoffSummary(const SummaryInput& input) {
  static const DialogueState kEmptyState;
  static const std::vector<Turn> kNoTurns;
  const DialogueState& state = input.state != nullptr ? *input.state : kEmptyState;
  const std::vector<Turn>& history = input.history != nullptr ? *input.history : kNoTurns;
  HandoffSummary summary;
  summary.set_intent(state.active_intent());
  for (const auto& [name, value] : state.slots()) {
    if (!value.value().empty()) (*summary.mutable_slots())[name] = value.value();
  }
  *summary.mutable_missing_slots() = state.missing_slots();
  summary.set_reason(state.escalation_reason());
  summary.set_turn_count(input.turn_index + 1);
  summary.set_language(state.language());

  std::vector<TranscriptLine> lines;
  for (const Turn& turn : history) {
    AddLine(lines, "customer", turn.user_text(), turn.index());
    AddLine(lines, "bot", turn.reply(), turn.index());
  }
  AddLine(lines, "customer", input.user_text, input.turn_index);
  AddLine(lines, "bot", input.reply, input.turn_index);
  const size_t first = lines.size() > input.max_lines ? lines.size() - input.max_lines : 0;
  for (size_t i = first; i < lines.size(); ++i) {
    *summary.add_recent_lines() = std::move(lines[i]);
  }
  summary.set_text(SummaryText(summary));
  return summary;
}

Handoff InitiateHandoff(const DialogueState& state, HandoffSummary summary, const Handoff& previous,
                        uint32_t turn_index, absl::Time now) {
  Handoff handoff;
  handoff.set_status(common::v1::HANDOFF_STATUS_INITIATED);
  handoff.set_reason(state.escalation_reason());
  *handoff.mutable_initiate_time() = ProtoTime(now);
  handoff.set_initiate_turn(turn_index);
  *handoff.mutable_summary() = std::move(summary);
  handoff.set_sequence(previous.sequence() + 1);
  return handoff;
}

absl::StatusOr<bool> AcceptHandoff(Handoff& handoff, absl::string_view session_id,
                                   absl::string_view agent_id, absl::Time now) {
  if (handoff.status() == common::v1::HANDOFF_STATUS_ACCEPTED) {
    if (handoff.agent_id() == agent_id) return false;
    return absl::FailedPreconditionError(
        absl::StrCat("session '", session_id, "': the handoff was already accepted by agent '",
                     handoff.agent_id(), "' at ",
                     google::protobuf::util::TimeUtil::ToString(handoff.accept_time()),
                     "; release it first to hand it to another agent"));
  }
  if (handoff.status() != common::v1::HANDOFF_STATUS_INITIATED) {
    return NothingPending(session_id, handoff, "accept");
  }
  handoff.set_status(common::v1::HANDOFF_STATUS_ACCEPTED);
  handoff.set_agent_id(std::string(agent_id));
  *handoff.mutable_accept_time() = ProtoTime(now);
  return true;
}

absl::Status ReleaseHandoff(Handoff& handoff, DialogueState& state, absl::string_view session_id,
                            absl::string_view released_by, const domain::Domain* domain,
                            absl::Time now) {
  if (!HandoffActive(handoff)) return NothingPending(session_id, handoff, "release");
  handoff.set_status(common::v1::HANDOFF_STATUS_RELEASED);
  *handoff.mutable_release_time() = ProtoTime(now);
  handoff.set_released_by(std::string(released_by));
  // The tracker keeps `escalate` once set and escalates an always-human intent again while it
  // stays active; both would hand the next turn straight back.
  state.set_escalate(false);
  state.clear_escalation_reason();
  // The tracker's escalation counters live in the state too: a human dealt with what they
  // counted, so the bot starts afresh (old frustration or a repeated question from before
  // the handoff would otherwise hand the conversation back at the first new signal).
  state.set_low_confidence_streak(0);
  state.set_frustration_signals(0);
  state.clear_recent_request_fingerprints();
  if (domain != nullptr) {
    const domain::Intent* intent = domain->FindIntent(state.active_intent());
    if (intent != nullptr && intent->escalate) {
      state.clear_active_intent();
      state.set_intent_confidence(0);
      state.clear_missing_slots();
      state.clear_requested_slots();
    }
  }
  return absl::OkStatus();
}

void CountHandoff(const Handoff& handoff) {
  HandoffsTotal()
      .Get({handoff.reason().empty() ? "unknown" : handoff.reason(),
            HandoffStatusName(handoff.status())})
      .Increment();
}

HandoffDesk::HandoffDesk(session::SessionStore& store, const domain::Domain* domain)
    : store_(store), domain_(domain) {
  HandoffsTotal();  // Visible on /metrics before the first handoff.
}

absl::StatusOr<Handoff> HandoffDesk::Get(const session::SessionKey& key) {
  absl::StatusOr<session::LoadedSession> loaded = store_.Load(key, 1);
  if (!loaded.ok()) {
    return absl::Status(loaded.status().code(),
                        absl::StrCat("session store: ", loaded.status().message()));
  }
  if (!loaded->exists) {
    return absl::NotFoundError(
        absl::StrCat("session_id: session '", key.session_id, "' not found"));
  }
  if (!loaded->record.has_handoff()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "session '", key.session_id, "' has no handoff: the bot has not handed it over"));
  }
  return loaded->record.handoff();
}

namespace {

// Applies `change` to the session's record and writes it back when `change` says it changed
// something. A dry run on a plain read comes first, so that a call that fails (unknown
// session, nothing to accept, ...) or changes nothing writes nothing, not even the lease
// and its fence counter; then the change is made again under the session's lease (a turn
// may have moved the record in between) and written by UpdateAndRelease.
template <typename Change>
absl::StatusOr<Handoff> ChangeRecord(session::SessionStore& store, const session::SessionKey& key,
                                     absl::Time deadline, Change change) {
  absl::StatusOr<session::LoadedSession> loaded = store.Load(key, 1);
  if (!loaded.ok()) {
    return absl::Status(loaded.status().code(),
                        absl::StrCat("session store: ", loaded.status().message()));
  }
  if (!loaded->exists) {
    return absl::NotFoundError(
        absl::StrCat("session_id: session '", key.session_id, "' not found"));
  }
  absl::StatusOr<bool> would_change = change(loaded->record);
  if (!would_change.ok()) return would_change.status();
  if (!*would_change) return loaded->record.handoff();

  absl::StatusOr<session::Acquired> acquired = store.AcquireAndLoad(key, 1, deadline);
  if (!acquired.ok()) {
    if (absl::IsDeadlineExceeded(acquired.status())) {
      return absl::DeadlineExceededError(absl::StrCat(
          "session '", key.session_id, "' stayed busy with a turn; the handoff is unchanged"));
    }
    return absl::Status(acquired.status().code(),
                        absl::StrCat("session store: ", acquired.status().message()));
  }
  common::v1::SessionRecord record = acquired->session.record;
  absl::StatusOr<bool> changed =
      acquired->session.exists ? change(record)
                               : absl::StatusOr<bool>(absl::NotFoundError(absl::StrCat(
                                     "session_id: session '", key.session_id, "' not found")));
  if (!changed.ok() || !*changed) {
    store.ReleaseLease(acquired->lease);
    if (!changed.ok()) return changed.status();
    return record.handoff();
  }
  absl::Status written =
      store.UpdateAndRelease(acquired->lease, acquired->session.record.version(), record);
  if (!written.ok()) {
    if (absl::IsAborted(written)) store.ReleaseLease(acquired->lease);
    return absl::Status(written.code(), absl::StrCat("session store: ", written.message(),
                                                     "; the handoff is unchanged, retry"));
  }
  CountHandoff(record.handoff());
  log::Info("handoff changed", {{"status", HandoffStatusName(record.handoff().status())},
                                {"sequence", record.handoff().sequence()}});
  return record.handoff();
}

}  // namespace

absl::StatusOr<Handoff> HandoffDesk::Accept(const session::SessionKey& key,
                                            absl::string_view agent_id, absl::Time deadline) {
  if (absl::Status valid = ValidateAgentId(agent_id, "agent_id", /*required=*/true); !valid.ok()) {
    return valid;
  }
  return ChangeRecord(
      store_, key, deadline, [&](common::v1::SessionRecord& record) -> absl::StatusOr<bool> {
        return AcceptHandoff(*record.mutable_handoff(), key.session_id, agent_id, absl::Now());
      });
}

absl::StatusOr<Handoff> HandoffDesk::Release(const session::SessionKey& key,
                                             absl::string_view released_by, absl::Time deadline) {
  if (absl::Status valid = ValidateAgentId(released_by, "agent_id", /*required=*/false);
      !valid.ok()) {
    return valid;
  }
  return ChangeRecord(
      store_, key, deadline, [&](common::v1::SessionRecord& record) -> absl::StatusOr<bool> {
        absl::Status s = ReleaseHandoff(*record.mutable_handoff(), *record.mutable_state(),
                                        key.session_id, released_by, domain_, absl::Now());
        if (!s.ok()) return s;
        return true;
      });
}

}  // namespace helpline::gateway
