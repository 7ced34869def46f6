// Composition root of helpline-dst: loads the domain, builds the tracker and the gRPC
// service, and starts the server. Members are declared in construction order, so
// destruction runs in reverse: server first (drains RPCs), then the service and tracker.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "common/domain/domain.h"
#include "common/grpc/server.h"
#include "helpline/dst/v1/dst_config.pb.h"
#include "services/dst/dst_service.h"
#include "services/dst/tracker.h"

namespace helpline::dst {

class App {
 public:
  // Checks the config (domain_file required, intent_threshold in [0, 1]), loads and
  // validates the domain file, starts serving and turns ready. Errors name the field or
  // the file and path within it. `config.server` must have had ApplyServerDefaults.
  static absl::StatusOr<std::unique_ptr<App>> Create(const v1::DstConfig& config);

  // Blocks until SIGTERM/SIGINT or server().RequestShutdown(), then drains. Returns 0.
  int Run();

  rpc::Server& server() { return *server_; }

 private:
  App() = default;

  std::shared_ptr<const domain::Domain> domain_;
  std::unique_ptr<Tracker> tracker_;
  std::unique_ptr<DstService> service_;
  std::unique_ptr<rpc::Server> server_;
};

}  // namespace helpline::dst
