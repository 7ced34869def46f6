#include "services/dst/dst_service.h"

#include <exception>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/grpc/server.h"
#include "common/log/log.h"
#include "common/status/status.h"

namespace helpline::dst {

DstService::DstService(const Tracker& tracker, metrics::Registry& registry, rpc::Executor* executor)
    : tracker_(tracker),
      executor_(executor),
      intents_(registry.AddCounter("helpline_dst_intents_total",
                                   "Turns tracked, by the active intent after the turn "
                                   "(\"none\" when no intent is known).",
                                   {"intent"})),
      escalations_(registry.AddCounter("helpline_dst_escalations_total",
                                       "Turns that started an escalation to a human, by reason.",
                                       {"reason"})),
      customer_request_escalations_(escalations_.Get({"customer_request"})),
      intent_policy_escalations_(escalations_.Get({"intent_policy"})) {
  // Export every series at 0 from the start, so that rate() works from the first turn.
  for (const domain::Intent& intent : tracker_.domain().intents) {
    intent_counters_[intent.name] = &intents_.Get({intent.name});
  }
  intent_counters_["none"] = &intents_.Get({"none"});
}

metrics::Counter& DstService::IntentCounter(const std::string& intent) {
  auto it = intent_counters_.find(intent);
  return it != intent_counters_.end() ? *it->second : intents_.Get({intent});
}

absl::Status DstService::TrackOne(const v1::TrackRequest& request, v1::TrackResponse& response) {
  const common::v1::DialogueState& prior = request.prior_state();
  if (!prior.domain().empty() && prior.domain() != tracker_.domain().name) {
    return absl::InvalidArgumentError(absl::StrCat("prior_state.domain: '", prior.domain(),
                                                   "' is not this service's domain '",
                                                   tracker_.domain().name, "'"));
  }
  TurnInput input;
  input.user_text = request.user_text();
  // Callers that only send the fused text without evidence: it is the customer's text.
  if (input.user_text.empty() && request.evidence().empty()) input.user_text = request.text();
  input.language = request.language();
  input.evidence.assign(request.evidence().begin(), request.evidence().end());
  input.prior = prior;
  // The reply the customer answers, for the learned tracker (the history's last turn).
  if (!request.history().empty()) input.last_reply = request.history().rbegin()->reply();
  absl::StatusOr<TrackResult> result = tracker_.Track(input);
  if (!result.ok()) return result.status();

  const common::v1::DialogueState& state = result->state;
  static const std::string kNone = "none";
  IntentCounter(state.active_intent().empty() ? kNone : state.active_intent()).Increment();
  if (state.escalate() && !prior.escalate()) {
    const std::string& reason = state.escalation_reason();
    if (reason == "customer_request") {
      customer_request_escalations_.Increment();
    } else if (reason == "intent_policy") {
      intent_policy_escalations_.Increment();
    } else {
      escalations_.Get({reason}).Increment();
    }
  }
  if (log::Enabled(log::Level::kDebug)) {  // Do not build the fields when they are dropped.
    log::Debug("tracked", {{"intent", state.active_intent()},
                           {"intent_confidence", state.intent_confidence()},
                           {"best_intent", result->best.intent},
                           {"best_score", result->best.score},
                           {"missing_slots", state.missing_slots_size()},
                           {"escalate", state.escalate()},
                           {"turn", state.turn_count()}});
  }
  *response.mutable_state() = std::move(result->state);
  return absl::OkStatus();
}

grpc::ServerUnaryReactor* DstService::Track(grpc::CallbackServerContext* context,
                                            const v1::TrackRequest* request,
                                            v1::TrackResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (executor_ == nullptr) {
    TrackAndFinish(reactor, rpc::RequestIdOf(*context), *request, *response);
    return reactor;
  }
  absl::Status queued =
      executor_->TrySchedule([this, reactor, request, response, id = rpc::RequestIdOf(*context)] {
        TrackAndFinish(reactor, id, *request, *response);
      });
  if (!queued.ok()) reactor->Finish(ToGrpcStatus(queued));  // Backpressure.
  return reactor;
}

void DstService::TrackAndFinish(grpc::ServerUnaryReactor* reactor, const std::string& request_id,
                                const v1::TrackRequest& request, v1::TrackResponse& response) {
  log::ScopedContext log_context(request_id, "");
  absl::Status status;
  try {
    status = TrackOne(request, response);
  } catch (const std::exception& e) {  // Our code does not throw; std::bad_alloc might.
    status = absl::InternalError(absl::StrCat("tracking failed: ", e.what()));
  }
  if (!status.ok() && !absl::IsInvalidArgument(status)) {
    log::Error("track failed", {{"status", status.ToString()}});
  }
  reactor->Finish(ToGrpcStatus(status));
}

}  // namespace helpline::dst
