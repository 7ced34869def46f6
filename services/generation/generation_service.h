// gRPC adapter of the reply engine: GenerationService.Generate and GenerateStream. Unary
// Generate runs inline on gRPC's callback thread (template replies take about a
// microsecond); GenerateStream runs on a bounded executor (a full queue answers
// RESOURCE_EXHAUSTED), since it waits for each write. GenerateStream sends the
// chosen candidate as deltas (one token each, never splitting UTF-8), then `final`; it stops
// as soon as the client cancels.
#pragma once

#include <functional>

#include "common/grpc/executor.h"
#include "common/metrics/metrics.h"
#include "grpcpp/grpcpp.h"
#include "helpline/generation/v1/generation_service.grpc.pb.h"
#include "services/generation/generator.h"

namespace helpline::generation {

struct ServiceHooks {
  // Called on the producing thread before delta `index` of a stream is written. Tests use
  // it to hold a stream at a known point; empty in production.
  std::function<void(size_t index)> before_delta;
  // Called when the client cancels a stream (from gRPC's callback thread).
  std::function<void()> on_cancel;
};

// Metrics (names per DESIGN §5):
//   helpline_generation_tokens_total{kind="prompt"|"completion"}
//   helpline_generation_time_to_first_token_seconds     request start -> first token out
//   helpline_generation_time_per_output_token_seconds   between tokens (streams), or total
//                                                        time / tokens (unary)
//   helpline_generation_batch_size                      sequences per engine step (1 here)
//   helpline_generation_queue_depth                     streams waiting for a worker
//   helpline_generation_streams_cancelled_total         streams the client cancelled
class GenerationService final : public v1::GenerationService::CallbackService {
 public:
  // `generator` and `executor` are not owned and must outlive the service.
  GenerationService(const TemplateGenerator& generator, rpc::Executor& executor,
                    metrics::Registry& registry = metrics::Registry::Default(),
                    ServiceHooks hooks = {});

  grpc::ServerUnaryReactor* Generate(grpc::CallbackServerContext* context,
                                     const v1::GenerateRequest* request,
                                     v1::GenerateResponse* response) override;

  grpc::ServerWriteReactor<v1::GenerateStreamResponse>* GenerateStream(
      grpc::CallbackServerContext* context, const v1::GenerateStreamRequest* request) override;

 private:
  class StreamReactor;

  // Records usage and timing of a finished generation.
  void RecordUsage(const v1::GenerateResponse& response);

  const TemplateGenerator& generator_;
  rpc::Executor& executor_;
  ServiceHooks hooks_;
  metrics::Counter& prompt_tokens_;
  metrics::Counter& completion_tokens_;
  metrics::Histogram& time_to_first_token_;
  metrics::Histogram& time_per_output_token_;
  metrics::Histogram& batch_size_;
  metrics::Gauge& queue_depth_;
  metrics::Counter& streams_cancelled_;
};

}  // namespace helpline::generation
