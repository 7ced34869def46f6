#include "services/generation/generation_service.h"

#include <deque>
#include <optional>
#include <mutex>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/grpc/server.h"
#include "common/log/log.h"
#include "common/status/status.h"

namespace helpline::generation {
namespace {

void LogFailure(const absl::Status& status) {
  if (!status.ok() && !absl::IsInvalidArgument(status) && !absl::IsCancelled(status) &&
      !absl::IsResourceExhausted(status)) {
    log::Error("generation failed", {{"status", status.ToString()}});
  }
}

absl::Time DeadlineOf(const grpc::CallbackServerContext& context) {
  const auto deadline = context.deadline();
  if (deadline == std::chrono::system_clock::time_point::max()) return absl::InfiniteFuture();
  return absl::FromChrono(deadline);
}

}  // namespace

// One Generate call. The engine's on_done fills the response and finishes; OnCancel cancels
// the engine call. Deletes itself in OnDone, which gRPC runs only after Finish, and Finish
// runs only from on_done, so no engine callback can reach a deleted reactor.
class GenerationService::UnaryReactor final : public grpc::ServerUnaryReactor {
 public:
  UnaryReactor(GenerationService& service, grpc::CallbackServerContext* context,
               const v1::GenerateRequest* request, v1::GenerateResponse* response)
      : service_(service), response_(response), start_(absl::Now()) {
    log::ScopedContext log_context(rpc::RequestIdOf(*context), "");
    ReplySink sink;
    sink.on_done = [this](absl::StatusOr<v1::GenerateResponse> result) {
      OnEngineDone(std::move(result));
    };
    std::shared_ptr<ReplyCall> call = service_.engine_.Start(
        request->context(), request->params(), /*stream=*/false, DeadlineOf(*context),
        std::move(sink));
    std::unique_lock lock(mu_);
    call_ = call;
    started_ = true;
    const bool cancel_now = cancelled_ && !result_.has_value();
    if (result_.has_value()) {
      FinishAndUnlock(std::move(lock));
      return;
    }
    lock.unlock();
    if (cancel_now) call->Cancel();  // The client left while Start ran.
  }

  void OnCancel() override {
    std::shared_ptr<ReplyCall> call;
    {
      std::lock_guard lock(mu_);
      cancelled_ = true;
      call = call_;
    }
    if (call != nullptr) call->Cancel();
  }

  void OnDone() override { delete this; }

 private:
  void OnEngineDone(absl::StatusOr<v1::GenerateResponse> result) {
    std::unique_lock lock(mu_);
    result_ = std::move(result);
    if (started_) FinishAndUnlock(std::move(lock));
  }

  // Finish may let gRPC run OnDone (delete this) at once: unlock first, touch nothing after.
  void FinishAndUnlock(std::unique_lock<std::mutex> lock) {
    absl::StatusOr<v1::GenerateResponse>& result = *result_;
    grpc::Status status = grpc::Status::OK;
    if (!result.ok()) {
      LogFailure(result.status());
      status = ToGrpcStatus(result.status());
    } else {
      const double elapsed = absl::ToDoubleSeconds(absl::Now() - start_);
      service_.request_seconds_.Observe(elapsed);
      if (!service_.engine_.records_token_metrics()) {
        service_.time_to_first_token_.Observe(elapsed);
        if (result->usage().completion_tokens() > 0) {
          service_.time_per_output_token_.Observe(elapsed / result->usage().completion_tokens());
        }
        service_.RecordUsage(*result);
      }
      *response_ = *std::move(result);
    }
    lock.unlock();
    Finish(status);
  }

