#include "services/gateway/turn.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/domain/template.h"
#include "common/grpc/channel.h"
#include "common/image/image_info.h"
#include "common/log/log.h"
#include "common/metrics/metrics.h"
#include "common/status/status.h"
#include "services/gateway/handoff.h"
#include "google/protobuf/util/time_util.h"

namespace helpline::gateway {
namespace {

using common::v1::DialogueState;
using common::v1::Turn;

metrics::Family<metrics::Histogram>& StageSeconds() {
  static auto& family = metrics::Registry::Default().AddHistogram(
      "helpline_turn_stage_seconds", "Wall time of each stage of a turn.", {"stage"});
  return family;
}

metrics::Family<metrics::Counter>& TurnsTotal() {
  static auto& family = metrics::Registry::Default().AddCounter(
      "helpline_turns_total", "Turns by outcome: ok, degraded, or the error code.", {"outcome"});
  return family;
}

metrics::Family<metrics::Counter>& DegradedTotal() {
  static auto& family = metrics::Registry::Default().AddCounter(
      "helpline_degraded_turns_total", "Turns answered with a stage skipped or replaced.",
      {"stage"});
  return family;
}

metrics::Gauge& ActiveSessionsGauge() {
  static auto& gauge =
      metrics::Registry::Default()
          .AddGauge("helpline_active_sessions",
                    "Distinct sessions with a turn in the last 5 minutes in this process.")
          .Get(std::vector<std::string>{});
  return gauge;
}

std::string Field(const std::string& given, absl::string_view fallback) {
  return given.empty() ? std::string(fallback) : given;
}

std::string IndexedField(const std::vector<std::string>& names, size_t i,
                         absl::string_view list) {
  if (i < names.size()) return names[i];
  return absl::StrCat(list, "[", i, "]");
}

// "attachments[1]: ..." from a checker -> "<field>: ..." with the adapter's field name.
absl::Status RenameAttachmentField(const absl::Status& status, size_t index,
                                   const std::vector<std::string>& names) {
  if (index >= names.size()) return status;
  const std::string prefix = absl::StrCat("attachments[", index, "]");
  absl::string_view message = status.message();
  if (!absl::StartsWith(message, prefix)) return status;
  return absl::Status(status.code(),
                      absl::StrCat(names[index], message.substr(prefix.size())));
}

// Fusion names the attachment in its message; map any index it names back.
absl::Status RenameAnyAttachmentField(const absl::Status& status,
                                      const std::vector<std::string>& names) {
  for (size_t i = 0; i < names.size(); ++i) {
    absl::Status renamed = RenameAttachmentField(status, i, names);
    if (renamed.message() != status.message()) return renamed;
  }
  return status;
}

absl::Status CheckText(absl::string_view text, const std::string& field, uint32_t max_bytes,
                       bool allow_empty) {
  if (!IsValidUtf8(text)) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": not valid UTF-8"));
  }
  if (!allow_empty && absl::StripAsciiWhitespace(text).empty()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": must not be empty"));
  }
  if (text.size() > max_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": ", text.size(),
                                                   " bytes, more than the limit of ", max_bytes));
  }
  return absl::OkStatus();
}

std::string FinishReasonName(generation::v1::FinishReason reason) {
  switch (reason) {
    case generation::v1::FINISH_REASON_LENGTH: return "length";
    case generation::v1::FINISH_REASON_EOS: return "eos";
    case generation::v1::FINISH_REASON_CANCELLED: return "cancelled";
    default: return "stop";
  }
}

// True when the reply is generation's template fallback because the model's candidates were
// all rejected by the reply filters (not because the engine failed).
bool AllModelCandidatesFiltered(const generation::v1::GenerateResponse& response) {
  bool any_model = false;
  for (const generation::v1::Candidate& c : response.candidates()) {
    if (c.origin() != "model") continue;
    if (c.rejection_reasons().empty()) return false;
    any_model = true;
  }
  return any_model;
}

std::string OutcomeLabel(const absl::Status& status) {
  return absl::AsciiStrToLower(absl::StatusCodeToString(status.code()));
}

}  // namespace

void ApplyLimitDefaults(v1::Limits& limits) {
  if (limits.max_text_bytes() == 0) limits.set_max_text_bytes(8192);
  if (limits.max_attachments() == 0) limits.set_max_attachments(4);
  if (limits.max_attachment_bytes() == 0) limits.set_max_attachment_bytes(8u << 20);
  if (limits.max_image_pixels() == 0) limits.set_max_image_pixels(40'000'000);
  if (limits.max_history_messages() == 0) limits.set_max_history_messages(64);
  if (limits.tenant_burst() == 0) limits.set_tenant_burst(20);
  if (limits.max_http_body_bytes() == 0) limits.set_max_http_body_bytes(48u << 20);
}

