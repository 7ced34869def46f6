// helpline-preprocess: normalization, language, word segmentation and PII spans over gRPC.
#include <cstdlib>
#include <memory>

#include "common/config/config.h"
#include "common/grpc/server.h"
#include "common/log/log.h"
#include "common/status/status.h"
#include "helpline/preprocess/v1/preprocess_config.pb.h"
#include "services/preprocess/preprocess_service.h"
#include "services/preprocess/preprocessor.h"

int main(int argc, char** argv) {
  using namespace helpline;  // NOLINT: main only.
  rpc::BlockTerminationSignals();
  preprocess::v1::PreprocessConfig config;
  config.mutable_server()->set_grpc_port(50061);
  config.mutable_server()->set_metrics_port(9161);
  config.set_max_text_bytes(16384);
  absl::Status status = config::LoadFromCommandLine("preprocess", argc, argv, config);
  if (absl::IsCancelled(status)) return 0;  // --help
  if (!status.ok()) return ExitWithError("invalid config", status, 2);
  rpc::ApplyServerDefaults(*config.mutable_server());
  if (config.max_text_bytes() == 0) {
    return ExitWithError("invalid config",
                         absl::InvalidArgumentError("max_text_bytes: must be positive"), 2);
  }
  log::Level level = log::Level::kInfo;
  log::ParseLevel(config.server().log_level(), &level);
  log::Init("helpline-preprocess", level);
  log::Info("starting", {{"config", nlohmann::json::parse(config::ToJson(config), nullptr,
                                                          /*allow_exceptions=*/false)}});

  absl::StatusOr<std::unique_ptr<preprocess::Preprocessor>> preprocessor =
      preprocess::Preprocessor::Create({.max_text_bytes = config.max_text_bytes()});
  if (!preprocessor.ok()) return ExitWithError("startup failed", preprocessor.status(), 1);
  preprocess::PreprocessService service(**preprocessor);

  rpc::ServerOptions server_options;
  server_options.config = config.server();
  server_options.name = "helpline-preprocess";
  server_options.services = {&service};
  absl::StatusOr<std::unique_ptr<rpc::Server>> server = rpc::Server::StartReady(server_options);
  if (!server.ok()) return ExitWithError("startup failed", server.status(), 1);
  log::Info("serving",
            {{"grpc_port", (*server)->grpc_port()}, {"metrics_port", (*server)->metrics_port()}});
  return (*server)->Run();
}
