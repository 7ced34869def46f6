#include "services/fusion/ocr_engine.h"

#include <algorithm>
#include <exception>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "leptonica/allheaders.h"
#include "tesseract/baseapi.h"
#include "tesseract/ocrclass.h"

namespace helpline::fusion {
namespace {

struct PixDeleter {
  void operator()(PIX* pix) const { pixDestroy(&pix); }
};
using PixPtr = std::unique_ptr<PIX, PixDeleter>;

// Only the decoder of the sniffed format runs, so no other decoder Leptonica links
// (TIFF, JPEG 2000, GIF, ...) is reachable from a request.
PixPtr Decode(absl::string_view data, image::ImageFormat format) {
  const auto* bytes = reinterpret_cast<const l_uint8*>(data.data());
  switch (format) {
    case image::ImageFormat::kPng:
      return PixPtr(pixReadMemPng(bytes, data.size()));
    case image::ImageFormat::kJpeg: {
      l_int32 warnings = 0;
      return PixPtr(
          pixReadMemJpeg(bytes, data.size(), /*cmflag=*/0, /*reduction=*/1, &warnings, /*hint=*/0));
    }
    case image::ImageFormat::kWebp:
      return PixPtr(pixReadMemWebP(bytes, data.size()));
  }
  return nullptr;
}

}  // namespace

absl::StatusOr<std::unique_ptr<OcrEngine>> OcrEngine::Create(
    OcrOptions options, const std::vector<std::string>& languages) {
  // Leptonica reports decoding errors on stderr; our callers get a status instead.
  setMsgSeverity(L_SEVERITY_NONE);
  std::unique_ptr<OcrEngine> engine(new OcrEngine(std::move(options)));
  for (const std::string& language : languages) {
    absl::StatusOr<TessPtr> api = engine->Borrow(language);
    if (!api.ok()) return api.status();
    engine->Return(language, std::move(*api));
  }
  return engine;
}

void OcrEngine::TessDeleter::operator()(tesseract::TessBaseAPI* api) const {
  api->End();
  delete api;
}

OcrEngine::~OcrEngine() = default;

size_t OcrEngine::instances() const {
  std::lock_guard lock(mu_);
  return instances_;
}

absl::StatusOr<OcrEngine::TessPtr> OcrEngine::Borrow(const std::string& languages) {
  {
    std::lock_guard lock(mu_);
    auto it = idle_.find(languages);
    if (it != idle_.end() && !it->second.empty()) {
      TessPtr api = std::move(it->second.back());
      it->second.pop_back();
      return api;
    }
  }
  TessPtr api(new tesseract::TessBaseAPI());
  // Tesseract's diagnostics ("Estimating resolution as ...") are not useful in our logs.
  api->SetVariable("debug_file", "/dev/null");
  const char* datapath = options_.tessdata_dir.empty() ? nullptr : options_.tessdata_dir.c_str();
  if (api->Init(datapath, languages.c_str(), tesseract::OEM_DEFAULT) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "OCR languages '", languages, "' cannot be loaded from ",
        options_.tessdata_dir.empty() ? "Tesseract's default tessdata" : options_.tessdata_dir));
  }
  std::lock_guard lock(mu_);
  ++instances_;
  return api;
}

void OcrEngine::Return(const std::string& languages, TessPtr api) {
  std::lock_guard lock(mu_);
  idle_[languages].push_back(std::move(api));
}

absl::StatusOr<OcrResult> OcrEngine::Read(absl::string_view data, image::ImageFormat format,
                                          uint64_t max_pixels, const std::string& languages,
                                          std::chrono::system_clock::time_point deadline) {
  // A request that expired while queued must not pay for a decode of up to max_pixels.
  if (std::chrono::system_clock::now() >= deadline) {
    return absl::DeadlineExceededError("no time left for OCR");
  }
  PixPtr pix = Decode(data, format);
  if (pix == nullptr) return absl::InvalidArgumentError("cannot decode image");
  OcrResult result;
  result.width = static_cast<uint32_t>(pixGetWidth(pix.get()));
  result.height = static_cast<uint32_t>(pixGetHeight(pix.get()));
  // The header was checked before decoding; the decoder has the last word.
  if (uint64_t{result.width} * result.height > max_pixels) {
    return absl::InvalidArgumentError(absl::StrCat("decoded image is ", result.width, "x",
                                                   result.height, ", over the limit of ",
                                                   max_pixels, " pixels"));
  }
  auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::system_clock::now());
  remaining = std::min(remaining, options_.max_time_per_image);
  if (remaining.count() <= 0) return absl::DeadlineExceededError("no time left for OCR");

  absl::StatusOr<TessPtr> borrowed = Borrow(languages);
  if (!borrowed.ok()) return borrowed.status();
  TessPtr api = std::move(*borrowed);
  absl::Status status;
  try {
    api->SetImage(pix.get());
    tesseract::ETEXT_DESC monitor;
    monitor.set_deadline_msecs(static_cast<int32_t>(remaining.count()));
    if (api->Recognize(&monitor) != 0) {
      status = monitor.deadline_exceeded()
                   ? absl::DeadlineExceededError("OCR did not finish in time")
                   : absl::InternalError("OCR failed");
    } else {
      std::unique_ptr<char[]> text(api->GetUTF8Text());
      if (text != nullptr) result.text = std::string(absl::StripAsciiWhitespace(text.get()));
      int confidence = std::clamp(api->MeanTextConf(), 0, 100);
      result.confidence = result.text.empty() ? 0.0f : static_cast<float>(confidence) / 100.0f;
    }
    api->Clear();
  } catch (const std::exception& e) {
    // The instance may be in any state: drop it rather than return it to the pool.
    std::lock_guard lock(mu_);
    --instances_;
    return absl::InternalError(absl::StrCat("OCR failed: ", e.what()));
  }
  Return(languages, std::move(api));
  if (!status.ok()) return status;
  return result;
}

}  // namespace helpline::fusion