bool IsValidUtf8(absl::string_view text) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const auto* end = p + text.size();
  while (p < end) {
    const unsigned char c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    int length = 0;
    uint32_t code = 0;
    if (c >= 0xC2 && c <= 0xDF) {
      length = 2;
      code = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      length = 3;
      code = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      length = 4;
      code = c & 0x07;
    } else {
      return false;
    }
    if (end - p < length) return false;
    for (int i = 1; i < length; ++i) {
      if ((p[i] & 0xC0) != 0x80) return false;
      code = (code << 6) | (p[i] & 0x3F);
    }
    if ((length == 3 && code < 0x800) || (length == 4 && (code < 0x10000 || code > 0x10FFFF)) ||
        (code >= 0xD800 && code <= 0xDFFF)) {
      return false;
    }
    p += length;
  }
  return true;
}

namespace {
absl::Status ValidateHistory(const TurnInput& input, const v1::Limits& limits);
absl::Status ValidateOptions(const chat::v1::ReplyOptions& options);
}  // namespace

absl::Status ValidateTurnInput(const TurnInput& input, const v1::Limits& limits) {
  const std::string text_field = Field(input.text_field, "text");
  if (absl::Status s = CheckText(input.text, text_field, limits.max_text_bytes(), false);
      !s.ok()) {
    return s;
  }
  if (input.attachments.size() > limits.max_attachments()) {
    return absl::InvalidArgumentError(absl::StrCat(
        input.attachment_fields.empty() ? std::string("attachments") : text_field, ": ",
        input.attachments.size(), " attachments, more than the limit of ",
        limits.max_attachments()));
  }
  image::Limits image_limits;
  image_limits.max_bytes = limits.max_attachment_bytes();
  image_limits.max_pixels = limits.max_image_pixels();
  for (size_t i = 0; i < input.attachments.size(); ++i) {
    absl::Status s = image::CheckAttachment(i, input.attachments[i], image_limits);
    if (!s.ok()) return RenameAttachmentField(s, i, input.attachment_fields);
  }
  // A session's history comes from the store; only a stateless turn's is checked here.
  if (!input.session_id.empty()) {
    HELPLINE_RETURN_IF_ERROR(
        session::ValidateSessionId(input.session_id, Field(input.session_field, "session_id")));
  } else if (absl::Status s = ValidateHistory(input, limits); !s.ok()) {
    return s;
  }
  return ValidateOptions(input.options);
}

