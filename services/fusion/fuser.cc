#include "services/fusion/fuser.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/log/log.h"

namespace helpline::fusion {
namespace {

// OCR of one screenshot takes 0.1 s to a few seconds on one core.
std::vector<double> OcrBuckets() { return {0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30}; }

absl::string_view SniffedFormat(const std::string& data) {
  absl::StatusOr<image::ImageInfo> info = image::SniffImage(data);
  return info.ok() ? image::FormatName(info->format) : "unknown";
}

}  // namespace

Fuser::Fuser(FuserOptions options, OcrEngine& ocr, metrics::Registry& registry)
    : options_(std::move(options)),
      ocr_(ocr),
      attachments_(registry.AddCounter(
          "helpline_fusion_attachments_total",
          "Attachments by sniffed format and outcome (ok, rejected, undecodable, timeout, error).",
          {"format", "outcome"})),
      ocr_seconds_(registry
                       .AddHistogram("helpline_fusion_ocr_seconds",
                                     "Time to decode and OCR one attachment.", {}, OcrBuckets())
                       .Get(std::vector<std::string>{})) {}

void Fuser::Count(absl::string_view format, absl::string_view outcome) const {
  attachments_.Get({format, outcome}).Increment();
}

const std::string& Fuser::LanguagesFor(const std::string& language) const {
  return language == "zh" ? options_.ocr_languages_zh : options_.ocr_languages;
}

absl::StatusOr<v1::FuseResponse> Fuser::Fuse(const v1::FuseRequest& request,
                                             std::chrono::system_clock::time_point deadline) const {
  if (static_cast<uint32_t>(request.attachments_size()) > options_.max_attachments) {
    for (const common::v1::Attachment& a : request.attachments()) {
      Count(SniffedFormat(a.data()), "rejected");
    }
    return absl::InvalidArgumentError(absl::StrCat("attachments: ", request.attachments_size(),
                                                   " attachments is over the limit of ",
                                                   options_.max_attachments));
  }
  // Every attachment is checked before any is decoded.
  std::vector<image::ImageInfo> infos;
  infos.reserve(request.attachments_size());
  for (int i = 0; i < request.attachments_size(); ++i) {
    absl::StatusOr<image::ImageInfo> info =
        image::InspectAttachment(i, request.attachments(i), options_.limits);
    if (!info.ok()) {
      Count(SniffedFormat(request.attachments(i).data()), "rejected");
      log::Info("attachment rejected", {{"index", i}, {"status", info.status().ToString()}});
      return info.status();
    }
    infos.push_back(*info);
  }

  v1::FuseResponse response;
  const std::string& languages = LanguagesFor(request.language());
  for (int i = 0; i < request.attachments_size(); ++i) {
    const absl::string_view format = image::FormatName(infos[i].format);
    auto start = std::chrono::steady_clock::now();
    absl::StatusOr<OcrResult> read = ocr_.Read(request.attachments(i).data(), infos[i].format,
                                               options_.limits.max_pixels, languages, deadline);
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!read.ok()) {
      const absl::Status& s = read.status();
      const char* outcome = absl::IsInvalidArgument(s)    ? "undecodable"
                            : absl::IsDeadlineExceeded(s) ? "timeout"
                                                          : "error";
      Count(format, outcome);
      nlohmann::json fields = {
          {"index", i}, {"format", format}, {"outcome", outcome}, {"status", s.ToString()}};
      if (absl::IsInvalidArgument(s)) {
        log::Info("attachment not read", fields);  // The client's problem, not ours.
      } else {
        log::Warn("attachment not read", fields);
      }
      return absl::Status(s.code(), absl::StrCat("attachments[", i, "]: ", s.message()));
    }
    ocr_seconds_.Observe(seconds);
    Count(format, "ok");
    log::Debug("attachment read", {{"index", i},
                                   {"format", format},
                                   {"width", read->width},
                                   {"height", read->height},
                                   {"chars", read->text.size()},
                                   {"confidence", read->confidence},
                                   {"seconds", seconds}});
    common::v1::Evidence* evidence = response.add_evidence();
    evidence->set_attachment_index(i);
    evidence->set_source("ocr");
    evidence->set_text(std::move(read->text));
    evidence->set_confidence(read->confidence);
  }
  response.set_fused_text(FuseText(request.text(), response));
  return response;
}

std::string FuseText(const std::string& text, const v1::FuseResponse& response) {
  std::string fused = text;
  for (const common::v1::Evidence& evidence : response.evidence()) {
    if (evidence.text().empty()) continue;
    if (!fused.empty()) fused += '\n';
    fused += evidence.text();
  }
  return fused;
}

}  // namespace helpline::fusion
