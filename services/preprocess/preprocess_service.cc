#include "services/preprocess/preprocess_service.h"

#include <exception>
#include <string>
#include <utility>

#include "common/grpc/server.h"
#include "common/log/log.h"
#include "common/status/status.h"

namespace helpline::preprocess {
namespace {

absl::string_view KindLabel(common::v1::PiiKind kind) {
  switch (kind) {
    case common::v1::PII_KIND_EMAIL:
      return "email";
    case common::v1::PII_KIND_PHONE:
      return "phone";
    case common::v1::PII_KIND_PAYMENT_CARD:
      return "card";
    default:
      return "other";
  }
}

}  // namespace

PreprocessService::PreprocessService(const Preprocessor& preprocessor, metrics::Registry& registry)
    : preprocessor_(preprocessor),
      pii_spans_(registry.AddCounter("helpline_preprocess_pii_spans_total",
                                     "Personal data spans found in customer text, by kind.",
                                     {"kind"})) {
  // Export the series at 0 from the start, so that rate() works from the first span.
  for (absl::string_view kind : {"email", "phone", "card"}) pii_spans_.Get({kind});
}

grpc::ServerUnaryReactor* PreprocessService::Preprocess(grpc::CallbackServerContext* context,
                                                        const v1::PreprocessRequest* request,
                                                        v1::PreprocessResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  log::ScopedContext log_context(rpc::RequestIdOf(*context), "");
  absl::Status status;
  try {
    absl::StatusOr<common::v1::PreprocessedText> result =
        preprocessor_.Process(request->text(), request->language_hint());
    if (result.ok()) {
      for (const common::v1::PiiSpan& span : result->pii_spans()) {
        pii_spans_.Get({KindLabel(span.kind())}).Increment();
      }
      if (log::Enabled(log::Level::kDebug)) {  // Do not build the fields when dropped.
        log::Debug("preprocessed", {{"bytes", request->text().size()},
                                    {"language", result->language()},
                                    {"tokens", result->tokens_size()},
                                    {"pii_spans", result->pii_spans_size()}});
      }
      *response->mutable_result() = std::move(*result);
    } else {
      status = result.status();
    }
  } catch (const std::exception& e) {  // ICU and RE2 do not throw; std::bad_alloc might.
    status = absl::InternalError(absl::StrCat("preprocess failed: ", e.what()));
  }
  if (!status.ok() && !absl::IsInvalidArgument(status)) {
    log::Error("preprocess failed", {{"status", status.ToString()}});
  }
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

}  // namespace helpline::preprocess