namespace {

absl::Status ValidateHistory(const TurnInput& input, const v1::Limits& limits) {
  if (input.history.size() > limits.max_history_messages()) {
    return absl::InvalidArgumentError(absl::StrCat("history: ", input.history.size(),
                                                   " messages, more than the limit of ",
                                                   limits.max_history_messages()));
  }
  for (size_t i = 0; i < input.history.size(); ++i) {
    const std::string field = IndexedField(input.history_fields, i, "history");
    const chat::v1::HistoryMessage& message = input.history[i];
    if (message.role() != "user" && message.role() != "assistant") {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ".role: must be 'user' or 'assistant'"));
    }
    if (absl::Status s = CheckText(message.text(), input.history_fields.empty()
                                                       ? absl::StrCat(field, ".text")
                                                       : field,
                                   limits.max_text_bytes(), true);
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateOptions(const chat::v1::ReplyOptions& options) {
  if (options.stop_size() > 4) {
    return absl::InvalidArgumentError("options.stop: at most 4 stop strings");
  }
  for (int i = 0; i < options.stop_size(); ++i) {
    if (options.stop(i).empty() || !IsValidUtf8(options.stop(i))) {
      return absl::InvalidArgumentError(
          absl::StrCat("options.stop[", i, "]: must be non-empty UTF-8"));
    }
  }
  if (!std::isfinite(options.temperature()) || options.temperature() < 0 ||
      options.temperature() > 2) {
    return absl::InvalidArgumentError("options.temperature: must be in [0, 2]");
  }
  if (!std::isfinite(options.top_p()) || options.top_p() < 0 || options.top_p() > 1) {
    return absl::InvalidArgumentError("options.top_p: must be in [0, 1]");
  }
  if (!std::isfinite(options.frequency_penalty()) || std::abs(options.frequency_penalty()) > 2) {
    return absl::InvalidArgumentError("options.frequency_penalty: must be in [-2, 2]");
  }
  if (!std::isfinite(options.presence_penalty()) || std::abs(options.presence_penalty()) > 2) {
    return absl::InvalidArgumentError("options.presence_penalty: must be in [-2, 2]");
  }
  return absl::OkStatus();
}

}  // namespace

ActiveSessions::ActiveSessions(absl::Duration window) : window_(window) {}

void ActiveSessions::Touch(const std::string& key, absl::Time now) {
  size_t count;
  {
    std::lock_guard lock(mu_);
    last_turn_[key] = now;
    count = last_turn_.size();
  }
  ActiveSessionsGauge().Set(static_cast<double>(count));
}

size_t ActiveSessions::Refresh(absl::Time now) {
  size_t count;
  {
    std::lock_guard lock(mu_);
    for (auto it = last_turn_.begin(); it != last_turn_.end();) {
      if (now - it->second > window_) {
        it = last_turn_.erase(it);
      } else {
        ++it;
      }
    }
    count = last_turn_.size();
  }
  ActiveSessionsGauge().Set(static_cast<double>(count));
  return count;
}

TurnRunner::TurnRunner(session::SessionStore& store, StageClients clients,
                       const domain::Domain* domain, TurnOptions options)
    : store_(store),
      clients_(std::move(clients)),
      domain_(domain),
      options_(std::move(options)),
      store_executor_(std::make_unique<rpc::Executor>(std::max<uint32_t>(1, options_.store_threads),
                                                      std::max<uint32_t>(1, options_.store_queue),
                                                      "turn-store")),
      stream_executor_(std::make_unique<rpc::Executor>(
          std::max<uint32_t>(1, options_.stream_threads),
          std::max<uint32_t>(1, options_.stream_queue), "turn-stream")) {
  // Make the families visible on /metrics before the first turn.
  TurnsTotal();
  DegradedTotal();
  StageSeconds();
  ActiveSessionsGauge();
}

std::string TurnRunner::FallbackReply(const DialogueState& state,
                                      absl::string_view language) const {
  if (domain_ != nullptr) {
    absl::StatusOr<domain::Reply> reply = domain::RenderReply(*domain_, state, language);
    if (reply.ok() && !reply->text.empty()) return reply->text;
    if (!reply.ok()) {
      log::Error("fallback template failed", {{"error", std::string(reply.status().message())}});
    }
  }
  if (language == "zh" || state.language() == "zh") {
    return "抱歉，我现在无法完整回答。请稍后再试，或让我为您转接人工客服。";
  }
  return "Sorry, I can't fully answer right now. Please try again in a moment, or ask for a "
         "human agent.";
}

absl::StatusOr<TurnResult> TurnRunner::Run(const TurnInput& input) {
  // The caller's input outlives the wait, so the turn borrows it.
  absl::Notification done;
  absl::StatusOr<TurnResult> outcome;
  RunAsync(std::shared_ptr<const TurnInput>(&input, [](const TurnInput*) {}),
           [&outcome, &done](absl::StatusOr<TurnResult> result) {
             outcome = std::move(result);
             done.Notify();
           });
  done.WaitForNotification();
  return outcome;
}

void TurnRunner::Record(const absl::StatusOr<TurnResult>& result,
                        const std::vector<std::pair<std::string, double>>& timings) {
  for (const auto& [stage, seconds] : timings) StageSeconds().Get({stage}).Observe(seconds);
  if (!result.ok()) {
    if (absl::IsUnavailable(result.status()) || absl::IsDeadlineExceeded(result.status())) {
      ++dependency_failures_;
    }
    TurnsTotal().Get({OutcomeLabel(result.status())}).Increment();
    if (result.status().code() != absl::StatusCode::kInvalidArgument) {
      log::Warn("turn failed", {{"code", absl::StatusCodeToString(result.status().code())},
                                {"error", std::string(result.status().message())}});
    }
    return;
  }
  const chat::v1::ConverseResponse& response = result->response;
  if (response.degraded()) ++dependency_failures_;
  TurnsTotal().Get({response.degraded() ? "degraded" : "ok"}).Increment();
  for (const std::string& stage : response.degraded_stages()) {
    DegradedTotal().Get({stage}).Increment();
  }
}

// One turn driven by completions, without a thread of its own. Each stage call is a
// callback-API call whose completion runs the next step; the blocking store calls run on the
// runner's store executor. A streaming turn's generation (a blocking read loop that relays
// each delta to on_delta) runs on the runner's stream executor, then continues like the
// unary completion. Every pending callback holds a reference, so the turn lives until the
// last one has run. Steps run one after another (never two at once), except the overlapped
// preprocess + session load, which join through `pending_`.
class TurnRunner::AsyncTurn : public std::enable_shared_from_this<TurnRunner::AsyncTurn> {
 public:
  AsyncTurn(TurnRunner& runner, std::shared_ptr<const TurnInput> input, TurnCallback done)
      : runner_(runner),
        input_(std::move(input)),
        done_(std::move(done)),
        start_(absl::Now()),
        deadline_(input_->deadline),
        stage_deadline_(deadline_),
        stateful_(!input_->session_id.empty()),
        overlap_load_(stateful_ && input_->attachments.empty()) {
    // Stage calls stop a little before the turn's deadline so that a late generation still
    // leaves time for the fallback reply and the commit.
    if (deadline_ != absl::InfiniteFuture()) {
      stage_deadline_ = deadline_ - std::min(absl::Milliseconds(500), (deadline_ - start_) / 10);
    }
  }