  GenerationService& service_;
  v1::GenerateResponse* response_;
  const absl::Time start_;
  std::mutex mu_;
  std::shared_ptr<ReplyCall> call_;
  bool started_ = false;
  bool cancelled_ = false;
  std::optional<absl::StatusOr<v1::GenerateResponse>> result_;
};

// One GenerateStream call. The engine is started on the executor; its callbacks queue
// messages and the reactor writes them one at a time (gRPC allows one write in flight).
// The call finishes once the engine is done and the queue is written (or dropped after a
// cancel). Deletes itself in OnDone.
class GenerationService::StreamReactor final
    : public grpc::ServerWriteReactor<v1::GenerateStreamResponse> {
 public:
  StreamReactor(GenerationService& service, grpc::CallbackServerContext* context,
                const v1::GenerateStreamRequest* request)
      : service_(service),
        request_(request),
        request_id_(rpc::RequestIdOf(*context)),
        deadline_(DeadlineOf(*context)),
        start_(absl::Now()) {
    service_.queue_depth_.Increment();
    absl::Status queued = service_.executor_.TrySchedule([this] {
      service_.queue_depth_.Decrement();
      StartEngine();
    });
    if (!queued.ok()) {
      service_.queue_depth_.Decrement();
      std::unique_lock lock(mu_);
      engine_done_ = true;
      engine_starting_ = false;
      final_status_ = ToGrpcStatus(queued);
      Pump(std::move(lock));
    }
  }

  void OnWriteDone(bool ok) override {
    std::unique_lock lock(mu_);
    writing_ = false;
    std::shared_ptr<ReplyCall> cancel;
    if (!ok && !stopped_) {
      stopped_ = true;  // The stream broke: drop what is queued, stop the engine.
      queue_.clear();
      cancel = call_;
    }
    Pump(std::move(lock));  // May finish: `this` must not be touched after it.
    // A finished call's Cancel is a no-op; the shared_ptr keeps the call object alive.
    if (cancel != nullptr) cancel->Cancel();
  }

  void OnCancel() override {
    const std::function<void()> on_cancel = service_.hooks_.on_cancel;
    std::unique_lock lock(mu_);
    if (!stopped_) {
      stopped_ = true;
      queue_.clear();
    }
    client_cancelled_ = true;
    std::shared_ptr<ReplyCall> cancel = call_;
    Pump(std::move(lock));
    if (cancel != nullptr) cancel->Cancel();
    if (on_cancel) on_cancel();
  }

  void OnDone() override { delete this; }

 private:
  void StartEngine() {
    log::ScopedContext log_context(request_id_, "");
    {
      std::unique_lock lock(mu_);
      if (stopped_) {  // Cancelled while queued: the engine never starts.
        engine_done_ = true;
        engine_starting_ = false;
        Pump(std::move(lock));
        return;
      }
    }
    ReplySink sink;
    sink.on_delta = [this](std::string piece) { OnDelta(std::move(piece)); };
    sink.on_done = [this](absl::StatusOr<v1::GenerateResponse> result) {
      OnEngineDone(std::move(result));
    };
    std::shared_ptr<ReplyCall> call = service_.engine_.Start(
        request_->context(), request_->params(), /*stream=*/true, deadline_, std::move(sink));
    std::unique_lock lock(mu_);
    call_ = call;
    engine_starting_ = false;
    const bool cancel_now = stopped_ && !engine_done_;
    Pump(std::move(lock));
    if (cancel_now) call->Cancel();  // The client left while Start ran.
  }

  void OnDelta(std::string piece) {
    {
      std::lock_guard lock(mu_);
      if (stopped_) return;
    }
    if (service_.hooks_.before_delta) service_.hooks_.before_delta(deltas_);
    std::unique_lock lock(mu_);
    if (stopped_) return;
    if (deltas_ == 0) {
      first_delta_ = absl::Now();
      if (!service_.engine_.records_token_metrics()) {
        service_.time_to_first_token_.Observe(absl::ToDoubleSeconds(first_delta_ - start_));
      }
    }
    ++deltas_;
    v1::GenerateStreamResponse message;
    message.set_delta(std::move(piece));
    queue_.push_back(std::move(message));
    Pump(std::move(lock));
  }

  void OnEngineDone(absl::StatusOr<v1::GenerateResponse> result) {
    std::unique_lock lock(mu_);
    engine_done_ = true;
    if (!result.ok()) {
      LogFailure(result.status());
      final_status_ = ToGrpcStatus(result.status());
    } else {
      const absl::Time now = absl::Now();
      service_.request_seconds_.Observe(absl::ToDoubleSeconds(now - start_));
      const uint32_t tokens = result->usage().completion_tokens();
      if (!service_.engine_.records_token_metrics()) {
        if (deltas_ > 0 && tokens > 1) {
          service_.time_per_output_token_.Observe(absl::ToDoubleSeconds(now - first_delta_) /
                                                  (tokens - 1));
        }
        service_.RecordUsage(*result);
      }
      if (!stopped_) {
        v1::GenerateStreamResponse message;
        *message.mutable_final() = *std::move(result);
        queue_.push_back(std::move(message));
      }
    }
    Pump(std::move(lock));
  }

  // Starts the next write, or finishes once the engine is done and nothing is left. Both
  // StartWrite and Finish run after unlocking; after Finish gRPC may delete this at once,
  // so callers touch no member after Pump.
  void Pump(std::unique_lock<std::mutex> lock) {
    if (writing_ || finished_) return;
    if (!queue_.empty()) {
      writing_ = true;
      current_ = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      StartWrite(&current_);
      return;
    }
    // Not before Start has returned: on_done may run inside it, and the reactor must outlive
    // the StartEngine frame.
    if (!engine_done_ || engine_starting_) return;
    finished_ = true;
    grpc::Status status = final_status_;
    if (client_cancelled_) {
      service_.streams_cancelled_.Increment();
      log::Info("stream cancelled by the client", {{"request_id", request_id_}});
      status = grpc::Status(grpc::StatusCode::CANCELLED, "the client cancelled the stream");
    } else if (stopped_) {
      status = grpc::Status(grpc::StatusCode::UNAVAILABLE, "the stream broke");
    }
    lock.unlock();
    Finish(status);
  }

  GenerationService& service_;
  const v1::GenerateStreamRequest* request_;
  const std::string request_id_;
  const absl::Time deadline_;
  const absl::Time start_;
  std::mutex mu_;
  std::shared_ptr<ReplyCall> call_;
  std::deque<v1::GenerateStreamResponse> queue_;
  v1::GenerateStreamResponse current_;
  size_t deltas_ = 0;
  absl::Time first_delta_;
  grpc::Status final_status_ = grpc::Status::OK;
  bool writing_ = false;
  bool engine_done_ = false;
  bool engine_starting_ = true;
  bool stopped_ = false;
  bool client_cancelled_ = false;
  bool finished_ = false;
};

GenerationService::GenerationService(ReplyEngine& engine, rpc::Executor& executor,
                                     metrics::Registry& registry, ServiceHooks hooks)
    : engine_(engine),
      executor_(executor),
      hooks_(std::move(hooks)),
      prompt_tokens_(registry
                         .AddCounter("helpline_generation_tokens_total",
                                     "Tokens read (prompt) and generated (completion). Template "
                                     "replies count words and CJK characters, not model tokens.",
                                     {"kind"})
                         .Get({"prompt"})),
      completion_tokens_(registry.AddCounter("helpline_generation_tokens_total", "", {"kind"})
                             .Get({"completion"})),
      time_to_first_token_(
          registry
              .AddHistogram("helpline_generation_time_to_first_token_seconds",
                            "Time from a request to its first output: the first delta of a "
                            "stream, the response of a unary call.",
                            {})
              .Get(std::vector<std::string>{})),
      time_per_output_token_(
          registry
              .AddHistogram("helpline_generation_time_per_output_token_seconds",
                            "Time per completion token after the first output (unary: the "
                            "whole call per completion token).",
                            {}, {0.00001, 0.0001, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1})
              .Get(std::vector<std::string>{})),
      request_seconds_(registry
                           .AddHistogram("helpline_generation_request_seconds",
                                         "Time from a request to its response.", {})
                           .Get(std::vector<std::string>{})),
      queue_depth_(registry
                       .AddGauge("helpline_generation_queue_depth",
                                 "Generation streams waiting for a worker to start them.")
                       .Get(std::vector<std::string>{})),
      streams_cancelled_(registry
                             .AddCounter("helpline_generation_streams_cancelled_total",
                                         "Streams stopped because the client cancelled.")
                             .Get(std::vector<std::string>{})) {}

void GenerationService::RecordUsage(const v1::GenerateResponse& response) {
  prompt_tokens_.Increment(response.usage().prompt_tokens());
  completion_tokens_.Increment(response.usage().completion_tokens());
}

grpc::ServerUnaryReactor* GenerationService::Generate(grpc::CallbackServerContext* context,
                                                      const v1::GenerateRequest* request,
                                                      v1::GenerateResponse* response) {
  return new UnaryReactor(*this, context, request, response);
}

grpc::ServerWriteReactor<v1::GenerateStreamResponse>* GenerationService::GenerateStream(
    grpc::CallbackServerContext* context, const v1::GenerateStreamRequest* request) {
  return new StreamReactor(*this, context, request);
}

}  // namespace helpline::generation
