// Composition root of helpline-generation: loads the domain (its templates), builds the
// template engine, the executor and the gRPC service, and starts the server. Members are
// declared in construction order, so destruction runs in reverse: server first (drains
// RPCs), then the executor.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "common/domain/domain.h"
#include "common/grpc/executor.h"
#include "common/grpc/server.h"
#include "helpline/generation/v1/generation_config.pb.h"
#include "services/generation/generation_service.h"
#include "services/generation/generator.h"

namespace helpline::generation {

class App {
 public:
  // Fills defaults of the generation fields left 0 (default_max_tokens 192,
  // max_tokens_limit 512, max_candidates 8).
  static void ApplyDefaults(v1::GenerationConfig& config);

  // Checks the config (domain_file required, default_max_tokens <= max_tokens_limit), loads
  // and validates the domain file, loads the model when model.dir is set (the template
  // engine otherwise), starts serving and turns ready (after the model is loaded). `config.server` must
  // have had ApplyServerDefaults. `hooks` are for tests.
  static absl::StatusOr<std::unique_ptr<App>> Create(const v1::GenerationConfig& config,
                                                     ServiceHooks hooks = {});

  // Blocks until SIGTERM/SIGINT or server().RequestShutdown(), then drains. Returns 0.
  int Run();

  rpc::Server& server() { return *server_; }

 private:
  App() = default;

  std::shared_ptr<const domain::Domain> domain_;
  std::unique_ptr<TemplateGenerator> generator_;
  std::unique_ptr<ReplyEngine> engine_;
  std::unique_ptr<rpc::Executor> executor_;
  std::unique_ptr<GenerationService> service_;
  std::unique_ptr<rpc::Server> server_;
};

}  // namespace helpline::generation
