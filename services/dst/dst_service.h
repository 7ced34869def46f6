// gRPC adapter of the tracker: DialogueStateService.Track. Proto in, proto out, status
// mapping and metrics. Rule-based tracking is short non-blocking CPU work (a few
// microseconds for a typical turn, see bench_dst), so without a model it runs inline on
// gRPC's callback thread: a hop to a worker pool would cost more than the work. With a
// trained utterance model a turn costs about a millisecond of libtorch, so it runs on a
// bounded executor and a full queue answers RESOURCE_EXHAUSTED.
#pragma once

#include <string>

#include "absl/container/flat_hash_map.h"
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
  // `tracker` and `executor` are not owned and must outlive the service. `executor` null:
  // Track runs inline on the callback thread.
  explicit DstService(const Tracker& tracker,
                      metrics::Registry& registry = metrics::Registry::Default(),
                      rpc::Executor* executor = nullptr);

  grpc::ServerUnaryReactor* Track(grpc::CallbackServerContext* context,
                                  const v1::TrackRequest* request,
                                  v1::TrackResponse* response) override;

  // The work of one Track call, without gRPC (also used by tests).
  absl::Status TrackOne(const v1::TrackRequest& request, v1::TrackResponse& response);

 private:
  // The counter of an intent label: the domain's intents and "none" are looked up once here;
  // anything else (a prior state's unknown intent) through the family.
  metrics::Counter& IntentCounter(const std::string& intent);

  // Track on the calling thread, logging with `request_id`, then Finish the reactor.
  void TrackAndFinish(grpc::ServerUnaryReactor* reactor, const std::string& request_id,
                      const v1::TrackRequest& request, v1::TrackResponse& response);

  const Tracker& tracker_;
  rpc::Executor* const executor_;
  metrics::Family<metrics::Counter>& intents_;
  metrics::Family<metrics::Counter>& escalations_;
  // Children resolved at construction; immutable afterwards (read by every call thread).
  absl::flat_hash_map<std::string, metrics::Counter*> intent_counters_;
  metrics::Counter& customer_request_escalations_;
  metrics::Counter& intent_policy_escalations_;
};

}  // namespace helpline::dst
