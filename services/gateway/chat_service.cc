#include "services/gateway/chat_service.h"

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/grpc/server.h"
#include "common/log/log.h"
#include "common/status/status.h"

namespace helpline::gateway {
namespace {

using chat::v1::ConverseResponse;
using chat::v1::ConverseStreamResponse;

absl::StatusOr<Principal> Authenticate(const Authenticator& auth,
                                       const grpc::CallbackServerContext& context) {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) return auth.Authenticate("");
  return auth.Authenticate(absl::string_view(it->second.data(), it->second.size()));
}

absl::Time TurnDeadline(const grpc::CallbackServerContext& context, absl::Duration timeout) {
  const absl::Time own = absl::Now() + timeout;
  const auto caller = context.deadline();
  if (caller >= std::chrono::system_clock::time_point::max() - std::chrono::hours(24 * 365)) {
    return own;
  }
  return std::min(own, absl::FromChrono(caller));
}

template <typename Request>
TurnInput ToTurnInput(const Request& request, const std::string& tenant,
                      const std::string& request_id, absl::Time deadline) {
  TurnInput input;
  input.tenant = tenant;
  input.session_id = request.session_id();
  input.text = request.text();
  input.attachments.assign(request.attachments().begin(), request.attachments().end());
  input.options = request.options();
  if (input.session_id.empty()) {
    input.history.assign(request.history().begin(), request.history().end());
  }
  input.request_id = request_id;
  input.deadline = deadline;
  return input;
}

// Auth, validation and the rate limit, before any work is queued. Adds a retry hint to the
// trailing metadata when rate limited.
absl::Status Admit(const ChatDeps& deps, grpc::CallbackServerContext& context,
                   const TurnInput& input) {
  HELPLINE_RETURN_IF_ERROR(ValidateTurnInput(input, deps.runner->limits()));
  absl::Duration retry_after;
  absl::Status admitted = deps.limiter->Admit(input.tenant, &retry_after);
  if (!admitted.ok()) {
    context.AddTrailingMetadata(
        "retry-after-ms", absl::StrCat(std::max<int64_t>(1, absl::ToInt64Milliseconds(
                                                                 retry_after))));
  }
  return admitted;
}

// Relays a streamed turn: deltas, then the final response. Write() blocks the calling
// (executor) thread until gRPC has taken the message.
class ConverseStreamReactor final : public grpc::ServerWriteReactor<ConverseStreamResponse> {
 public:
  ConverseStreamReactor(const ChatDeps& deps, grpc::CallbackServerContext* context,
                        const chat::v1::ConverseStreamRequest* request)
      : deps_(deps), context_(context), request_(request) {}

  void Start() {
    const std::string request_id = rpc::RequestIdOf(*context_);
    context_->AddInitialMetadata("x-request-id", request_id);
    absl::StatusOr<Principal> principal = Authenticate(*deps_.auth, *context_);
    if (!principal.ok()) {
      Finish(ToGrpcStatus(principal.status()));
      return;
    }
    input_ = ToTurnInput(*request_, principal->tenant, request_id,
                         TurnDeadline(*context_, deps_.turn_timeout));
    if (absl::Status s = Admit(deps_, *context_, input_); !s.ok()) {
      Finish(ToGrpcStatus(s));
      return;
    }
    absl::Status queued = deps_.executor->TrySchedule([this] { RunTurn(); });
    if (!queued.ok()) Finish(ToGrpcStatus(queued));
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard lock(mu_);
    writing_ = false;
    write_ok_ = ok;
    cv_.notify_all();
  }
  void OnCancel() override {}
  void OnDone() override { delete this; }

 private:
  void RunTurn() {
    log::ScopedContext log_context(input_.request_id, input_.session_id);
    input_.on_delta = [this](absl::string_view delta) {
      ConverseStreamResponse message;
      message.set_delta(std::string(delta));
      return Write(message);
    };
    absl::StatusOr<TurnResult> result = deps_.runner->Run(input_);
    context_->AddTrailingMetadata("x-request-id", input_.request_id);
    if (!result.ok()) {
      Finish(ToGrpcStatus(result.status()));
      return;
    }
    ConverseStreamResponse last;
    *last.mutable_final() = std::move(result->response);
    Write(last);
    Finish(grpc::Status::OK);
  }

  bool Write(const ConverseStreamResponse& message) {
    if (context_->IsCancelled()) return false;
    {
      std::lock_guard lock(mu_);
      if (!write_ok_) return false;
      pending_ = message;
      writing_ = true;
    }
    StartWrite(&pending_);
    std::unique_lock lock(mu_);
    cv_.wait(lock, [this] { return !writing_; });
    return write_ok_;
  }

  const ChatDeps deps_;
  grpc::CallbackServerContext* context_;
  const chat::v1::ConverseStreamRequest* request_;
  TurnInput input_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool writing_ = false;
  bool write_ok_ = true;
  ConverseStreamResponse pending_;
};

}  // namespace

