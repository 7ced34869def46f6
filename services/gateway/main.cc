// helpline-gateway: the public APIs (gRPC ChatService/SessionService, OpenAI-compatible HTTP)
// and the orchestration of a turn. See README.md.
#include "common/config/config.h"
#include "common/grpc/server.h"
#include "common/log/log.h"
#include "common/status/status.h"
#include "services/gateway/app.h"

int main(int argc, char** argv) {
  helpline::rpc::BlockTerminationSignals();
  helpline::gateway::v1::GatewayConfig config;
  helpline::gateway::SetGatewayDefaults(config);
  absl::Status loaded = helpline::config::LoadFromCommandLine("gateway", argc, argv, config);
  if (absl::IsCancelled(loaded)) return 0;  // --help
  if (!loaded.ok()) return helpline::ExitWithError("invalid config", loaded, 2);
  helpline::log::Level level = helpline::log::Level::kInfo;
  if (!config.server().log_level().empty() &&
      !helpline::log::ParseLevel(config.server().log_level(), &level)) {
    return helpline::ExitWithError(
        "invalid config", absl::InvalidArgumentError("server.log_level: unknown level"), 2);
  }
  helpline::log::Init("helpline-gateway", level);
  auto app = helpline::gateway::App::Create(std::move(config));
  if (!app.ok()) {
    return helpline::ExitWithError("startup failed", app.status(),
                                   1);
  }
  return (*app)->Run();
}