  // Preprocess needs no session. With attachments it runs (then fusion) before the lease,
  // so that an attachment fusion cannot decode fails the turn before Redis is touched;
  // without, it runs while the session is leased and loaded.
  void Start() {
    std::shared_ptr<AsyncTurn> self = shared_from_this();
    preprocess_began_ = absl::Now();
    rpc::PrepareClientContext(preprocess_context_, runner_.clients_.preprocess_config,
                              stage_deadline_, input_->request_id);
    preprocess_request_.set_text(input_->text);
    pending_.store(overlap_load_ ? 2 : 1, std::memory_order_relaxed);
    runner_.clients_.preprocess->async()->Preprocess(
        &preprocess_context_, &preprocess_request_, &preprocess_response_,
        [self](grpc::Status status) {
          self->preprocess_status_ = std::move(status);
          self->preprocess_finished_ = absl::Now();
          self->PreprocessJoined();
        });
    if (!overlap_load_) return;
    absl::Status queued = runner_.store_executor_->TrySchedule([self] {
      log::ScopedContext log_context(self->input_->request_id, self->input_->session_id);
      self->load_status_ = self->LoadSession();
      if (!self->load_status_.ok()) self->preprocess_context_.TryCancel();
      self->PreprocessJoined();
    });
    if (!queued.ok()) {
      load_status_ = queued;
      preprocess_context_.TryCancel();
      PreprocessJoined();
    }
  }

 private:
  bool Passed() const { return absl::Now() >= deadline_; }
  static absl::Status DeadlineError(absl::string_view where) {
    return absl::DeadlineExceededError(
        absl::StrCat("the turn's deadline passed during ", where, "; the session is unchanged"));
  }
  void Timed(const char* stage, absl::Time began) {
    timings_.emplace_back(stage, absl::ToDoubleSeconds(absl::Now() - began));
  }

  // Lease + load; on the store executor.
  absl::Status LoadSession() {
    const absl::Time began = absl::Now();
    absl::StatusOr<session::Acquired> loaded = runner_.store_.AcquireAndLoad(
        {input_->tenant, input_->session_id}, runner_.options_.context_turns, deadline_);
    Timed("session_load", began);
    if (!loaded.ok()) {
      if (absl::IsDeadlineExceeded(loaded.status())) return DeadlineError("session load");
      return absl::Status(loaded.status().code(),
                          absl::StrCat("session store: ", loaded.status().message()));
    }
    acquired_ = *std::move(loaded);
    lease_armed_ = true;
    handoff_ = acquired_.session.record.handoff();
    runner_.active_sessions_.Touch(absl::StrCat(input_->tenant, ":", input_->session_id),
                                   absl::Now());
    return absl::OkStatus();
  }

  // Runs once preprocess (and the overlapped load) have completed.
  void PreprocessJoined() {
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    log::ScopedContext log_context(input_->request_id, input_->session_id);
    if (!load_status_.ok()) {
      Fail(load_status_);
      return;
    }
    timings_.emplace_back("preprocess",
                          absl::ToDoubleSeconds(preprocess_finished_ - preprocess_began_));
    if (preprocess_status_.ok() && !preprocess_response_.result().normalized_text().empty()) {
      text_ = std::move(*preprocess_response_.mutable_result());
    } else {
      if (Passed()) {
        Fail(DeadlineError("preprocess"));
        return;
      }
      log::Warn("stage degraded", {{"stage", "preprocess"},
                                   {"code", static_cast<int>(preprocess_status_.error_code())},
                                   {"error", preprocess_status_.error_message()}});
      degraded_.push_back("preprocess");
      text_.set_normalized_text(input_->text);
      text_.set_language("und");
    }
    fused_text_ = text_.normalized_text();
    StartFusion();
  }

  // Fusion, only when there is something to read.
  void StartFusion() {
    if (input_->attachments.empty()) {
      AfterFusion();
      return;
    }
    std::shared_ptr<AsyncTurn> self = shared_from_this();
    fusion_began_ = absl::Now();
    rpc::PrepareClientContext(fusion_context_, runner_.clients_.fusion_config, stage_deadline_,
                              input_->request_id);
    fusion_request_.set_text(text_.normalized_text());
    fusion_request_.set_language(text_.language());
    for (const auto& attachment : input_->attachments) {
      *fusion_request_.add_attachments() = attachment;
    }
    runner_.clients_.fusion->async()->Fuse(
        &fusion_context_, &fusion_request_, &fusion_response_, [self](grpc::Status status) {
          log::ScopedContext log_context(self->input_->request_id, self->input_->session_id);
          self->Fused(status);
        });
  }

