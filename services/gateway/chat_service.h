// gRPC adapters of the gateway: helpline.chat.v1.ChatService (Converse, ConverseStream),
// SessionService (GetSession, DeleteSession) and HandoffService (GetHandoff, AcceptHandoff,
// ReleaseHandoff). Callback API. Converse runs its turn asynchronously (TurnRunner::RunAsync:
// no thread held while a stage works); streamed turns, the session calls and the handoff
// calls run on the executor. Every call needs `authorization: Bearer <key>` metadata; the
// key's tenant scopes the sessions. The request id (x-request-id metadata, or a new one) is
// echoed in the response and in the initial and trailing metadata.
#pragma once

#include <atomic>

#include "absl/time/time.h"
#include "common/grpc/executor.h"
#include "common/redis/session_store.h"
#include "helpline/chat/v1/chat_service.grpc.pb.h"
#include "services/gateway/auth.h"
#include "services/gateway/handoff.h"
#include "services/gateway/turn.h"

namespace helpline::gateway {

// What the adapters borrow; everything must outlive the services.
struct ChatDeps {
  const Authenticator* auth = nullptr;
  TenantRateLimiter* limiter = nullptr;
  TurnRunner* runner = nullptr;
  session::SessionStore* store = nullptr;
  HandoffDesk* handoffs = nullptr;
  rpc::Executor* executor = nullptr;
  // Deadline of a turn when the caller's is later or unset.
  absl::Duration turn_timeout = absl::Seconds(20);
  // Turns returned by GetSession at most.
  size_t max_turns = 50;
  // Converse turns running at once at most (more: RESOURCE_EXHAUSTED); 0 = no limit.
  size_t max_turns_in_flight = 0;
};

// Thread-safe.
class ChatService final : public chat::v1::ChatService::CallbackService {
 public:
  explicit ChatService(ChatDeps deps) : deps_(deps) {}

  grpc::ServerUnaryReactor* Converse(grpc::CallbackServerContext* context,
                                     const chat::v1::ConverseRequest* request,
                                     chat::v1::ConverseResponse* response) override;
  grpc::ServerWriteReactor<chat::v1::ConverseStreamResponse>* ConverseStream(
      grpc::CallbackServerContext* context,
      const chat::v1::ConverseStreamRequest* request) override;

 private:
  ChatDeps deps_;
  std::atomic<size_t> turns_in_flight_{0};
};

// Thread-safe.
class SessionService final : public chat::v1::SessionService::CallbackService {
 public:
  explicit SessionService(ChatDeps deps) : deps_(deps) {}

  grpc::ServerUnaryReactor* GetSession(grpc::CallbackServerContext* context,
                                       const chat::v1::GetSessionRequest* request,
                                       chat::v1::GetSessionResponse* response) override;
  grpc::ServerUnaryReactor* DeleteSession(grpc::CallbackServerContext* context,
                                          const chat::v1::DeleteSessionRequest* request,
                                          chat::v1::DeleteSessionResponse* response) override;

 private:
  ChatDeps deps_;
};

// The helpdesk's side of handoffs (handoff.h). Thread-safe; every call runs on the executor.
class HandoffService final : public chat::v1::HandoffService::CallbackService {
 public:
  explicit HandoffService(ChatDeps deps) : deps_(deps) {}

  grpc::ServerUnaryReactor* GetHandoff(grpc::CallbackServerContext* context,
                                       const chat::v1::GetHandoffRequest* request,
                                       chat::v1::GetHandoffResponse* response) override;
  grpc::ServerUnaryReactor* AcceptHandoff(grpc::CallbackServerContext* context,
                                          const chat::v1::AcceptHandoffRequest* request,
                                          chat::v1::AcceptHandoffResponse* response) override;
  grpc::ServerUnaryReactor* ReleaseHandoff(grpc::CallbackServerContext* context,
                                           const chat::v1::ReleaseHandoffRequest* request,
                                           chat::v1::ReleaseHandoffResponse* response) override;

 private:
  ChatDeps deps_;
};

}  // namespace helpline::gateway
