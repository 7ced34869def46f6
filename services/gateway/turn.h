// The orchestration of one turn (DESIGN §1): validate, lease + load the session, preprocess,
// fusion (attachments only), dst, generation, commit + release. No HTTP or JSON types: the
// gRPC and HTTP adapters both call TurnRunner::Run.
//
// Failure policy (DESIGN §6):
//   bad input                 INVALID_ARGUMENT naming the field; nothing touches the store.
//   store down                UNAVAILABLE; nothing written.
//   preprocess down or late   degraded: the text is used as is, language "und".
//   fusion down or late       degraded: no evidence. INVALID_ARGUMENT from fusion (an image
//                             it cannot decode) fails the turn; no state or turn is written
//                             (the lease was taken and is released: only the session's
//                             fence counter moved).
//   dst down or late          UNAVAILABLE: the tracker is not degradable; nothing written.
//   generation down or late   degraded: the domain's template reply; state still committed.
//   commit refused            ABORTED (the lease was lost or the version moved): not stored.
//   turn deadline passed      DEADLINE_EXCEEDED; the lease is released, session unchanged.
//
// Handoffs (handoff.h): a turn whose state first escalates initiates a handoff, answered by
// the domain's "escalate" template (no generation) and stored with the turn; while a handoff
// is INITIATED or ACCEPTED a turn skips dst and generation, stores the customer's line with
// an empty reply and the state unchanged, and answers with the handoff (finish "handoff").
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/grpc/executor.h"
#include "common/redis/session_store.h"
#include "helpline/chat/v1/chat_service.pb.h"
#include "helpline/common/v1/server_config.pb.h"
#include "helpline/dst/v1/dst_service.grpc.pb.h"
#include "helpline/fusion/v1/fusion_service.grpc.pb.h"
#include "helpline/gateway/v1/gateway_config.pb.h"
#include "helpline/generation/v1/generation_service.grpc.pb.h"
#include "helpline/preprocess/v1/preprocess_service.grpc.pb.h"

namespace helpline::domain {
struct Domain;
}  // namespace helpline::domain

namespace helpline::gateway {

// Called with each piece of a streamed reply. Returns false when the client has gone away;
// the turn then stops generating and fails with CANCELLED (nothing is committed).
using DeltaCallback = std::function<bool(absl::string_view delta)>;

struct TurnInput {
  // The caller's tenant (from its API key).
  std::string tenant;
  // Empty: a stateless turn whose context is `history`.
  std::string session_id;
  std::string text;
  std::vector<common::v1::Attachment> attachments;
  chat::v1::ReplyOptions options;
  // Context of a stateless turn, oldest first; ignored with a session id.
  std::vector<chat::v1::HistoryMessage> history;
  std::string request_id;
  absl::Time deadline = absl::InfiniteFuture();
  // Set for a streaming turn.
  DeltaCallback on_delta;

