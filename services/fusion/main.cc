// helpline-fusion: reads image attachments (OCR) and fuses the text with the message.
#include <memory>
#include <string>

#include "common/config/config.h"
#include "common/grpc/executor.h"
#include "common/grpc/server.h"
#include "common/log/log.h"
#include "common/status/status.h"
#include "helpline/fusion/v1/fusion_config.pb.h"
#include "services/fusion/fuser.h"
#include "services/fusion/fusion_service.h"
#include "services/fusion/ocr_engine.h"

int main(int argc, char** argv) {
  using namespace helpline;  // NOLINT: main only.
  rpc::BlockTerminationSignals();
  fusion::v1::FusionConfig config;
  config.mutable_server()->set_grpc_port(50062);
  config.mutable_server()->set_metrics_port(9162);
  config.set_max_attachments(4);
  config.set_max_attachment_bytes(8 * 1024 * 1024);
  config.set_max_image_pixels(40'000'000);
  config.set_ocr_languages("eng");
  config.set_ocr_languages_zh("chi_sim+eng");
  absl::Status status = config::LoadFromCommandLine("fusion", argc, argv, config);
  if (absl::IsCancelled(status)) return 0;  // --help
  if (!status.ok()) return ExitWithError("invalid config", status, 2);
  rpc::ApplyServerDefaults(*config.mutable_server());
  if (config.max_attachment_bytes() == 0 || config.max_image_pixels() == 0 ||
      config.ocr_languages().empty() || config.ocr_languages_zh().empty()) {
    return ExitWithError(
        "invalid config",
        absl::InvalidArgumentError("max_attachment_bytes, max_image_pixels, ocr_languages and "
                                   "ocr_languages_zh must be set"),
        2);
  }
  log::Level level = log::Level::kInfo;
  log::ParseLevel(config.server().log_level(), &level);
  log::Init("helpline-fusion", level);
  log::Info("starting", {{"config", nlohmann::json::parse(config::ToJson(config), nullptr,
                                                          /*allow_exceptions=*/false)}});

  // Loads the traineddata of both language sets now: a missing package fails startup.
  fusion::OcrOptions ocr_options;
  ocr_options.tessdata_dir = config.tessdata_dir();
  absl::StatusOr<std::unique_ptr<fusion::OcrEngine>> ocr =
      fusion::OcrEngine::Create(ocr_options, {config.ocr_languages(), config.ocr_languages_zh()});
  if (!ocr.ok()) return ExitWithError("startup failed", ocr.status(), 1);
  fusion::Fuser fuser({.max_attachments = config.max_attachments(),
                       .limits = {.max_bytes = config.max_attachment_bytes(),
                                  .max_pixels = config.max_image_pixels()},
                       .ocr_languages = config.ocr_languages(),
                       .ocr_languages_zh = config.ocr_languages_zh()},
                      **ocr);
  // Declared before the server so that it is destroyed after it: the server drains first.
  rpc::Executor executor(config.server().worker_threads(), config.server().max_queued_requests(),
                         "ocr");
  fusion::FusionService service(fuser, executor);

  rpc::ServerOptions server_options;
  server_options.config = config.server();
  server_options.name = "helpline-fusion";
  server_options.services = {&service};
  absl::StatusOr<std::unique_ptr<rpc::Server>> server = rpc::Server::StartReady(server_options);
  if (!server.ok()) return ExitWithError("startup failed", server.status(), 1);
  log::Info("serving",
            {{"grpc_port", (*server)->grpc_port()}, {"metrics_port", (*server)->metrics_port()}});
  int code = (*server)->Run();
  executor.Drain();
  return code;
}
