#include "services/dst/app.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/log/log.h"
#include "common/status/status.h"

namespace helpline::dst {

absl::StatusOr<std::unique_ptr<App>> App::Create(const v1::DstConfig& config) {
  if (config.domain_file().empty()) {
    return absl::InvalidArgumentError("domain_file: required (path of the domain YAML file)");
  }
  if (!(config.intent_threshold() >= 0 && config.intent_threshold() <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("intent_threshold: ", config.intent_threshold(), " is not in [0, 1]"));
  }
  std::unique_ptr<App> app(new App());
  absl::StatusOr<domain::Domain> domain = domain::LoadDomainFile(config.domain_file());
  if (!domain.ok()) return domain.status();
  app->domain_ = std::make_shared<const domain::Domain>(*std::move(domain));
  app->tracker_ = std::make_unique<Tracker>(
      app->domain_, TrackerOptions{.intent_threshold = config.intent_threshold()});
  app->service_ = std::make_unique<DstService>(*app->tracker_);
  rpc::ServerOptions options;
  options.config = config.server();
  options.name = "helpline-dst";
  options.services = {app->service_.get()};
  HELPLINE_ASSIGN_OR_RETURN(app->server_, rpc::Server::StartReady(std::move(options)));
  log::Info("serving", {{"grpc_port", app->server_->grpc_port()},
                        {"metrics_port", app->server_->metrics_port()},
                        {"domain", app->domain_->name},
                        {"intents", app->domain_->intents.size()},
                        {"slots", app->domain_->slots.size()}});
  return app;
}

int App::Run() { return server_->Run(); }

}  // namespace helpline::dst
