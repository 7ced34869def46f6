#include "common/image/image_info.h"

#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_images.h"

namespace helpline::image {
namespace {

using ::testing::HasSubstr;

using testutil::ReadTestImage;

std::string Be32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
          static_cast<char>(v)};
}
std::string Le32(uint32_t v) {
  return {static_cast<char>(v), static_cast<char>(v >> 8), static_cast<char>(v >> 16),
          static_cast<char>(v >> 24)};
}

// A PNG signature and IHDR claiming width x height, with a zero CRC and no image data.
std::string ForgedPng(uint32_t width, uint32_t height) {
  std::string b("\x89PNG\r\n\x1a\n", 8);
  b += Be32(13) + "IHDR" + Be32(width) + Be32(height);
  b += std::string("\x08\x02\x00\x00\x00", 5) + Be32(0);
  return b;
}

// SOI, an APP0 segment, then SOF0 claiming width x height.
std::string ForgedJpeg(uint16_t width, uint16_t height) {
  std::string b("\xFF\xD8", 2);
  b += std::string("\xFF\xE0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00", 18);
  b += std::string("\xFF\xC0\x00\x11\x08", 5);
  b += {static_cast<char>(height >> 8), static_cast<char>(height & 0xff),
        static_cast<char>(width >> 8), static_cast<char>(width & 0xff)};
  b += std::string("\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01", 10);
  return b;
}

// RIFF/WEBP with a VP8X chunk whose canvas is width x height.
std::string ForgedWebpVp8x(uint32_t width, uint32_t height) {
  std::string b = "RIFF" + Le32(22) + "WEBP" + "VP8X" + Le32(10);
  b += std::string("\x00\x00\x00\x00", 4);
  b += Le32(width - 1).substr(0, 3) + Le32(height - 1).substr(0, 3);
  return b;
}

common::v1::Attachment MakeAttachment(const std::string& mime, const std::string& data) {
  common::v1::Attachment a;
  a.set_mime_type(mime);
  a.set_data(data);
  return a;
}

struct FileCase {
  const char* name;
  ImageFormat format;
  uint32_t width;
  uint32_t height;
};

class RealFileTest : public ::testing::TestWithParam<FileCase> {};

TEST_P(RealFileTest, SniffsFormatAndDimensions) {
  const FileCase& c = GetParam();
  std::string bytes = ReadTestImage(c.name);
  ASSERT_FALSE(bytes.empty());
  absl::StatusOr<ImageInfo> info = SniffImage(bytes);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->format, c.format);
  EXPECT_EQ(info->width, c.width);
  EXPECT_EQ(info->height, c.height);
  EXPECT_TRUE(
      CheckAttachment(0, MakeAttachment(std::string(MimeTypeOf(c.format)), bytes), {}).ok());
}

TEST_P(RealFileTest, EveryTruncationIsAnErrorOrTheSameAnswer) {
  const FileCase& c = GetParam();
  std::string bytes = ReadTestImage(c.name);
  size_t first_ok = bytes.size() + 1;
  for (size_t n = 0; n < bytes.size(); ++n) {
    // A copy of the prefix only, so that a read past the end is a heap overflow (ASan).
    std::string prefix = bytes.substr(0, n);
    absl::StatusOr<ImageInfo> info = SniffImage(prefix);
    if (info.ok()) {
      first_ok = std::min(first_ok, n);
      EXPECT_EQ(info->width, c.width) << n;
      EXPECT_EQ(info->height, c.height) << n;
    } else {
      EXPECT_EQ(info.status().code(), absl::StatusCode::kInvalidArgument);
      EXPECT_GT(first_ok, n) << "error after a shorter prefix succeeded";
    }
  }
  EXPECT_GE(first_ok, 12u);  // No format is recognized from fewer bytes than its header.
}

INSTANTIATE_TEST_SUITE_P(
    Images, RealFileTest,
    ::testing::Values(FileCase{"order_12345678.png", ImageFormat::kPng, 421, 177},
                      FileCase{"order_12345678.jpg", ImageFormat::kJpeg, 421, 177},
                      FileCase{"order_12345678.webp", ImageFormat::kWebp, 421, 177},
                      FileCase{"small_rgb.png", ImageFormat::kPng, 33, 17},
                      FileCase{"small_progressive.jpg", ImageFormat::kJpeg, 33, 17},
                      FileCase{"small_lossless.webp", ImageFormat::kWebp, 33, 17}));

TEST(SniffImageTest, ForgedHeadersReportWhatTheyClaim) {
  absl::StatusOr<ImageInfo> png = SniffImage(ForgedPng(100000, 100000));
  ASSERT_TRUE(png.ok()) << png.status();
  EXPECT_EQ(png->width, 100000u);
  absl::StatusOr<ImageInfo> jpeg = SniffImage(ForgedJpeg(65535, 40000));
  ASSERT_TRUE(jpeg.ok()) << jpeg.status();
  EXPECT_EQ(jpeg->format, ImageFormat::kJpeg);
  EXPECT_EQ(jpeg->width, 65535u);
  EXPECT_EQ(jpeg->height, 40000u);
  absl::StatusOr<ImageInfo> webp = SniffImage(ForgedWebpVp8x(100000, 100000));
  ASSERT_TRUE(webp.ok()) << webp.status();
  EXPECT_EQ(webp->format, ImageFormat::kWebp);
  EXPECT_EQ(webp->height, 100000u);
}

