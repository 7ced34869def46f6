// Image attachments: format sniffing by magic bytes and header parsing (no decoding), and
// the checks every attachment passes before anything decodes or stores it: size, declared
// MIME type, sniffed format, and dimensions (decompression bombs are refused from the
// header alone). Used by the gateway (before a turn is stored) and by fusion (before OCR).
//
// Pure functions; thread-safe. No image library is linked.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "helpline/common/v1/types.pb.h"

namespace helpline::image {

enum class ImageFormat { kPng, kJpeg, kWebp };

// "png", "jpeg" or "webp" (metric labels, messages).
absl::string_view FormatName(ImageFormat format);
// "image/png", "image/jpeg" or "image/webp".
absl::string_view MimeTypeOf(ImageFormat format);

// The format a declared MIME type names: image/png, image/jpeg (alias image/jpg) or
// image/webp, case-insensitive, parameters after ';' ignored. nullopt for anything else.
std::optional<ImageFormat> FormatOfMimeType(absl::string_view mime_type);

struct ImageInfo {
  ImageFormat format;
  uint32_t width = 0;
  uint32_t height = 0;
};

// Identifies a PNG, JPEG or WebP image by its magic bytes and reads its dimensions from the
// header: PNG's IHDR, JPEG's first start-of-frame marker, WebP's VP8 / VP8L / VP8X chunk.
// Does not decode pixels and never reads past `bytes`. INVALID_ARGUMENT for an unknown
// format or a truncated or malformed header. Dimensions may be 0 if the header says so.
absl::StatusOr<ImageInfo> SniffImage(absl::string_view bytes);

struct Limits {
  // Largest attachment in bytes.
  size_t max_bytes = 8 * 1024 * 1024;
  // Largest width x height, checked from the header before decoding.
  uint64_t max_pixels = 40'000'000;
};

// Checks attachment `index` of a request: data not empty and at most max_bytes; declared
// MIME type one of image/png, image/jpeg (image/jpg), image/webp; the sniffed format equal to
// the declared one; width and height non-zero and width x height at most max_pixels.
// Returns what the header says. INVALID_ARGUMENT naming "attachments[<index>]" otherwise.
absl::StatusOr<ImageInfo> InspectAttachment(size_t index, const common::v1::Attachment& attachment,
                                            const Limits& limits);

// InspectAttachment without the result.
absl::Status CheckAttachment(size_t index, const common::v1::Attachment& attachment,
                             const Limits& limits);

}  // namespace helpline::image
