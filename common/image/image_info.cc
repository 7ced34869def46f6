#include "common/image/image_info.h"

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace helpline::image {
namespace {

constexpr unsigned char kPngSignature[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

uint8_t At(absl::string_view b, size_t i) { return static_cast<uint8_t>(b[i]); }
uint32_t Be16(absl::string_view b, size_t i) { return (At(b, i) << 8) | At(b, i + 1); }
uint32_t Be32(absl::string_view b, size_t i) {
  return (uint32_t{At(b, i)} << 24) | (uint32_t{At(b, i + 1)} << 16) | (At(b, i + 2) << 8) |
         At(b, i + 3);
}
uint32_t Le16(absl::string_view b, size_t i) { return At(b, i) | (At(b, i + 1) << 8); }
uint32_t Le24(absl::string_view b, size_t i) {
  return At(b, i) | (At(b, i + 1) << 8) | (uint32_t{At(b, i + 2)} << 16);
}
uint32_t Le32(absl::string_view b, size_t i) { return Le24(b, i) | (uint32_t{At(b, i + 3)} << 24); }

absl::Status Malformed(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("malformed image header: ", what));
}

absl::StatusOr<ImageInfo> SniffPng(absl::string_view b) {
  // Signature (8), IHDR length (4) and type (4), IHDR data (13), CRC (4).
  if (b.size() < 33) return Malformed("PNG is truncated before the end of IHDR");
  if (Be32(b, 8) != 13 || b.substr(12, 4) != "IHDR") {
    return Malformed("PNG does not start with an IHDR chunk");
  }
  uint32_t width = Be32(b, 16);
  uint32_t height = Be32(b, 20);
  if (width > 0x7fffffffu || height > 0x7fffffffu) return Malformed("PNG dimensions out of range");
  return ImageInfo{ImageFormat::kPng, width, height};
}

bool IsStartOfFrame(uint8_t marker) {
  // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC).
  return marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
}

absl::StatusOr<ImageInfo> SniffJpeg(absl::string_view b) {
  size_t pos = 2;  // After SOI.
  while (true) {
    if (pos >= b.size()) return Malformed("JPEG is truncated before its frame header");
    if (At(b, pos) != 0xFF) return Malformed("JPEG marker expected");
    while (pos < b.size() && At(b, pos) == 0xFF) ++pos;  // Fill bytes.
    if (pos >= b.size()) return Malformed("JPEG is truncated before its frame header");
    uint8_t marker = At(b, pos++);
    if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) continue;  // No length field.
    if (marker == 0x00 || marker == 0xD8) return Malformed("unexpected JPEG marker");
    if (marker == 0xD9 || marker == 0xDA) {
      return Malformed("JPEG has no frame header before its image data");
    }
    if (pos + 2 > b.size()) return Malformed("JPEG is truncated inside a segment");
    uint32_t length = Be16(b, pos);  // Includes the two length bytes.
    if (length < 2) return Malformed("JPEG segment length is invalid");
    if (IsStartOfFrame(marker)) {
      // Length (2), precision (1), height (2), width (2), components (1).
      if (length < 8 || pos + 8 > b.size()) return Malformed("JPEG frame header is truncated");
      return ImageInfo{ImageFormat::kJpeg, Be16(b, pos + 5), Be16(b, pos + 3)};
    }
    pos += length;
  }
}

absl::StatusOr<ImageInfo> SniffWebp(absl::string_view b) {
  // "RIFF" size "WEBP", then the first chunk: fourcc (4), size (4), payload from byte 20.
  if (b.size() < 20) return Malformed("WebP is truncated before its first chunk");
  absl::string_view fourcc = b.substr(12, 4);
  if (fourcc == "VP8 ") {
    // Frame tag (3), start code 9d 01 2a (3), width (2), height (2); 14 bits each.
    if (b.size() < 30) return Malformed("WebP VP8 header is truncated");
    if ((At(b, 20) & 1) != 0) return Malformed("WebP VP8 data does not start with a key frame");
    if (At(b, 23) != 0x9d || At(b, 24) != 0x01 || At(b, 25) != 0x2a) {
      return Malformed("WebP VP8 start code missing");
    }
    return ImageInfo{ImageFormat::kWebp, Le16(b, 26) & 0x3fff, Le16(b, 28) & 0x3fff};
  }
  if (fourcc == "VP8L") {
    // Signature 0x2f, then 14 bits width - 1 and 14 bits height - 1.
    if (b.size() < 25) return Malformed("WebP VP8L header is truncated");
    if (At(b, 20) != 0x2f) return Malformed("WebP VP8L signature missing");
    uint32_t bits = Le32(b, 21);
    return ImageInfo{ImageFormat::kWebp, (bits & 0x3fff) + 1, ((bits >> 14) & 0x3fff) + 1};
  }
  if (fourcc == "VP8X") {
    // Flags (1), reserved (3), canvas width - 1 (3), canvas height - 1 (3).
    if (b.size() < 30) return Malformed("WebP VP8X header is truncated");
    return ImageInfo{ImageFormat::kWebp, Le24(b, 24) + 1, Le24(b, 27) + 1};
  }
  return Malformed("WebP has an unknown first chunk");
}

std::string Quoted(absl::string_view text) {
  constexpr size_t kMaxShown = 64;
  std::string shown = absl::CHexEscape(text.substr(0, kMaxShown));
  if (text.size() > kMaxShown) shown += "...";
  return absl::StrCat("'", shown, "'");
}

}  // namespace

