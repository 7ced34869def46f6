// gRPC adapter of a ReplyEngine: GenerationService.Generate and GenerateStream. Unary
// Generate starts the engine inline on gRPC's callback thread (a template reply takes about
// a microsecond; the neural engine only tokenizes and queues there). GenerateStream starts
// it on a bounded executor (a full queue answers RESOURCE_EXHAUSTED). Both reactors are
// non-blocking: the engine's callbacks queue deltas, the reactor writes them one at a time,
// and the call finishes only after the engine's on_done, so no callback outlives a reactor.
// A client cancel (or a broken stream) cancels the engine call: the sequence leaves the
// batch at the next step.
#pragma once

#include <functional>

#include "common/grpc/executor.h"
#include "common/metrics/metrics.h"
#include "grpcpp/grpcpp.h"
#include "helpline/generation/v1/generation_service.grpc.pb.h"
#include "services/generation/reply_engine.h"

namespace helpline::generation {

struct ServiceHooks {
  // Called on the producing thread before delta `index` of a stream is queued for writing
  // (not after the client cancelled). Tests use it to hold a stream at a known point;
  // empty in production.
  std::function<void(size_t index)> before_delta;
  // Called when the client cancels a stream (from gRPC's callback thread).
  std::function<void()> on_cancel;
};

// Metrics (names per DESIGN §5):
//   helpline_generation_tokens_total{kind="prompt"|"completion"}
//   helpline_generation_time_to_first_token_seconds          request -> first delta (streams)
//                                                            or response (unary)
//   helpline_generation_time_per_output_token_seconds        after the first output, per
//                                                            completion token
//   helpline_generation_request_seconds                      request -> response
//   helpline_generation_queue_depth                          streams waiting for a worker
//   helpline_generation_streams_cancelled_total              streams the client cancelled
// The model engine records its own (time to first token, per output token, batch size…).
class GenerationService final : public v1::GenerationService::CallbackService {
 public:
  // `engine` and `executor` are not owned and must outlive the service.
  GenerationService(ReplyEngine& engine, rpc::Executor& executor,
                    metrics::Registry& registry = metrics::Registry::Default(),
                    ServiceHooks hooks = {});

  grpc::ServerUnaryReactor* Generate(grpc::CallbackServerContext* context,
                                     const v1::GenerateRequest* request,
                                     v1::GenerateResponse* response) override;

  grpc::ServerWriteReactor<v1::GenerateStreamResponse>* GenerateStream(
      grpc::CallbackServerContext* context, const v1::GenerateStreamRequest* request) override;

 private:
  class UnaryReactor;
  class StreamReactor;

  // Records usage and timing of a finished generation.
  void RecordUsage(const v1::GenerateResponse& response);

  ReplyEngine& engine_;
  rpc::Executor& executor_;
  ServiceHooks hooks_;
  metrics::Counter& prompt_tokens_;
  metrics::Counter& completion_tokens_;
  metrics::Histogram& time_to_first_token_;
  metrics::Histogram& time_per_output_token_;
  metrics::Histogram& request_seconds_;
  metrics::Gauge& queue_depth_;
  metrics::Counter& streams_cancelled_;
};

}  // namespace helpline::generation
