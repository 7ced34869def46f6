#include "services/generation/reply_engine.h"

#include <exception>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace helpline::generation {
namespace {

class DoneCall final : public ReplyCall {
 public:
  void Cancel() override {}
};

}  // namespace

std::shared_ptr<ReplyCall> TemplateReplyEngine::Start(const v1::GenerationContext& context,
                                                      const v1::SamplingParams& params,
                                                      bool stream, absl::Time /*deadline*/,
                                                      ReplySink sink) {
  absl::StatusOr<v1::GenerateResponse> result;
  try {
    result = generator_.Generate(context, params);
  } catch (const std::exception& e) {  // Our code does not throw; std::bad_alloc might.
    result = absl::InternalError(absl::StrCat("generation failed: ", e.what()));
  }
  if (result.ok() && stream && sink.on_delta) {
    for (std::string& piece : SplitIntoDeltas(
             result->candidates(static_cast<int>(result->chosen_index())).text())) {
      sink.on_delta(std::move(piece));
    }
  }
  sink.on_done(std::move(result));
  return std::make_shared<DoneCall>();
}

}  // namespace helpline::generation