absl::string_view FormatName(ImageFormat format) {
  switch (format) {
    case ImageFormat::kPng:
      return "png";
    case ImageFormat::kJpeg:
      return "jpeg";
    case ImageFormat::kWebp:
      return "webp";
  }
  return "unknown";
}

absl::string_view MimeTypeOf(ImageFormat format) {
  switch (format) {
    case ImageFormat::kPng:
      return "image/png";
    case ImageFormat::kJpeg:
      return "image/jpeg";
    case ImageFormat::kWebp:
      return "image/webp";
  }
  return "application/octet-stream";
}

std::optional<ImageFormat> FormatOfMimeType(absl::string_view mime_type) {
  absl::string_view essence = mime_type.substr(0, mime_type.find(';'));
  std::string type = absl::AsciiStrToLower(absl::StripAsciiWhitespace(essence));
  if (type == "image/png") return ImageFormat::kPng;
  if (type == "image/jpeg" || type == "image/jpg") return ImageFormat::kJpeg;
  if (type == "image/webp") return ImageFormat::kWebp;
  return std::nullopt;
}

absl::StatusOr<ImageInfo> SniffImage(absl::string_view bytes) {
  if (bytes.size() >= 8 &&
      bytes.substr(0, 8) == absl::string_view(reinterpret_cast<const char*>(kPngSignature), 8)) {
    return SniffPng(bytes);
  }
  if (bytes.size() >= 3 && At(bytes, 0) == 0xFF && At(bytes, 1) == 0xD8 && At(bytes, 2) == 0xFF) {
    return SniffJpeg(bytes);
  }
  if (bytes.size() >= 12 && bytes.substr(0, 4) == "RIFF" && bytes.substr(8, 4) == "WEBP") {
    return SniffWebp(bytes);
  }
  return absl::InvalidArgumentError("not a PNG, JPEG or WebP image");
}

absl::StatusOr<ImageInfo> InspectAttachment(size_t index, const common::v1::Attachment& attachment,
                                            const Limits& limits) {
  const std::string field = absl::StrCat("attachments[", index, "]");
  const std::string& data = attachment.data();
  if (data.empty()) return absl::InvalidArgumentError(absl::StrCat(field, ": data is empty"));
  if (data.size() > limits.max_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": ", data.size(), " bytes is over the limit of ", limits.max_bytes));
  }
  std::optional<ImageFormat> declared = FormatOfMimeType(attachment.mime_type());
  if (!declared) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": unsupported MIME type ", Quoted(attachment.mime_type()),
                     " (supported: image/png, image/jpeg, image/webp)"));
  }
  absl::StatusOr<ImageInfo> info = SniffImage(data);
  if (!info.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": ", info.status().message()));
  }
  if (info->format != *declared) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": declared as ", MimeTypeOf(*declared),
                                                   " but the data is ", MimeTypeOf(info->format)));
  }
  if (info->width == 0 || info->height == 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: image has no pixels (%ux%u)", field, info->width, info->height));
  }
  uint64_t pixels = uint64_t{info->width} * info->height;
  if (pixels > limits.max_pixels) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: %ux%u is %u pixels, over the limit of %u", field, info->width,
                        info->height, pixels, limits.max_pixels));
  }
  return *info;
}

absl::Status CheckAttachment(size_t index, const common::v1::Attachment& attachment,
                             const Limits& limits) {
  return InspectAttachment(index, attachment, limits).status();
}

}  // namespace helpline::image
