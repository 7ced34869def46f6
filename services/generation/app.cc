#include "services/generation/app.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/log/log.h"
#include "common/status/status.h"
#include "services/generation/neural.h"

namespace helpline::generation {

void App::ApplyDefaults(v1::GenerationConfig& config) {
  if (config.default_max_tokens() == 0) config.set_default_max_tokens(kDefaultMaxTokens);
  if (config.max_tokens_limit() == 0) config.set_max_tokens_limit(512);
  if (config.max_candidates() == 0) config.set_max_candidates(8);
}

absl::StatusOr<std::unique_ptr<App>> App::Create(const v1::GenerationConfig& input,
                                                 ServiceHooks hooks) {
  v1::GenerationConfig config = input;
  ApplyDefaults(config);
  if (config.domain_file().empty()) {
    return absl::InvalidArgumentError("domain_file: required (path of the domain YAML file)");
  }
  if (config.default_max_tokens() > config.max_tokens_limit()) {
    return absl::InvalidArgumentError(
        absl::StrCat("default_max_tokens: ", config.default_max_tokens(),
                     " is more than max_tokens_limit ", config.max_tokens_limit()));
  }
  std::unique_ptr<App> app(new App());
  absl::StatusOr<domain::Domain> domain = domain::LoadDomainFile(config.domain_file());
  if (!domain.ok()) return domain.status();
  app->domain_ = std::make_shared<const domain::Domain>(*std::move(domain));
  app->generator_ = std::make_unique<TemplateGenerator>(
      app->domain_, GeneratorOptions{.default_max_tokens = config.default_max_tokens(),
                                     .max_tokens_limit = config.max_tokens_limit(),
                                     .max_candidates = config.max_candidates()});
  app->executor_ = std::make_unique<rpc::Executor>(
      config.server().worker_threads(), config.server().max_queued_requests(), "gen-worker");
  if (config.model().dir().empty()) {
    app->engine_ = std::make_unique<TemplateReplyEngine>(*app->generator_);
  } else {
    HELPLINE_ASSIGN_OR_RETURN(app->engine_,
                              NeuralReplyEngine::Create(config, app->domain_, *app->generator_));
  }
  app->service_ = std::make_unique<GenerationService>(
      *app->engine_, *app->executor_, metrics::Registry::Default(), std::move(hooks));
  rpc::ServerOptions options;
  options.config = config.server();
  options.name = "helpline-generation";
  options.services = {app->service_.get()};
  HELPLINE_ASSIGN_OR_RETURN(app->server_, rpc::Server::StartReady(std::move(options)));
  log::Info("serving", {{"grpc_port", app->server_->grpc_port()},
                        {"metrics_port", app->server_->metrics_port()},
                        {"domain", app->domain_->name},
                        {"templates", app->domain_->templates.size()}});
  return app;
}

int App::Run() {
  const int code = server_->Run();
  executor_->Drain();
  return code;
}

}  // namespace helpline::generation