grpc::ServerUnaryReactor* ChatService::Converse(grpc::CallbackServerContext* context,
                                                const chat::v1::ConverseRequest* request,
                                                ConverseResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const std::string request_id = rpc::RequestIdOf(*context);
  context->AddInitialMetadata("x-request-id", request_id);
  absl::StatusOr<Principal> principal = Authenticate(*deps_.auth, *context);
  if (!principal.ok()) {
    reactor->Finish(ToGrpcStatus(principal.status()));
    return reactor;
  }
  auto input = std::make_shared<TurnInput>(ToTurnInput(
      *request, principal->tenant, request_id, TurnDeadline(*context, deps_.turn_timeout)));
  if (absl::Status s = Admit(deps_, *context, *input); !s.ok()) {
    reactor->Finish(ToGrpcStatus(s));
    return reactor;
  }
  if (turns_in_flight_.fetch_add(1) >= deps_.max_turns_in_flight &&
      deps_.max_turns_in_flight != 0) {
    --turns_in_flight_;
    reactor->Finish(ToGrpcStatus(absl::ResourceExhaustedError(absl::StrCat(
        "the gateway is running ", deps_.max_turns_in_flight, " turns already; retry later"))));
    return reactor;
  }
  log::ScopedContext log_context(input->request_id, input->session_id);
  deps_.runner->RunAsync(input, [this, context, reactor, response,
                                 request_id](absl::StatusOr<TurnResult> result) {
    context->AddTrailingMetadata("x-request-id", request_id);
    if (result.ok()) *response = std::move(result->response);
    --turns_in_flight_;
    reactor->Finish(ToGrpcStatus(result.status()));
  });
  return reactor;
}

grpc::ServerWriteReactor<ConverseStreamResponse>* ChatService::ConverseStream(
    grpc::CallbackServerContext* context, const chat::v1::ConverseStreamRequest* request) {
  auto* reactor = new ConverseStreamReactor(deps_, context, request);
  reactor->Start();
  return reactor;
}

namespace {

// The session a SessionService call may touch: the caller's tenant and a valid session id.
// UNAUTHENTICATED or INVALID_ARGUMENT otherwise.
absl::StatusOr<session::SessionKey> AuthorizedSession(const Authenticator& auth,
                                                      const grpc::CallbackServerContext& context,
                                                      const std::string& session_id) {
  HELPLINE_ASSIGN_OR_RETURN(Principal principal, Authenticate(auth, context));
  HELPLINE_RETURN_IF_ERROR(session::ValidateSessionId(session_id));
  return session::SessionKey{principal.tenant, session_id};
}

// Another tenant's session is as unknown as one that never existed.
absl::Status SessionNotFound(const session::SessionKey& key) {
  return absl::NotFoundError(absl::StrCat("session_id: session '", key.session_id, "' not found"));
}

}  // namespace

grpc::ServerUnaryReactor* SessionService::GetSession(grpc::CallbackServerContext* context,
                                                     const chat::v1::GetSessionRequest* request,
                                                     chat::v1::GetSessionResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const std::string request_id = rpc::RequestIdOf(*context);
  context->AddInitialMetadata("x-request-id", request_id);
  absl::StatusOr<session::SessionKey> authorized =
      AuthorizedSession(*deps_.auth, *context, request->session_id());
  if (!authorized.ok()) {
    reactor->Finish(ToGrpcStatus(authorized.status()));
    return reactor;
  }
  session::SessionKey key = *std::move(authorized);
  absl::Status queued = deps_.executor->TrySchedule([this, reactor, response, key, request_id] {
    log::ScopedContext log_context(request_id, key.session_id);
    absl::StatusOr<session::LoadedSession> loaded = deps_.store->Load(key, deps_.max_turns);
    if (!loaded.ok()) {
      reactor->Finish(ToGrpcStatus(absl::Status(
          loaded.status().code(), absl::StrCat("session store: ", loaded.status().message()))));
      return;
    }
    if (!loaded->exists) {
      reactor->Finish(ToGrpcStatus(SessionNotFound(key)));
      return;
    }
    response->set_session_id(key.session_id);
    *response->mutable_state() = loaded->record.state();
    for (auto& turn : loaded->turns) *response->add_turns() = std::move(turn);
    response->set_version(loaded->record.version());
    *response->mutable_update_time() = loaded->record.update_time();
    if (loaded->record.has_handoff()) *response->mutable_handoff() = loaded->record.handoff();
    reactor->Finish(grpc::Status::OK);
  });
  if (!queued.ok()) reactor->Finish(ToGrpcStatus(queued));
  return reactor;
}

