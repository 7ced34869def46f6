// gRPC adapter of helpline-preprocess: proto in/out, status mapping, metrics. The work is
// light CPU (microseconds to a millisecond for the largest accepted text), so it runs
// inline on gRPC's callback thread instead of hopping to an executor.
#pragma once

#include "common/metrics/metrics.h"
#include "grpcpp/grpcpp.h"
#include "helpline/preprocess/v1/preprocess_service.grpc.pb.h"
#include "services/preprocess/preprocessor.h"

namespace helpline::preprocess {

class PreprocessService final : public v1::PreprocessService::CallbackService {
 public:
  // `preprocessor` is not owned and must outlive the service. Metrics go to `registry`.
  explicit PreprocessService(const Preprocessor& preprocessor,
                             metrics::Registry& registry = metrics::Registry::Default());

  grpc::ServerUnaryReactor* Preprocess(grpc::CallbackServerContext* context,
                                       const v1::PreprocessRequest* request,
                                       v1::PreprocessResponse* response) override;

 private:
  const Preprocessor& preprocessor_;
  metrics::Family<metrics::Counter>& pii_spans_;
};

}  // namespace helpline::preprocess
