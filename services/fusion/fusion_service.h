// gRPC adapter of helpline-fusion: proto in/out, status mapping. OCR blocks, so requests with
// attachments run on the bounded executor (full queue: RESOURCE_EXHAUSTED); requests without
// attachments are answered inline.
#pragma once

#include "common/grpc/executor.h"
#include "grpcpp/grpcpp.h"
#include "helpline/fusion/v1/fusion_service.grpc.pb.h"
#include "services/fusion/fuser.h"

namespace helpline::fusion {

class FusionService final : public v1::FusionService::CallbackService {
 public:
  // Neither is owned; both must outlive the service (drain the server before the executor).
  FusionService(const Fuser& fuser, rpc::Executor& executor);

  grpc::ServerUnaryReactor* Fuse(grpc::CallbackServerContext* context,
                                 const v1::FuseRequest* request,
                                 v1::FuseResponse* response) override;

 private:
  const Fuser& fuser_;
  rpc::Executor& executor_;
};

}  // namespace helpline::fusion