  void Fused(const grpc::Status& status) {
    Timed("fusion", fusion_began_);
    fusion_request_.Clear();
    if (status.ok()) {
      if (!fusion_response_.fused_text().empty()) fused_text_ = fusion_response_.fused_text();
      evidence_ = std::move(*fusion_response_.mutable_evidence());
    } else if (status.error_code() == grpc::StatusCode::INVALID_ARGUMENT) {
      Fail(RenameAnyAttachmentField(FromGrpcStatus(status), input_->attachment_fields));
      return;
    } else {
      if (Passed()) {
        Fail(DeadlineError("fusion"));
        return;
      }
      log::Warn("stage degraded", {{"stage", "fusion"},
                                   {"code", static_cast<int>(status.error_code())},
                                   {"error", status.error_message()}});
      degraded_.push_back("fusion");
    }
    AfterFusion();
  }

  // Session: lease + load (unless it overlapped preprocess).
  void AfterFusion() {
    if (!stateful_ || overlap_load_) {
      StartDst();
      return;
    }
    std::shared_ptr<AsyncTurn> self = shared_from_this();
    absl::Status queued = runner_.store_executor_->TrySchedule([self] {
      log::ScopedContext log_context(self->input_->request_id, self->input_->session_id);
      absl::Status loaded = self->LoadSession();
      if (!loaded.ok()) {
        self->Fail(std::move(loaded));
        return;
      }
      self->StartDst();
    });
    if (!queued.ok()) Fail(std::move(queued));
  }

  // Dialogue state: not degradable.
  void StartDst() {
    if (stateful_) {
      history_ = acquired_.session.turns;
    } else {
      for (const chat::v1::HistoryMessage& message : input_->history) {
        if (message.role() == "user" || history_.empty() || !history_.back().reply().empty()) {
          Turn turn;
          turn.set_index(static_cast<uint32_t>(history_.size()));
          history_.push_back(std::move(turn));
        }
        if (message.role() == "user") {
          history_.back().set_user_text(message.text());
        } else {
          history_.back().set_reply(message.text());
        }
      }
    }
    turn_index_ = stateful_ ? static_cast<uint32_t>(acquired_.session.record.version())
                            : static_cast<uint32_t>(history_.size());
    if (history_.size() > runner_.options_.context_turns) {
      history_.erase(history_.begin(), history_.end() - runner_.options_.context_turns);
    }
    if (HandoffActive(handoff_)) {
      HumanOwnedTurn();
      return;
    }

    std::shared_ptr<AsyncTurn> self = shared_from_this();
    dst_began_ = absl::Now();
    rpc::PrepareClientContext(dst_context_, runner_.clients_.dst_config, stage_deadline_,
                              input_->request_id);
    dst_request_.set_text(fused_text_);
    dst_request_.set_user_text(text_.normalized_text());
    dst_request_.set_language(text_.language());
    *dst_request_.mutable_evidence() = evidence_;
    *dst_request_.mutable_prior_state() = acquired_.session.record.state();
    for (const Turn& turn : history_) *dst_request_.add_history() = turn;
    runner_.clients_.dst->async()->Track(
        &dst_context_, &dst_request_, &dst_response_, [self](grpc::Status status) {
          log::ScopedContext log_context(self->input_->request_id, self->input_->session_id);
          self->Tracked(status);
        });
  }

  void Tracked(const grpc::Status& status) {
    Timed("dst", dst_began_);
    dst_request_.Clear();
    if (!status.ok()) {
      if (Passed() || (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED &&
                       absl::Now() >= stage_deadline_)) {
        Fail(DeadlineError("dialogue state tracking"));
      } else if (status.error_code() == grpc::StatusCode::INVALID_ARGUMENT) {
        Fail(FromGrpcStatus(status));
      } else {
        Fail(absl::UnavailableError(absl::StrCat("dialogue state tracking is unavailable (",
                                                 status.error_message(),
                                                 "); the turn was not stored, retry later")));
      }
      return;
    }
    state_ = std::move(*dst_response_.mutable_state());
    if (state_.escalate() && !HandoffActive(handoff_)) {
      HandOver();
      return;
    }
    // A transaction waiting for the customer's yes, or just declined: the domain's confirm /
    // declined template repeats the exact values and says exactly what happens. A model's
    // paraphrase could misstate what is about to be done.
    if (state_.confirmation() == common::v1::CONFIRMATION_STATUS_PENDING ||
        state_.confirmation() == common::v1::CONFIRMATION_STATUS_DECLINED) {
      reply_ = runner_.FallbackReply(state_, text_.language() == "und" ? "" : text_.language());
      finish_reason_ = "stop";
      SendTemplateReply();
      return;
    }
    StartGeneration();
  }