grpc::ServerUnaryReactor* SessionService::DeleteSession(
    grpc::CallbackServerContext* context, const chat::v1::DeleteSessionRequest* request,
    chat::v1::DeleteSessionResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const std::string request_id = rpc::RequestIdOf(*context);
  context->AddInitialMetadata("x-request-id", request_id);
  absl::StatusOr<session::SessionKey> authorized =
      AuthorizedSession(*deps_.auth, *context, request->session_id());
  if (!authorized.ok()) {
    reactor->Finish(ToGrpcStatus(authorized.status()));
    return reactor;
  }
  session::SessionKey key = *std::move(authorized);
  absl::Status queued = deps_.executor->TrySchedule([this, reactor, response, key, request_id] {
    log::ScopedContext log_context(request_id, key.session_id);
    absl::StatusOr<int> erased = deps_.store->Erase(key);
    if (absl::IsNotFound(erased.status())) {
      reactor->Finish(ToGrpcStatus(SessionNotFound(key)));
      return;
    }
    if (!erased.ok()) {
      reactor->Finish(ToGrpcStatus(absl::Status(
          erased.status().code(), absl::StrCat("session store: ", erased.status().message()))));
      return;
    }
    response->set_deleted_keys(static_cast<uint32_t>(*erased));
    log::Info("session erased", {{"deleted_keys", *erased}});
    reactor->Finish(grpc::Status::OK);
  });
  if (!queued.ok()) reactor->Finish(ToGrpcStatus(queued));
  return reactor;
}

namespace {

// Runs one handoff call on the executor: auth and the session id first, then `call` with the
// caller's session; `fill` writes the handoff into the response.
template <typename Call, typename Fill>
grpc::ServerUnaryReactor* RunHandoffCall(const ChatDeps& deps,
                                         grpc::CallbackServerContext* context,
                                         const std::string& session_id, Call call, Fill fill) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const std::string request_id = rpc::RequestIdOf(*context);
  context->AddInitialMetadata("x-request-id", request_id);
  absl::StatusOr<session::SessionKey> authorized =
      AuthorizedSession(*deps.auth, *context, session_id);
  if (!authorized.ok()) {
    reactor->Finish(ToGrpcStatus(authorized.status()));
    return reactor;
  }
  const absl::Time deadline = TurnDeadline(*context, deps.turn_timeout);
  absl::Status queued = deps.executor->TrySchedule(
      [reactor, key = *std::move(authorized), request_id, deadline, call, fill] {
        log::ScopedContext log_context(request_id, key.session_id);
        absl::StatusOr<common::v1::Handoff> handoff = call(key, deadline);
        if (handoff.ok()) fill(key.session_id, *std::move(handoff));
        reactor->Finish(ToGrpcStatus(handoff.status()));
      });
  if (!queued.ok()) reactor->Finish(ToGrpcStatus(queued));
  return reactor;
}

}  // namespace

grpc::ServerUnaryReactor* HandoffService::GetHandoff(grpc::CallbackServerContext* context,
                                                     const chat::v1::GetHandoffRequest* request,
                                                     chat::v1::GetHandoffResponse* response) {
  HandoffDesk* desk = deps_.handoffs;
  return RunHandoffCall(
      deps_, context, request->session_id(),
      [desk](const session::SessionKey& key, absl::Time) { return desk->Get(key); },
      [response](const std::string& session_id, common::v1::Handoff handoff) {
        response->set_session_id(session_id);
        *response->mutable_handoff() = std::move(handoff);
      });
}

grpc::ServerUnaryReactor* HandoffService::AcceptHandoff(
    grpc::CallbackServerContext* context, const chat::v1::AcceptHandoffRequest* request,
    chat::v1::AcceptHandoffResponse* response) {
  HandoffDesk* desk = deps_.handoffs;
  const std::string agent_id = request->agent_id();
  return RunHandoffCall(
      deps_, context, request->session_id(),
      [desk, agent_id](const session::SessionKey& key, absl::Time deadline) {
        return desk->Accept(key, agent_id, deadline);
      },
      [response](const std::string& session_id, common::v1::Handoff handoff) {
        response->set_session_id(session_id);
        *response->mutable_handoff() = std::move(handoff);
      });
}

grpc::ServerUnaryReactor* HandoffService::ReleaseHandoff(
    grpc::CallbackServerContext* context, const chat::v1::ReleaseHandoffRequest* request,
    chat::v1::ReleaseHandoffResponse* response) {
  HandoffDesk* desk = deps_.handoffs;
  const std::string agent_id = request->agent_id();
  return RunHandoffCall(
      deps_, context, request->session_id(),
      [desk, agent_id](const session::SessionKey& key, absl::Time deadline) {
        return desk->Release(key, agent_id, deadline);
      },
      [response](const std::string& session_id, common::v1::Handoff handoff) {
        response->set_session_id(session_id);
        *response->mutable_handoff() = std::move(handoff);
      });
}

}  // namespace helpline::gateway
