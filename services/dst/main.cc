// helpline-dst: dialogue state tracking (intent, slots, escalation) over gRPC.
#include "common/config/config.h"
#include "common/grpc/server.h"
#include "common/log/log.h"
#include "common/status/status.h"
#include "helpline/dst/v1/dst_config.pb.h"
#include "services/dst/app.h"

int main(int argc, char** argv) {
  using namespace helpline;  // NOLINT: main only.
  rpc::BlockTerminationSignals();
  dst::v1::DstConfig config;  // Defaults first.
  config.mutable_server()->set_grpc_port(50063);
  config.mutable_server()->set_metrics_port(9163);
  config.set_intent_threshold(0.35f);
  absl::Status status = config::LoadFromCommandLine("dst", argc, argv, config);
  if (absl::IsCancelled(status)) return 0;  // --help
  if (!status.ok()) return ExitWithError("invalid config", status, 2);
  rpc::ApplyServerDefaults(*config.mutable_server());
  log::Level level = log::Level::kInfo;
  log::ParseLevel(config.server().log_level(), &level);
  log::Init("helpline-dst", level);
  log::Info("starting", {{"config", nlohmann::json::parse(config::ToJson(config), nullptr,
                                                          /*allow_exceptions=*/false)}});
  absl::StatusOr<std::unique_ptr<dst::App>> app = dst::App::Create(config);
  if (!app.ok()) return ExitWithError("startup failed", app.status(), 1);
  return (*app)->Run();
}