  // A human agent owns the session (handoff INITIATED or ACCEPTED): the bot neither tracks
  // nor replies. The customer's line goes into the transcript with the state unchanged, and
  // the response carries the handoff so that the caller routes the line to the agent.
  void HumanOwnedTurn() {
    state_ = acquired_.session.record.state();
    reply_.clear();
    finish_reason_ = "handoff";
    log::Info("turn kept for a human agent", {{"handoff", HandoffStatusName(handoff_.status())},
                                             {"sequence", handoff_.sequence()}});
    Commit();
  }

  // The state escalates and no handoff is in progress: initiate one. The customer is told
  // by the domain's "escalate" template, not by the model, so that the words are always
  // the promise of a human (in the customer's language); the summary goes to the agent.
  void HandOver() {
    reply_ = runner_.FallbackReply(state_, text_.language() == "und" ? "" : text_.language());
    finish_reason_ = "stop";
    SummaryInput summary;
    summary.state = &state_;
    summary.history = &history_;
    summary.user_text = text_.normalized_text();
    summary.reply = reply_;
    summary.turn_index = turn_index_;
    summary.max_lines = runner_.options_.handoff_summary_lines;
    handoff_ = InitiateHandoff(state_, MakeHandoffSummary(summary), handoff_, turn_index_,
                               absl::Now());
    handoff_initiated_ = true;
    SendTemplateReply();
  }

  // reply_ is a template reply: relayed to a streaming client as one delta, then committed.
  void SendTemplateReply() {
    if (!input_->on_delta) {
      Commit();
      return;
    }
    // Relaying blocks until the client took the message: never on gRPC's callback threads.
    std::shared_ptr<AsyncTurn> self = shared_from_this();
    absl::Status queued = runner_.stream_executor_->TrySchedule([self] {
      log::ScopedContext log_context(self->input_->request_id, self->input_->session_id);
      if (!self->input_->on_delta(self->reply_)) {
        self->Fail(absl::CancelledError("the client went away; the turn was not stored"));
        return;
      }
      self->Commit();
    });
    if (!queued.ok()) Fail(std::move(queued));
  }

  // Generation, with the template fallback.
  void StartGeneration() {
    std::shared_ptr<AsyncTurn> self = shared_from_this();
    generation_began_ = absl::Now();
    rpc::PrepareClientContext(generation_context_, runner_.clients_.generation_config,
                              stage_deadline_, input_->request_id);
    generation::v1::GenerationContext& context = *generation_request_.mutable_context();
    context.set_domain(state_.domain());
    *context.mutable_state() = state_;
    context.set_user_text(text_.normalized_text());
    *context.mutable_evidence() = evidence_;
    for (const Turn& turn : history_) *context.add_history() = turn;
    if (text_.language() != "und") context.set_language(text_.language());
    // Length-prefixed, so that no (tenant, session) pair can spell another pair's key.
    if (stateful_) {
      context.set_cache_key(absl::StrCat(input_->tenant.size(), ":", input_->tenant, "/",
                                         input_->session_id));
    }
    generation::v1::SamplingParams& params = *generation_request_.mutable_params();
    params.set_max_tokens(input_->options.max_tokens());
    params.set_temperature(input_->options.temperature());
    params.set_top_p(input_->options.top_p());
    *params.mutable_stop() = input_->options.stop();
    params.set_seed(input_->options.seed());
    params.set_frequency_penalty(input_->options.frequency_penalty());
    params.set_presence_penalty(input_->options.presence_penalty());
    params.set_n(1);
    if (input_->on_delta) {
      absl::Status queued = runner_.stream_executor_->TrySchedule([self] {
        log::ScopedContext log_context(self->input_->request_id, self->input_->session_id);
        self->StreamGeneration();
      });
      if (!queued.ok()) Fail(std::move(queued));
      return;
    }
    runner_.clients_.generation->async()->Generate(
        &generation_context_, &generation_request_, &generation_response_,
        [self](grpc::Status status) {
          log::ScopedContext log_context(self->input_->request_id, self->input_->session_id);
          self->Generated(status, /*have_final=*/status.ok());
        });
  }

  // A streaming turn's generation, on the stream executor: relays each delta to on_delta
  // as it arrives. A client that goes away cancels the call.
  void StreamGeneration() {
    generation::v1::GenerateStreamRequest request;
    *request.mutable_context() = std::move(*generation_request_.mutable_context());
    *request.mutable_params() = std::move(*generation_request_.mutable_params());
    auto reader = runner_.clients_.generation->GenerateStream(&generation_context_, request);
    generation::v1::GenerateStreamResponse message;
    bool have_final = false;
    while (reader->Read(&message)) {
      if (message.has_final()) {
        generation_response_ = std::move(*message.mutable_final());
        have_final = true;
      } else if (!message.delta().empty()) {
        streamed_ += message.delta();
        if (!input_->on_delta(message.delta())) {
          client_gone_ = true;
          generation_context_.TryCancel();
          break;
        }
      }
    }
    Generated(reader->Finish(), have_final);
  }

