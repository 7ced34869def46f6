// Composition root of helpline-dst: loads the domain and the trained utterance model (when
// configured), builds the tracker and the gRPC service, and starts the server, ready only
// once everything is loaded. Members are declared in construction order, so destruction
// runs in reverse: server first (drains RPCs), then the service, executor and tracker.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "common/domain/domain.h"
#include "common/grpc/executor.h"
#include "common/grpc/server.h"
#include "helpline/dst/v1/dst_config.pb.h"
#include "services/dst/dialogue_model.h"
#include "services/dst/dst_service.h"
#include "services/dst/tracker.h"

namespace helpline::dst {

class App {
 public:
  // Checks the config (domain_file required, intent_threshold in [0, 1],
  // dialogue_model_history at most kMaxDialogueHistory), loads and
  // validates the domain file, loads `model_dir` when set and checks it against the domain,
  // loads `dialogue_model_dir` when set (the learned tracker, zero-shot on the domain),
  // starts serving and turns ready. Errors name the field or the file and path within it
  // (`model_dir: model folder m does not match domain shop.yaml: intents missing in the
  // model: [refund]`). `config.server` must have had ApplyServerDefaults.
  static absl::StatusOr<std::unique_ptr<App>> Create(const v1::DstConfig& config);
  // Lets queued Track calls finish before the service and tracker go.
  ~App();

  // Blocks until SIGTERM/SIGINT or server().RequestShutdown(), then drains. Returns 0.
  int Run();

  rpc::Server& server() { return *server_; }
  // The loaded learned dialogue state tracker; null without `dialogue_model_dir`.
  const DialogueModel* dialogue_model() const { return dialogue_model_.get(); }
  // The loaded utterance model; null without `model_dir`.
  const UtteranceModel* model() const { return model_.get(); }

 private:
  App() = default;
  // ModelUtteranceModel::Load with errors prefixed by the config field.
  static absl::StatusOr<std::shared_ptr<const UtteranceModel>> LoadModel(
      const std::string& dir, std::shared_ptr<const domain::Domain> domain);
  // LearnedDialogueModel::Load with errors prefixed by the config field.
  static absl::StatusOr<std::shared_ptr<const DialogueModel>> LoadDialogueModel(
      const std::string& dir, const domain::Domain& domain,
      const LearnedDialogueModelOptions& options);

  std::shared_ptr<const domain::Domain> domain_;
  std::shared_ptr<const UtteranceModel> model_;
  std::shared_ptr<const DialogueModel> dialogue_model_;
  std::unique_ptr<Tracker> tracker_;
  // Workers for Track when a model makes a turn cost a millisecond; null without a model.
  std::unique_ptr<rpc::Executor> executor_;
  std::unique_ptr<DstService> service_;
  std::unique_ptr<rpc::Server> server_;
};

}  // namespace helpline::dst
