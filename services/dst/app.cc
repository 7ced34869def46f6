#include "services/dst/app.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/log/log.h"
#include "common/status/status.h"
#include "services/dst/dialogue_model.h"
#include "services/dst/model_scorer.h"

namespace helpline::dst {

namespace {

// The learned tracker's options of the config: dialogue_model_history (0: the default).
absl::StatusOr<LearnedDialogueModelOptions> DialogueModelOptionsFromConfig(
    const v1::DstConfig& config) {
  LearnedDialogueModelOptions options;
  if (config.dialogue_model_history() > kMaxDialogueHistory) {
    return absl::InvalidArgumentError(
        absl::StrCat("dialogue_model_history: ", config.dialogue_model_history(), " is over ",
                     kMaxDialogueHistory));
  }
  if (config.dialogue_model_history() > 0) options.max_history = config.dialogue_model_history();
  return options;
}

}  // namespace

absl::StatusOr<std::unique_ptr<App>> App::Create(const v1::DstConfig& config) {
  if (config.domain_file().empty()) {
    return absl::InvalidArgumentError("domain_file: required (path of the domain YAML file)");
  }
  HELPLINE_ASSIGN_OR_RETURN(TrackerOptions tracker_options, TrackerOptionsFromConfig(config));
  HELPLINE_ASSIGN_OR_RETURN(LearnedDialogueModelOptions dialogue_options,
                            DialogueModelOptionsFromConfig(config));
  std::unique_ptr<App> app(new App());
  absl::StatusOr<domain::Domain> domain = domain::LoadDomainFile(config.domain_file());
  if (!domain.ok()) return domain.status();
  app->domain_ = std::make_shared<const domain::Domain>(*std::move(domain));
  if (!config.model_dir().empty()) {
    HELPLINE_ASSIGN_OR_RETURN(app->model_, LoadModel(config.model_dir(), app->domain_));
    tracker_options.model = app->model_;
  }
  if (!config.dialogue_model_dir().empty()) {
    HELPLINE_ASSIGN_OR_RETURN(
        app->dialogue_model_,
        LoadDialogueModel(config.dialogue_model_dir(), *app->domain_, dialogue_options));
    tracker_options.dialogue_model = app->dialogue_model_;
  }
  if (app->model_ != nullptr || app->dialogue_model_ != nullptr) {
    // A model makes a turn cost a millisecond or more: off gRPC's callback threads.
    app->executor_ = std::make_unique<rpc::Executor>(
        config.server().worker_threads(), config.server().max_queued_requests(), "dst-worker");
  }
  app->tracker_ = std::make_unique<Tracker>(app->domain_, std::move(tracker_options));
  app->service_ = std::make_unique<DstService>(*app->tracker_, metrics::Registry::Default(),
                                               app->executor_.get());
  rpc::ServerOptions options;
  options.config = config.server();
  options.name = "helpline-dst";
  options.services = {app->service_.get()};
  HELPLINE_ASSIGN_OR_RETURN(app->server_, rpc::Server::StartReady(std::move(options)));
  log::Info("serving", {{"grpc_port", app->server_->grpc_port()},
                        {"metrics_port", app->server_->metrics_port()},
                        {"domain", app->domain_->name},
                        {"intents", app->domain_->intents.size()},
                        {"slots", app->domain_->slots.size()},
                        {"model_dir", config.model_dir()},
                        {"dialogue_model_dir", config.dialogue_model_dir()}});
  return app;
}

absl::StatusOr<std::shared_ptr<const UtteranceModel>> App::LoadModel(
    const std::string& dir, std::shared_ptr<const domain::Domain> domain) {
  const absl::Time start = absl::Now();
  absl::StatusOr<std::unique_ptr<ModelUtteranceModel>> model =
      ModelUtteranceModel::Load(dir, std::move(domain));
  if (!model.ok()) {
    return absl::Status(model.status().code(),
                        absl::StrCat("model_dir: ", model.status().message()));
  }
  log::Info("utterance model loaded",
            {{"model_dir", dir},
             {"intents", (*model)->info().intents.size()},
             {"slot_types", (*model)->info().slot_types.size()},
             {"ensemble", (*model)->info().config.ensemble},
             {"load_ms", absl::ToDoubleMilliseconds(absl::Now() - start)}});
  return std::shared_ptr<const UtteranceModel>(*std::move(model));
}

absl::StatusOr<std::shared_ptr<const DialogueModel>> App::LoadDialogueModel(
    const std::string& dir, const domain::Domain& domain,
    const LearnedDialogueModelOptions& options) {
  const absl::Time start = absl::Now();
  absl::StatusOr<std::unique_ptr<LearnedDialogueModel>> model =
      LearnedDialogueModel::Load(dir, domain, options);
  if (!model.ok()) {
    return absl::Status(model.status().code(),
                        absl::StrCat("dialogue_model_dir: ", model.status().message()));
  }
  log::Info("dialogue state tracker loaded",
            {{"dialogue_model_dir", dir},
             {"model", (*model)->name()},
             {"history", options.max_history},
             {"load_ms", absl::ToDoubleMilliseconds(absl::Now() - start)}});
  return std::shared_ptr<const DialogueModel>(*std::move(model));
}

App::~App() {
  if (executor_ != nullptr) executor_->Drain();
}

int App::Run() {
  const int code = server_->Run();
  if (executor_ != nullptr) executor_->Drain();
  return code;
}

}  // namespace helpline::dst
