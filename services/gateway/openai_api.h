// The gateway's HTTP API: POST /v1/chat/completions (OpenAI Chat Completions compatible,
// with SSE streaming), GET /v1/models, the helpdesk's handoff routes
// (GET /v1/sessions/{id}/handoff, POST /v1/sessions/{id}/handoff/accept and .../release),
// GET /healthz, GET /readyz, GET /metrics.
//
// Parsing and formatting are free functions (tested without a server); OpenAiApi ties them
// to auth, rate limits and the TurnRunner. Every error is an OpenAI error object
//   {"error": {"message", "type", "param", "code"}}
// with the HTTP status of HttpStatusFor(code).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/http/http_server.h"
#include "nlohmann/json.hpp"
#include "services/gateway/auth.h"
#include "services/gateway/handoff.h"
#include "services/gateway/turn.h"

namespace helpline::gateway {

// A parsed /v1/chat/completions request.
struct ChatCompletionRequest {
  std::string model;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  std::string user;
  // The turn: the last (user) message's text and images, the earlier user/assistant
  // messages as history, reply options, and the field names for error messages.
  TurnInput turn;
};

// Parses the body of /v1/chat/completions. INVALID_ARGUMENT naming the field for malformed
// JSON, a known field of the wrong type or value, a non-data: image URL, n != 1, or a last
// message that is not the user's. Unknown fields are ignored. Does not apply limits (the
// TurnRunner does) except what the JSON shape itself needs.
absl::StatusOr<ChatCompletionRequest> ParseChatCompletionRequest(absl::string_view body);

// Decodes "data:<mime>;base64,<payload>" into an attachment. INVALID_ARGUMENT naming `field`.
absl::StatusOr<common::v1::Attachment> DecodeDataUrl(absl::string_view url,
                                                     absl::string_view field);

// The field an INVALID_ARGUMENT message names ("messages[0].content: ..." ->
// "messages[0].content"); empty when it names none.
std::string ErrorParam(const absl::Status& status);

// {"error": {...}} for `status`.
nlohmann::json ErrorJson(const absl::Status& status);

// "invalid_request_error", "authentication_error", "rate_limit_error", ... for a code.
std::string ErrorType(absl::StatusCode code);

// A handoff as JSON: status ("initiated", "accepted", "released"), reason, sequence,
// initiate_turn, times (RFC 3339, null when unset), agent_id / released_by (null when
// empty) and the summary object (text, intent, slots, missing_slots, reason, turn_count,
// language, recent_lines [{speaker, text, turn_index}]).
nlohmann::json HandoffJson(const common::v1::Handoff& handoff);

// The agent id of a handoff accept/release body: {"agent_id": "..."}; an empty body is {}.
// INVALID_ARGUMENT naming the field (malformed JSON, not an object, agent_id not a string
// or not a valid id, missing when `agent_required`).
absl::StatusOr<std::string> ParseHandoffActionBody(absl::string_view body, bool agent_required);

// The `helpline` extension object of a response.
nlohmann::json HelplineJson(const TurnResult& result);

// The non-streaming response body.
nlohmann::json CompletionJson(const TurnResult& result, const std::string& id, int64_t created,
                              const std::string& model);

// OpenAI's finish_reason for ours: "length" stays, everything else is "stop".
std::string OpenAiFinishReason(const std::string& finish_reason);

struct OpenAiApiOptions {
  std::string model_name = "helpline";
  absl::Duration turn_timeout = absl::Seconds(20);
};

// The HTTP handler. Thread-safe; every request runs on its connection thread and blocks it
// for the turn.
class OpenAiApi {
 public:
  // Borrows everything. `ready` answers /readyz (OK or UNAVAILABLE naming what is not
  // ready); `active_sessions` is refreshed before /metrics is served.
  OpenAiApi(OpenAiApiOptions options, const Authenticator& auth, TenantRateLimiter& limiter,
            TurnRunner& runner, HandoffDesk& handoffs, std::function<absl::Status()> ready);

  void Handle(const http::Request& request, http::ResponseWriter& writer);

  // After this, /readyz answers 503 (draining). Thread-safe.
  void SetDraining() { draining_ = true; }

 private:
  void ChatCompletions(const http::Request& request, const std::string& request_id,
                       http::ResponseWriter& writer);
  // /v1/sessions/{id}/handoff[/accept|/release].
  void Handoffs(const http::Request& request, const std::string& request_id,
                http::ResponseWriter& writer);
  void SendError(http::ResponseWriter& writer, const absl::Status& status,
                 const std::string& request_id, absl::Duration retry_after = absl::ZeroDuration());

  const OpenAiApiOptions options_;
  const Authenticator& auth_;
  TenantRateLimiter& limiter_;
  TurnRunner& runner_;
  HandoffDesk& handoffs_;
  std::function<absl::Status()> ready_;
  std::atomic<bool> draining_{false};
};

}  // namespace helpline::gateway