  // Generation's outcome (unary completion, or the end of a stream).
  void Generated(const grpc::Status& status, bool have_final) {
    Timed("generation", generation_began_);
    generation_request_.Clear();
    if (client_gone_) {
      Fail(absl::CancelledError("the client went away; the turn was not stored"));
      return;
    }
    const generation::v1::GenerateResponse& response = generation_response_;
    if (status.ok() && have_final && !response.candidates().empty() &&
        response.chosen_index() < static_cast<uint32_t>(response.candidates_size())) {
      const generation::v1::Candidate& chosen = response.candidates(response.chosen_index());
      reply_ = chosen.text();
      finish_reason_ = FinishReasonName(chosen.finish_reason());
      usage_ = response.usage();
      // When the model ran and every candidate failed the reply filters, the template reply
      // is the designed safe answer, not a failed stage: not degraded for the turn
      // (generation counts these in helpline_generation_degraded_total{reason="no_candidate"}).
      if (response.degraded() && !AllModelCandidatesFiltered(response)) {
        degraded_.push_back("generation");
      }
      // A stream whose deltas did not spell the chosen text (should not happen) still ends
      // with what the client saw.
      if (input_->on_delta && streamed_.empty() && !reply_.empty() &&
          !input_->on_delta(reply_)) {
        Fail(absl::CancelledError("the client went away; the turn was not stored"));
        return;
      }
    } else {
      if (Passed()) {
        Fail(DeadlineError("generation"));
        return;
      }
      // The request's options are the client's (e.g. max_tokens over generation's limit):
      // the client's error, not a stage failure to hide behind a template.
      if (status.error_code() == grpc::StatusCode::INVALID_ARGUMENT) {
        Fail(FromGrpcStatus(status));
        return;
      }
      log::Warn("stage degraded", {{"stage", "generation"},
                                   {"code", static_cast<int>(status.error_code())},
                                   {"error", status.error_message()}});
      degraded_.push_back("generation");
      if (!streamed_.empty()) {
        // The client already has part of a reply; it stays what it got.
        reply_ = streamed_;
        finish_reason_ = "cancelled";
      } else {
        reply_ = runner_.FallbackReply(state_, text_.language() == "und" ? "" : text_.language());
        if (input_->on_delta && !input_->on_delta(reply_)) {
          Fail(absl::CancelledError("the client went away; the turn was not stored"));
          return;
        }
      }
    }
    Commit();
  }

  // Commit (stateful turns), on the store executor.
  void Commit() {
    if (Passed()) {
      Fail(DeadlineError("the turn"));
      return;
    }
    if (!stateful_) {
      Succeed();
      return;
    }
    std::shared_ptr<AsyncTurn> self = shared_from_this();
    absl::Status queued = runner_.store_executor_->TrySchedule([self] {
      log::ScopedContext log_context(self->input_->request_id, self->input_->session_id);
      self->CommitOnStore();
    });
    if (!queued.ok()) Fail(std::move(queued));
  }

  void CommitOnStore() {
    // The store queue may have held the commit past the deadline; the caller has been told
    // DEADLINE_EXCEEDED by then, so the turn must not land.
    if (Passed()) {
      Fail(DeadlineError("the turn"));
      return;
    }
    Turn turn;
    turn.set_index(turn_index_);
    turn.set_user_text(text_.normalized_text());
    turn.set_reply(reply_);
    turn.set_intent(state_.active_intent());
    *turn.mutable_state() = state_;
    for (const std::string& stage : degraded_) turn.add_degraded_stages(stage);
    turn.set_request_id(input_->request_id);
    *turn.mutable_create_time() =
        google::protobuf::util::TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(absl::Now()));
    const absl::Time began = absl::Now();
    common::v1::SessionRecord record;
    *record.mutable_state() = state_;
    if (handoff_.status() != common::v1::HANDOFF_STATUS_UNSPECIFIED) {
      *record.mutable_handoff() = handoff_;
    }
    absl::StatusOr<uint64_t> committed = runner_.store_.CommitAndRelease(
        acquired_.lease, acquired_.session.record.version(), record, turn);
    Timed("session_commit", began);
    if (!committed.ok()) {
      if (absl::IsAborted(committed.status())) {
        Fail(absl::AbortedError(absl::StrCat("the session changed while this turn ran (",
                                             committed.status().message(),
                                             "); the turn was not stored, retry it")));
      } else {
        // A timeout leaves the atomic commit either done or not done: say so.
        Fail(absl::UnavailableError(absl::StrCat("session store: ", committed.status().message(),
                                                 "; the turn may not have been stored")));
      }
      return;
    }
    lease_armed_ = false;
    Succeed();
  }

