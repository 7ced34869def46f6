// What the gRPC adapter drives: an engine that answers a GenerationContext asynchronously.
// Two implementations: TemplateReplyEngine (the domain's templates, synchronous) and
// NeuralReplyEngine (services/generation/neural.h: the GPT-2 engine with the
// filter-and-prune step, templates as its fallback).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "helpline/generation/v1/generation_service.pb.h"
#include "services/generation/generator.h"

namespace helpline::generation {

// Where a reply goes. Both callbacks may run on any thread, never concurrently with each
// other for one call; on_done runs exactly once and nothing runs after it.
struct ReplySink {
  // A piece of the chosen reply, never splitting a UTF-8 character (streams only). The
  // pieces of one call concatenate to the chosen candidate's text.
  std::function<void(std::string piece)> on_delta;
  // The whole response, or why there is none.
  std::function<void(absl::StatusOr<v1::GenerateResponse> response)> on_done;
};

// A running call. Cancel is idempotent and may race with completion; on_done still runs
// (with CANCELLED, or with the response if it was already complete).
class ReplyCall {
 public:
  virtual ~ReplyCall() = default;
  virtual void Cancel() = 0;
};

class ReplyEngine {
 public:
  virtual ~ReplyEngine() = default;
  // Validates and starts. Errors are reported through sink.on_done (possibly before Start
  // returns). `stream`: the caller wants deltas as they are produced.
  virtual std::shared_ptr<ReplyCall> Start(const v1::GenerationContext& context,
                                           const v1::SamplingParams& params, bool stream,
                                           absl::Time deadline, ReplySink sink) = 0;
  // True when the engine records helpline_generation_tokens_total, time to first token
  // and time per output token itself (the model engine does, per model token); the
  // service then leaves them alone.
  virtual bool records_token_metrics() const { return false; }
};

// Template replies: computed inside Start (about a microsecond), deltas one word each.
class TemplateReplyEngine final : public ReplyEngine {
 public:
  explicit TemplateReplyEngine(const TemplateGenerator& generator) : generator_(generator) {}

  std::shared_ptr<ReplyCall> Start(const v1::GenerationContext& context,
                                   const v1::SamplingParams& params, bool stream,
                                   absl::Time deadline, ReplySink sink) override;

 private:
  const TemplateGenerator& generator_;
};

}  // namespace helpline::generation