  // Names of the fields in error messages, so that the HTTP adapter can name its own
  // ("messages[2].content"). Empty: the gRPC names ("text", "attachments[i]", "history[i]").
  std::string text_field;
  std::vector<std::string> attachment_fields;
  std::vector<std::string> history_fields;
  std::string session_field;
};

struct TurnResult {
  // The whole answer; `response.handoff` is set while a human owns the session or when this
  // turn handed it over.
  chat::v1::ConverseResponse response;
};

// Stubs of the four stages (not owned) and how to call them.
struct StageClients {
  preprocess::v1::PreprocessService::StubInterface* preprocess = nullptr;
  fusion::v1::FusionService::StubInterface* fusion = nullptr;
  dst::v1::DialogueStateService::StubInterface* dst = nullptr;
  generation::v1::GenerationService::StubInterface* generation = nullptr;
  common::v1::UpstreamConfig preprocess_config;
  common::v1::UpstreamConfig fusion_config;
  common::v1::UpstreamConfig dst_config;
  common::v1::UpstreamConfig generation_config;
};

struct TurnOptions {
  v1::Limits limits;          // With defaults applied (see ApplyLimitDefaults).
  uint32_t context_turns = 8;  // Turns of history given to dst and generation.
  // Threads of the runner's own pool for the blocking store calls of asynchronous turns
  // (lease + load, commit, release); at most `store_queue` of them wait for a thread.
  uint32_t store_threads = 16;
  uint32_t store_queue = 4096;
  // Threads of the runner's pool for streaming generations (one per stream being relayed);
  // at most `stream_queue` streams wait for a thread.
  uint32_t stream_threads = 16;
  uint32_t stream_queue = 4096;
  // Lines of the conversation in a handoff's summary (at most what context_turns loads).
  uint32_t handoff_summary_lines = 6;
};

// Receives the outcome of an asynchronous turn, exactly once.
using TurnCallback = std::function<void(absl::StatusOr<TurnResult>)>;

// Fills unset (zero) limits with the documented defaults.
void ApplyLimitDefaults(v1::Limits& limits);

// Checks a turn's input against the limits: text (UTF-8, not blank, size), attachments
// (count, then each via image::CheckAttachment), session id, history (count, roles, UTF-8,
// size) and reply options. INVALID_ARGUMENT naming the field. Touches nothing.
absl::Status ValidateTurnInput(const TurnInput& input, const v1::Limits& limits);

// True when `text` is well-formed UTF-8 (no overlongs, surrogates or code points > U+10FFFF).
bool IsValidUtf8(absl::string_view text);

// Distinct sessions with a turn in the last `window`, in this process; feeds the
// helpline_active_sessions gauge. Thread-safe.
class ActiveSessions {
 public:
  explicit ActiveSessions(absl::Duration window = absl::Minutes(5));
  void Touch(const std::string& key, absl::Time now);
  // Drops sessions idle longer than the window, updates the gauge, returns the count.
  size_t Refresh(absl::Time now);

 private:
  const absl::Duration window_;
  std::mutex mu_;
  std::map<std::string, absl::Time> last_turn_;
};

// Runs turns. Thread-safe.
//
// RunAsync drives a turn without holding a thread: each stage is a gRPC callback-API call
// whose completion starts the next step (on gRPC's callback threads), and the blocking store
// calls run on the runner's own small pool (TurnOptions::store_threads). A streaming turn's
// generation (on_delta set) is a blocking read loop on the runner's stream pool
// (TurnOptions::stream_threads); on_delta is called from that pool's thread. Run is RunAsync
// plus a wait: it blocks its caller until the turn is done.
class TurnRunner {
 public:
  // Borrows everything; all must outlive the runner. `domain` may be null: the fallback
  // reply is then a fixed apology.
  TurnRunner(session::SessionStore& store, StageClients clients, const domain::Domain* domain,
             TurnOptions options);

  // Runs one turn. Errors per the policy at the top of this file.
  absl::StatusOr<TurnResult> Run(const TurnInput& input);
  // Runs one turn and calls `done` with its outcome, from whichever thread finishes it
  // (possibly this one, e.g. on bad input).
  // `input` is kept until `done` has been called.
  void RunAsync(std::shared_ptr<const TurnInput> input, TurnCallback done);

  ActiveSessions& active_sessions() { return active_sessions_; }
  const v1::Limits& limits() const { return options_.limits; }
  // Number of times a stage or the store failed (not bad input) so far; readiness checks
  // again when it moved rather than trusting its cached answer.
  uint64_t dependency_failures() const { return dependency_failures_.load(); }

 private:
  class AsyncTurn;
  friend class AsyncTurn;

  // Metrics and the failure log of a finished turn.
  void Record(const absl::StatusOr<TurnResult>& result,
              const std::vector<std::pair<std::string, double>>& timings);
  std::string FallbackReply(const common::v1::DialogueState& state,
                            absl::string_view language) const;

  session::SessionStore& store_;
  const StageClients clients_;
  const domain::Domain* domain_;
  const TurnOptions options_;
  ActiveSessions active_sessions_;
  std::atomic<uint64_t> dependency_failures_{0};
  // Blocking store calls of turns. Declared after the rest: destroyed (drained) before it.
  std::unique_ptr<rpc::Executor> store_executor_;
  // Streaming generations, which continue on the store executor. Declared last: drained
  // first.
  std::unique_ptr<rpc::Executor> stream_executor_;
};

}  // namespace helpline::gateway
