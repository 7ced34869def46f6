#include "services/fusion/fusion_service.h"

#include <exception>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/grpc/server.h"
#include "common/log/log.h"
#include "common/status/status.h"

namespace helpline::fusion {
namespace {

// Runs the fuser and converts anything thrown into a status (the one exception boundary).
absl::Status RunFuser(const Fuser& fuser, const v1::FuseRequest& request,
                      std::chrono::system_clock::time_point deadline, v1::FuseResponse& response) {
  try {
    absl::StatusOr<v1::FuseResponse> result = fuser.Fuse(request, deadline);
    if (!result.ok()) return result.status();
    response = std::move(*result);
    return absl::OkStatus();
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("fusion failed: ", e.what()));
  }
}

}  // namespace

FusionService::FusionService(const Fuser& fuser, rpc::Executor& executor)
    : fuser_(fuser), executor_(executor) {}

grpc::ServerUnaryReactor* FusionService::Fuse(grpc::CallbackServerContext* context,
                                              const v1::FuseRequest* request,
                                              v1::FuseResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  std::string request_id = rpc::RequestIdOf(*context);
  const std::chrono::system_clock::time_point deadline = context->deadline();
  if (request->attachments().empty()) {
    log::ScopedContext log_context(request_id, "");
    reactor->Finish(ToGrpcStatus(RunFuser(fuser_, *request, deadline, *response)));
    return reactor;
  }
  absl::Status queued = executor_.TrySchedule(
      [this, context, reactor, request, response, deadline, request_id = std::move(request_id)] {
        log::ScopedContext log_context(request_id, "");
        if (context->IsCancelled()) {
          reactor->Finish(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled by the caller"));
          return;
        }
        absl::Status status = RunFuser(fuser_, *request, deadline, *response);
        if (!status.ok() && !absl::IsInvalidArgument(status)) {
          log::Error("fuse failed", {{"status", status.ToString()}});
        }
        reactor->Finish(ToGrpcStatus(status));
      });
  if (!queued.ok()) reactor->Finish(ToGrpcStatus(queued));
  return reactor;
}

}  // namespace helpline::fusion