  void Succeed() {
    TurnResult result;
    chat::v1::ConverseResponse& out = result.response;
    out.set_session_id(input_->session_id);
    out.set_reply(reply_);
    out.set_degraded(!degraded_.empty());
    for (const std::string& stage : degraded_) out.add_degraded_stages(stage);
    *out.mutable_usage() = usage_;
    out.set_finish_reason(finish_reason_);
    out.set_turn_index(turn_index_);
    out.set_request_id(input_->request_id);
    for (const auto& [stage, seconds] : timings_) {
      chat::v1::StageTiming* timing = out.add_timings();
      timing->set_stage(stage);
      timing->set_micros(static_cast<uint64_t>(std::llround(seconds * 1e6)));
    }
    *out.mutable_evidence() = evidence_;
    if (HandoffActive(handoff_)) *out.mutable_handoff() = handoff_;
    // Only a stored handoff can be accepted; a stateless one is the caller's to route.
    if (handoff_initiated_ && stateful_) CountHandoff(handoff_);
    log::Info("turn done", {{"turn_index", turn_index_},
                            {"intent", state_.active_intent()},
                            {"degraded", out.degraded()},
                            {"millis", absl::ToInt64Milliseconds(absl::Now() - start_)}});
    *out.mutable_state() = std::move(state_);
    Deliver(std::move(result));
  }

  // Ends the turn with `error`; a held lease is released first (on the store executor).
  void Fail(absl::Status error) {
    if (!lease_armed_) {
      Deliver(std::move(error));
      return;
    }
    lease_armed_ = false;
    std::shared_ptr<AsyncTurn> self = shared_from_this();
    auto release = [self, error] {
      log::ScopedContext log_context(self->input_->request_id, self->input_->session_id);
      self->runner_.store_.ReleaseLease(self->acquired_.lease);
      self->Deliver(error);
    };
    if (!runner_.store_executor_->TrySchedule(release).ok()) release();
  }

  void Deliver(absl::StatusOr<TurnResult> result) {
    runner_.Record(result, timings_);
    TurnCallback done = std::move(done_);
    done(std::move(result));
  }

  TurnRunner& runner_;
  const std::shared_ptr<const TurnInput> input_;
  TurnCallback done_;
  const absl::Time start_;
  const absl::Time deadline_;
  absl::Time stage_deadline_;
  const bool stateful_;
  const bool overlap_load_;
  std::vector<std::pair<std::string, double>> timings_;
  std::vector<std::string> degraded_;

  // Preprocess and the overlapped load.
  std::atomic<int> pending_{0};
  grpc::ClientContext preprocess_context_;
  preprocess::v1::PreprocessRequest preprocess_request_;
  preprocess::v1::PreprocessResponse preprocess_response_;
  grpc::Status preprocess_status_;
  absl::Time preprocess_began_;
  absl::Time preprocess_finished_;
  absl::Status load_status_;
  session::Acquired acquired_;
  bool lease_armed_ = false;
  common::v1::PreprocessedText text_;

  grpc::ClientContext fusion_context_;
  fusion::v1::FuseRequest fusion_request_;
  fusion::v1::FuseResponse fusion_response_;
  absl::Time fusion_began_;
  std::string fused_text_;
  google::protobuf::RepeatedPtrField<common::v1::Evidence> evidence_;

  std::vector<Turn> history_;
  uint32_t turn_index_ = 0;
  // The session's handoff: as loaded, then as this turn leaves it.
  common::v1::Handoff handoff_;
  bool handoff_initiated_ = false;  // This turn initiated handoff_.
  grpc::ClientContext dst_context_;
  dst::v1::TrackRequest dst_request_;
  dst::v1::TrackResponse dst_response_;
  absl::Time dst_began_;
  DialogueState state_;

  grpc::ClientContext generation_context_;
  generation::v1::GenerateRequest generation_request_;
  generation::v1::GenerateResponse generation_response_;
  absl::Time generation_began_;
  std::string streamed_;      // What a stream relayed so far.
  bool client_gone_ = false;  // on_delta answered false.
  std::string reply_;
  std::string finish_reason_ = "stop";
  common::v1::Usage usage_;
};

void TurnRunner::RunAsync(std::shared_ptr<const TurnInput> input, TurnCallback done) {
  if (absl::Status s = ValidateTurnInput(*input, options_.limits); !s.ok()) {
    Record(s, {});
    done(std::move(s));
    return;
  }
  std::make_shared<AsyncTurn>(*this, std::move(input), std::move(done))->Start();
}

}  // namespace helpline::gateway