TEST(SniffImageTest, RejectsUnknownAndMalformed) {
  EXPECT_THAT(SniffImage("GIF89a\x01\x00\x01\x00").status().message(),
              HasSubstr("not a PNG, JPEG or WebP"));
  EXPECT_FALSE(SniffImage("").ok());
  // IHDR must be the first chunk.
  std::string png = ForgedPng(10, 10);
  png.replace(12, 4, "IDAT");
  EXPECT_FALSE(SniffImage(png).ok());
  // JPEG: end of image before any frame header; a segment length below 2; a scan first.
  EXPECT_FALSE(SniffImage(std::string("\xFF\xD8\xFF\xD9", 4)).ok());
  EXPECT_FALSE(SniffImage(std::string("\xFF\xD8\xFF\xE0\x00\x01\x00\x00", 8)).ok());
  EXPECT_FALSE(SniffImage(std::string("\xFF\xD8\xFF\xDA\x00\x08", 6)).ok());
  // JPEG: a segment length pointing far past the end.
  EXPECT_FALSE(SniffImage(std::string("\xFF\xD8\xFF\xE1\xFF\xFF\x00\x00", 8)).ok());
  // WebP with an unknown chunk.
  std::string webp = ForgedWebpVp8x(10, 10);
  webp.replace(12, 4, "ALPH");
  EXPECT_FALSE(SniffImage(webp).ok());
}

TEST(SniffImageTest, RandomCorruptionNeverCrashes) {
  std::mt19937 rng(42);
  for (const char* name : {"order_12345678.png", "order_12345678.jpg", "order_12345678.webp",
                           "small_progressive.jpg", "small_lossless.webp"}) {
    std::string original = ReadTestImage(name).substr(0, 64);
    for (int i = 0; i < 5000; ++i) {
      std::string bytes = original.substr(0, 3 + rng() % (original.size() - 3));
      for (int k = 0; k < 3; ++k) bytes[rng() % bytes.size()] = static_cast<char>(rng());
      absl::StatusOr<ImageInfo> info = SniffImage(bytes);
      if (!info.ok()) {
        EXPECT_EQ(info.status().code(), absl::StatusCode::kInvalidArgument);
      }
    }
  }
}

TEST(CheckAttachmentTest, EmptyData) {
  absl::Status s = CheckAttachment(0, MakeAttachment("image/png", ""), {});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "attachments[0]: data is empty");
}

TEST(CheckAttachmentTest, OverSize) {
  std::string data = ForgedPng(10, 10) + std::string(9000000 - 33, '\0');
  absl::Status s = CheckAttachment(1, MakeAttachment("image/png", data), {});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "attachments[1]: 9000000 bytes is over the limit of 8388608");
}

TEST(CheckAttachmentTest, UnsupportedMimeType) {
  absl::Status s = CheckAttachment(1, MakeAttachment("image/gif", "GIF89a"), {});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("attachments[1]: unsupported MIME type 'image/gif'"));
  EXPECT_THAT(CheckAttachment(0, MakeAttachment("", ForgedPng(1, 1)), {}).message(),
              HasSubstr("unsupported MIME type ''"));
}

TEST(CheckAttachmentTest, MimeAliasesAndParameters) {
  std::string jpeg = ReadTestImage("small_progressive.jpg");
  EXPECT_TRUE(CheckAttachment(0, MakeAttachment("image/jpg", jpeg), {}).ok());
  EXPECT_TRUE(CheckAttachment(0, MakeAttachment("IMAGE/JPEG; q=1", jpeg), {}).ok());
}

TEST(CheckAttachmentTest, DeclaredTypeMustMatchContent) {
  std::string png = ReadTestImage("small_rgb.png");
  absl::Status s = CheckAttachment(2, MakeAttachment("image/jpeg", png), {});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "attachments[2]: declared as image/jpeg but the data is image/png");
  absl::Status garbage = CheckAttachment(0, MakeAttachment("image/png", "hello world"), {});
  EXPECT_EQ(garbage.message(), "attachments[0]: not a PNG, JPEG or WebP image");
}

TEST(CheckAttachmentTest, DecompressionBombsAreRefusedFromTheHeader) {
  absl::Status png = CheckAttachment(3, MakeAttachment("image/png", ForgedPng(100000, 100000)), {});
  EXPECT_EQ(png.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(png.message(),
            "attachments[3]: 100000x100000 is 10000000000 pixels, over the limit of 40000000");
  EXPECT_FALSE(CheckAttachment(0, MakeAttachment("image/jpeg", ForgedJpeg(65535, 65535)), {}).ok());
  EXPECT_FALSE(
      CheckAttachment(0, MakeAttachment("image/webp", ForgedWebpVp8x(100000, 100000)), {}).ok());
  // Exactly at the limit passes; one pixel over does not.
  Limits limits{1024, 100};
  EXPECT_TRUE(CheckAttachment(0, MakeAttachment("image/png", ForgedPng(10, 10)), limits).ok());
  EXPECT_FALSE(CheckAttachment(0, MakeAttachment("image/png", ForgedPng(101, 1)), limits).ok());
}

TEST(CheckAttachmentTest, ZeroDimensions) {
  absl::Status s = CheckAttachment(0, MakeAttachment("image/png", ForgedPng(0, 10)), {});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "attachments[0]: image has no pixels (0x10)");
}

}  // namespace
}  // namespace helpline::image
