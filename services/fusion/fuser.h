// The logic of helpline-fusion, without gRPC: checks every attachment (count, size, MIME
// type, sniffed format, pixel limit) before any decoding, then decodes each image and reads
// its text with OCR, and fuses the text read with the customer's text.
//
// Thread-safe; Fuse() blocks for the OCR, so callers run it on an executor.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "common/image/image_info.h"
#include "common/metrics/metrics.h"
#include "helpline/fusion/v1/fusion_service.pb.h"
#include "services/fusion/ocr_engine.h"

namespace helpline::fusion {

struct FuserOptions {
  // Most attachments per request.
  uint32_t max_attachments = 4;
  // Per attachment: bytes and width x height.
  image::Limits limits;
  // OCR languages for "en"/"und" text and for "zh" text.
  std::string ocr_languages = "eng";
  std::string ocr_languages_zh = "chi_sim+eng";
};

class Fuser {
 public:
  // `ocr` is not owned and must outlive the fuser. Metrics go to `registry`:
  // helpline_fusion_attachments_total{format,outcome}, helpline_fusion_ocr_seconds.
  Fuser(FuserOptions options, OcrEngine& ocr,
        metrics::Registry& registry = metrics::Registry::Default());

  // INVALID_ARGUMENT naming the field for too many attachments or a bad one (see
  // image::CheckAttachment, plus "attachments[i]: cannot decode image"); nothing is decoded
  // unless every attachment passes the checks. DEADLINE_EXCEEDED when OCR runs past
  // `deadline`. Without attachments: fused_text = text, no OCR.
  absl::StatusOr<v1::FuseResponse> Fuse(const v1::FuseRequest& request,
                                        std::chrono::system_clock::time_point deadline) const;

  // The OCR languages for a text language ("zh" -> ocr_languages_zh, else ocr_languages).
  const std::string& LanguagesFor(const std::string& language) const;

 private:
  void Count(absl::string_view format, absl::string_view outcome) const;

  const FuserOptions options_;
  OcrEngine& ocr_;
  metrics::Family<metrics::Counter>& attachments_;
  metrics::Histogram& ocr_seconds_;
};

// Joins the non-empty parts with '\n': the text, then each evidence text in order.
std::string FuseText(const std::string& text, const v1::FuseResponse& response);

}  // namespace helpline::fusion
