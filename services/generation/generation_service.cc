#include "services/generation/generation_service.h"

#include <condition_variable>
#include <exception>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/grpc/server.h"
#include "common/log/log.h"
#include "common/status/status.h"

namespace helpline::generation {
namespace {

absl::StatusOr<v1::GenerateResponse> SafeGenerate(const TemplateGenerator& generator,
                                                  const v1::GenerationContext& context,
                                                  const v1::SamplingParams& params) {
  try {
    return generator.Generate(context, params);
  } catch (const std::exception& e) {  // Our code does not throw; std::bad_alloc might.
    return absl::InternalError(absl::StrCat("generation failed: ", e.what()));
  }
}

void LogFailure(const absl::Status& status) {
  if (!status.ok() && !absl::IsInvalidArgument(status)) {
    log::Error("generation failed", {{"status", status.ToString()}});
  }
}

}  // namespace

// One GenerateStream call. Produce() runs on the executor: it generates, then writes the
// deltas one at a time, waiting for each write to complete (one write in flight at a time,
// as gRPC requires) and checking for cancellation before each. Deletes itself in OnDone.
class GenerationService::StreamReactor final
    : public grpc::ServerWriteReactor<v1::GenerateStreamResponse> {
 public:
  StreamReactor(GenerationService& service, grpc::CallbackServerContext* context,
                const v1::GenerateStreamRequest* request)
      : service_(service),
        request_(request),
        request_id_(rpc::RequestIdOf(*context)),
        start_(absl::Now()) {
    service_.queue_depth_.Increment();
    absl::Status queued = service_.executor_.TrySchedule([this] {
      service_.queue_depth_.Decrement();
      Produce();
    });
    if (!queued.ok()) {
      service_.queue_depth_.Decrement();
      Finish(ToGrpcStatus(queued));
    }
  }

  void OnWriteDone(bool ok) override {
    {
      std::lock_guard lock(mu_);
      writing_ = false;
      write_ok_ = ok;
    }
    cv_.notify_all();
  }

  void OnCancel() override {
    {
      std::lock_guard lock(mu_);
      cancelled_ = true;
    }
    cv_.notify_all();
    if (service_.hooks_.on_cancel) service_.hooks_.on_cancel();
  }

  void OnDone() override { delete this; }

 private:
  void Produce() {
    log::ScopedContext log_context(request_id_, "");
    if (Cancelled()) return FinishCancelled(0);
    absl::StatusOr<v1::GenerateResponse> result =
        SafeGenerate(service_.generator_, request_->context(), request_->params());
    if (!result.ok()) {
      LogFailure(result.status());
      Finish(ToGrpcStatus(result.status()));
      return;
    }
    service_.batch_size_.Observe(1);
    const std::vector<std::string> deltas =
        SplitIntoDeltas(result->candidates(static_cast<int>(result->chosen_index())).text());
    absl::Time last = start_;
    uint32_t sent_tokens = 0;
    for (size_t i = 0; i < deltas.size(); ++i) {
      if (service_.hooks_.before_delta) service_.hooks_.before_delta(i);
      message_.set_delta(deltas[i]);
      if (!Write()) return FinishCancelled(sent_tokens);
      const absl::Time now = absl::Now();
      (i == 0 ? service_.time_to_first_token_ : service_.time_per_output_token_)
          .Observe(absl::ToDoubleSeconds(now - last));
      last = now;
      sent_tokens += CountTokens(deltas[i]);
    }
    service_.RecordUsage(*result);
    *message_.mutable_final() = *std::move(result);
    if (!Write()) return FinishCancelled(0);
    Finish(grpc::Status::OK);
  }

  bool Cancelled() {
    std::lock_guard lock(mu_);
    return cancelled_;
  }

  // Writes message_ and waits until gRPC is done with it. False when the client cancelled
  // or the stream broke.
  bool Write() {
    std::unique_lock lock(mu_);
    if (cancelled_) return false;
    writing_ = true;
    lock.unlock();
    StartWrite(&message_);
    lock.lock();
    cv_.wait(lock, [this] { return !writing_; });
    return write_ok_ && !cancelled_;
  }

  // `sent_tokens`: completion tokens that reached the stream before it stopped.
  void FinishCancelled(uint32_t sent_tokens) {
    service_.streams_cancelled_.Increment();
    service_.completion_tokens_.Increment(sent_tokens);
    log::Info("stream cancelled by the client", {{"sent_tokens", sent_tokens}});
    Finish(grpc::Status(grpc::StatusCode::CANCELLED, "the client cancelled the stream"));
  }

  GenerationService& service_;
  const v1::GenerateStreamRequest* request_;
  const std::string request_id_;
  const absl::Time start_;
  v1::GenerateStreamResponse message_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool writing_ = false;
  bool write_ok_ = true;
  bool cancelled_ = false;
};

GenerationService::GenerationService(const TemplateGenerator& generator, rpc::Executor& executor,
                                     metrics::Registry& registry, ServiceHooks hooks)
    : generator_(generator),
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
      time_to_first_token_(registry
                               .AddHistogram("helpline_generation_time_to_first_token_seconds",
                                             "Time from the request to the first output token.", {})
                               .Get(std::vector<std::string>{})),
      time_per_output_token_(
          registry
              .AddHistogram("helpline_generation_time_per_output_token_seconds",
                            "Time between output tokens after the first.", {},
                            {0.00001, 0.0001, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1})
              .Get(std::vector<std::string>{})),
      batch_size_(registry
                      .AddHistogram("helpline_generation_batch_size",
                                    "Sequences per engine step (1 for template replies).", {},
                                    {1, 2, 4, 8, 16, 32, 64})
                      .Get(std::vector<std::string>{})),
      queue_depth_(registry
                       .AddGauge("helpline_generation_queue_depth",
                                 "Generation requests waiting for a worker.")
                       .Get(std::vector<std::string>{})),
      streams_cancelled_(registry
                             .AddCounter("helpline_generation_streams_cancelled_total",
                                         "Streams stopped because the client cancelled.")
                             .Get(std::vector<std::string>{})) {}

void GenerationService::RecordUsage(const v1::GenerateResponse& response) {
  prompt_tokens_.Increment(response.usage().prompt_tokens());
  completion_tokens_.Increment(response.usage().completion_tokens());
}

// Unary Generate is short non-blocking CPU work (about a microsecond for a template reply,
// bench_generation), so it runs inline on gRPC's callback thread: an executor hop would cost
// more than the work. Streams stay on the executor (they wait for each write).
grpc::ServerUnaryReactor* GenerationService::Generate(grpc::CallbackServerContext* context,
                                                      const v1::GenerateRequest* request,
                                                      v1::GenerateResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const absl::Time start = absl::Now();
  log::ScopedContext log_context(rpc::RequestIdOf(*context), "");
  absl::StatusOr<v1::GenerateResponse> result =
      SafeGenerate(generator_, request->context(), request->params());
  if (!result.ok()) {
    LogFailure(result.status());
    reactor->Finish(ToGrpcStatus(result.status()));
    return reactor;
  }
  const double elapsed = absl::ToDoubleSeconds(absl::Now() - start);
  batch_size_.Observe(1);
  time_to_first_token_.Observe(elapsed);
  const uint32_t tokens =
      CountTokens(result->candidates(static_cast<int>(result->chosen_index())).text());
  if (tokens > 0) time_per_output_token_.Observe(elapsed / tokens);
  RecordUsage(*result);
  *response = *std::move(result);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerWriteReactor<v1::GenerateStreamResponse>* GenerationService::GenerateStream(
    grpc::CallbackServerContext* context, const v1::GenerateStreamRequest* request) {
  return new StreamReactor(*this, context, request);
}

}  // namespace helpline::generation
