// Decodes an image (Leptonica) and reads its text (Tesseract). Owns the Tesseract instances:
// TessBaseAPI is not thread-safe, so each call borrows an idle instance initialized for the
// requested languages, creating one when none is idle (at most one per concurrent caller,
// i.e. per executor thread), and returns it afterwards.
//
// Thread-safe. No Leptonica or Tesseract type appears in this header.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/image/image_info.h"

namespace tesseract {
class TessBaseAPI;
}

namespace helpline::fusion {

struct OcrOptions {
  // Folder of *.traineddata; empty for Tesseract's default (TESSDATA_PREFIX or the path
  // it was built with, /usr/share/tesseract-ocr/5/tessdata on Debian).
  std::string tessdata_dir;
  // Longest time one image may take, whatever the caller's deadline.
  std::chrono::milliseconds max_time_per_image{30000};
};

struct OcrResult {
  // Recognized text, trailing whitespace removed.
  std::string text;
  // Tesseract's mean word confidence in [0, 1]; 0 when nothing was read.
  float confidence = 0.0f;
  // Width and height of the decoded image.
  uint32_t width = 0;
  uint32_t height = 0;
};

class OcrEngine {
 public:
  // Ends and deletes a Tesseract instance (defined where TessBaseAPI is complete).
  struct TessDeleter {
    void operator()(tesseract::TessBaseAPI* api) const;
  };
  using TessPtr = std::unique_ptr<tesseract::TessBaseAPI, TessDeleter>;

  // Initializes one instance for each of `languages` (e.g. {"eng", "chi_sim+eng"}) so that
  // missing traineddata fails here, at startup: FAILED_PRECONDITION naming the languages.
  static absl::StatusOr<std::unique_ptr<OcrEngine>> Create(
      OcrOptions options, const std::vector<std::string>& languages);
  ~OcrEngine();
  OcrEngine(const OcrEngine&) = delete;
  OcrEngine& operator=(const OcrEngine&) = delete;

  // Decodes `data` as `format` and runs OCR with `languages` ("eng", "chi_sim+eng").
  // INVALID_ARGUMENT "cannot decode image" when the decoder refuses the data or the decoded
  // image has more than `max_pixels`; DEADLINE_EXCEEDED when recognition does not finish
  // by `deadline` (or max_time_per_image); FAILED_PRECONDITION when `languages` cannot be
  // loaded; INTERNAL when Tesseract fails otherwise.
  absl::StatusOr<OcrResult> Read(absl::string_view data, image::ImageFormat format,
                                 uint64_t max_pixels, const std::string& languages,
                                 std::chrono::system_clock::time_point deadline);

  // Instances created so far (idle or busy), for tests.
  size_t instances() const;

 private:
  explicit OcrEngine(OcrOptions options) : options_(std::move(options)) {}

  absl::StatusOr<TessPtr> Borrow(const std::string& languages);
  void Return(const std::string& languages, TessPtr api);

  const OcrOptions options_;
  mutable std::mutex mu_;
  std::map<std::string, std::vector<TessPtr>> idle_;
  size_t instances_ = 0;
};

}  // namespace helpline::fusion
