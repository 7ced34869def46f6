// gRPC adapter of the tracker: DialogueStateService.Track. Proto in, proto out, status
// mapping and metrics; the tracking itself runs on a bounded executor (a full queue answers
// RESOURCE_EXHAUSTED).
#pragma once

#include "common/grpc/executor.h"
#include "common/metrics/metrics.h"
#include "grpcpp/grpcpp.h"
#include "helpline/dst/v1/dst_service.grpc.pb.h"
#include "services/dst/tracker.h"

namespace helpline::dst {

// Records helpline_dst_intents_total{intent} (the active intent after each turn, "none"
// when there is none) and helpline_dst_escalations_total{reason} (turns that start an
// escalation).
class DstService final : public v1::DialogueStateService::CallbackService {
 public:
  // `tracker` and `executor` are not owned and must outlive the service.
  DstService(const Tracker& tracker, rpc::Executor& executor,
             metrics::Registry& registry = metrics::Registry::Default());

  grpc::ServerUnaryReactor* Track(grpc::CallbackServerContext* context,
                                  const v1::TrackRequest* request,
                                  v1::TrackResponse* response) override;

  // The work of one Track call, without gRPC (also used by tests).
  absl::Status TrackOne(const v1::TrackRequest& request, v1::TrackResponse& response);

 private:
  const Tracker& tracker_;
  rpc::Executor& executor_;
  metrics::Family<metrics::Counter>& intents_;
  metrics::Family<metrics::Counter>& escalations_;
};

}  // namespace helpline::dst
