// helpline-generation: reply generation (template engine for now) over gRPC.
#include "common/config/config.h"
#include "common/grpc/server.h"
#include "common/log/log.h"
#include "common/status/status.h"
#include "helpline/generation/v1/generation_config.pb.h"
#include "services/generation/app.h"

int main(int argc, char** argv) {
  using namespace helpline;  // NOLINT: main only.
  rpc::BlockTerminationSignals();
  generation::v1::GenerationConfig config;  // Defaults first.
  config.mutable_server()->set_grpc_port(50064);
  config.mutable_server()->set_metrics_port(9164);
  generation::App::ApplyDefaults(config);
  absl::Status status = config::LoadFromCommandLine("generation", argc, argv, config);
  if (absl::IsCancelled(status)) return 0;  // --help
  if (!status.ok()) return ExitWithError("invalid config", status, 2);
  rpc::ApplyServerDefaults(*config.mutable_server());
  log::Level level = log::Level::kInfo;
  log::ParseLevel(config.server().log_level(), &level);
  log::Init("helpline-generation", level);
  log::Info("starting", {{"config", nlohmann::json::parse(config::ToJson(config), nullptr,
                                                          /*allow_exceptions=*/false)}});
  absl::StatusOr<std::unique_ptr<generation::App>> app = generation::App::Create(config);
  if (!app.ok()) return ExitWithError("startup failed", app.status(), 1);
  return (*app)->Run();
}
