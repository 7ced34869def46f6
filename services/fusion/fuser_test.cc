// Fuser and OcrEngine with real Leptonica and Tesseract (eng and chi_sim traineddata).
#include "services/fusion/fuser.h"

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_images.h"

namespace helpline::fusion {
namespace {

using ::testing::HasSubstr;

using testutil::ReadTestImage;

common::v1::Attachment MakeAttachment(const std::string& mime, const std::string& data) {
  common::v1::Attachment a;
  a.set_mime_type(mime);
  a.set_data(data);
  return a;
}

std::chrono::system_clock::time_point InSeconds(int s) {
  return std::chrono::system_clock::now() + std::chrono::seconds(s);
}

class FuserTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto engine = OcrEngine::Create({}, {"eng"});
    ASSERT_TRUE(engine.ok()) << engine.status();
    engine_ = engine->release();
  }
  static void TearDownTestSuite() {
    delete engine_;
    engine_ = nullptr;
  }
  void SetUp() override {
    ASSERT_NE(engine_, nullptr);
    fuser_ = std::make_unique<Fuser>(FuserOptions{}, *engine_, registry_);
  }

  double Attachments(const std::string& format, const std::string& outcome) {
    return registry_.AddCounter("helpline_fusion_attachments_total", "", {"format", "outcome"})
        .Get({format, outcome})
        .Value();
  }
  uint64_t OcrRuns() {
    return registry_.AddHistogram("helpline_fusion_ocr_seconds", "", {}).Get({}).Count();
  }

  static OcrEngine* engine_;
  metrics::Registry registry_;
  std::unique_ptr<Fuser> fuser_;
};

OcrEngine* FuserTest::engine_ = nullptr;

TEST_F(FuserTest, NoAttachmentIsPassThrough) {
  v1::FuseRequest request;
  request.set_text("where is my order");
  auto response = fuser_->Fuse(request, InSeconds(10));
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->fused_text(), "where is my order");
  EXPECT_EQ(response->evidence_size(), 0);
  EXPECT_EQ(OcrRuns(), 0u);
}

class FuserFormatTest : public FuserTest,
                        public ::testing::WithParamInterface<std::pair<const char*, const char*>> {
};

TEST_P(FuserFormatTest, ReadsTheOrderNumber) {
  auto [file, mime] = GetParam();
  v1::FuseRequest request;
  request.set_text("my order");
  request.set_language("en");
  *request.add_attachments() = MakeAttachment(mime, ReadTestImage(file));
  auto response = fuser_->Fuse(request, InSeconds(60));
  ASSERT_TRUE(response.ok()) << response.status();
  ASSERT_EQ(response->evidence_size(), 1);
  const common::v1::Evidence& evidence = response->evidence(0);
  EXPECT_EQ(evidence.attachment_index(), 0u);
  EXPECT_EQ(evidence.source(), "ocr");
  EXPECT_THAT(evidence.text(), HasSubstr("12345678"));
  EXPECT_GT(evidence.confidence(), 0.5f);
  EXPECT_LE(evidence.confidence(), 1.0f);
  EXPECT_EQ(response->fused_text(), "my order\n" + evidence.text());
  EXPECT_EQ(OcrRuns(), 1u);
}

INSTANTIATE_TEST_SUITE_P(Formats, FuserFormatTest,
                         ::testing::Values(std::make_pair("order_12345678.png", "image/png"),
                                           std::make_pair("order_12345678.jpg", "image/jpeg"),
                                           std::make_pair("order_12345678.webp", "image/webp")));

TEST_F(FuserTest, SeveralAttachmentsAndEmptyText) {
  v1::FuseRequest request;
  *request.add_attachments() = MakeAttachment("image/png", ReadTestImage("order_12345678.png"));
  *request.add_attachments() = MakeAttachment("image/png", ReadTestImage("small_rgb.png"));
  *request.add_attachments() = MakeAttachment("image/jpg", ReadTestImage("order_12345678.jpg"));
  auto response = fuser_->Fuse(request, InSeconds(60));
  ASSERT_TRUE(response.ok()) << response.status();
  ASSERT_EQ(response->evidence_size(), 3);
  EXPECT_EQ(response->evidence(2).attachment_index(), 2u);
  // A gradient has no text: its evidence is empty and left out of the fused text.
  EXPECT_EQ(response->evidence(1).text(), "");
  EXPECT_EQ(response->evidence(1).confidence(), 0.0f);
  EXPECT_EQ(response->fused_text(),
            response->evidence(0).text() + "\n" + response->evidence(2).text());
  EXPECT_EQ(Attachments("png", "ok"), 2.0);
  EXPECT_EQ(Attachments("jpeg", "ok"), 1.0);
}

TEST_F(FuserTest, ChineseTextUsesChineseLanguages) {
  EXPECT_EQ(fuser_->LanguagesFor("zh"), "chi_sim+eng");
  EXPECT_EQ(fuser_->LanguagesFor("en"), "eng");
  EXPECT_EQ(fuser_->LanguagesFor("und"), "eng");
  v1::FuseRequest request;
  request.set_text("我的订单");
  request.set_language("zh");
  *request.add_attachments() = MakeAttachment("image/png", ReadTestImage("order_12345678.png"));
  size_t before = engine_->instances();
  auto response = fuser_->Fuse(request, InSeconds(60));
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_THAT(response->fused_text(), HasSubstr("12345678"));
  EXPECT_THAT(response->fused_text(), ::testing::StartsWith("我的订单\n"));
  EXPECT_EQ(engine_->instances(), before + 1);  // A chi_sim+eng instance was made.
}

TEST_F(FuserTest, UndecodableImageIsInvalidArgument) {
  // A real PNG header (signature + IHDR) followed by garbage.
  std::string png = ReadTestImage("order_12345678.png").substr(0, 33) + std::string(300, 'x');
  v1::FuseRequest request;
  *request.add_attachments() = MakeAttachment("image/png", png);
  auto response = fuser_->Fuse(request, InSeconds(10));
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(response.status().message(), "attachments[0]: cannot decode image");
  EXPECT_EQ(Attachments("png", "undecodable"), 1.0);
  // A JPEG whose headers up to the frame header are real, then garbage without markers.
  std::string jpeg = ReadTestImage("order_12345678.jpg");
  size_t sof = jpeg.find("\xFF\xC0");
  ASSERT_NE(sof, std::string::npos);
  size_t sof_end =
      sof + 2 + ((static_cast<uint8_t>(jpeg[sof + 2]) << 8) | static_cast<uint8_t>(jpeg[sof + 3]));
  // A WebP whose RIFF and VP8 headers are real, then garbage.
  std::string webp = ReadTestImage("order_12345678.webp");
  for (const auto& [data, mime] :
       {std::make_pair(jpeg.substr(0, sof_end) + std::string(300, '\x11'), "image/jpeg"),
        std::make_pair(webp.substr(0, 30) + std::string(300, '\x11'), "image/webp")}) {
    v1::FuseRequest r;
    *r.add_attachments() = MakeAttachment(mime, data);
    ASSERT_TRUE(image::CheckAttachment(0, r.attachments(0), {}).ok()) << mime;
    auto result = fuser_->Fuse(r, InSeconds(10));
    ASSERT_FALSE(result.ok()) << mime;
    EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument) << mime;
    EXPECT_EQ(result.status().message(), "attachments[0]: cannot decode image") << mime;
  }
  EXPECT_EQ(Attachments("jpeg", "undecodable"), 1.0);
  EXPECT_EQ(Attachments("webp", "undecodable"), 1.0);
}

TEST_F(FuserTest, EveryAttachmentIsCheckedBeforeAnyOcr) {
  v1::FuseRequest request;
  *request.add_attachments() = MakeAttachment("image/png", ReadTestImage("order_12345678.png"));
  *request.add_attachments() = MakeAttachment("image/gif", "GIF89a\x01\x00\x01\x00");
  auto response = fuser_->Fuse(request, InSeconds(10));
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(response.status().message(),
              HasSubstr("attachments[1]: unsupported MIME type 'image/gif'"));
  EXPECT_EQ(OcrRuns(), 0u);
  EXPECT_EQ(Attachments("unknown", "rejected"), 1.0);
}

TEST_F(FuserTest, TooManyAttachments) {
  v1::FuseRequest request;
  for (int i = 0; i < 5; ++i) {
    *request.add_attachments() = MakeAttachment("image/png", ReadTestImage("small_rgb.png"));
  }
  auto response = fuser_->Fuse(request, InSeconds(10));
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(response.status().message(), "attachments: 5 attachments is over the limit of 4");
}

TEST_F(FuserTest, DecompressionBombIsRefusedBeforeDecoding) {
  // The real header of a small PNG, with IHDR rewritten to claim 100000 x 100000.
  std::string png = ReadTestImage("small_rgb.png");
  const char claim[] = {0x00, 0x01, static_cast<char>(0x86), static_cast<char>(0xA0)};
  png.replace(16, 4, claim, 4);
  png.replace(20, 4, claim, 4);
  v1::FuseRequest request;
  *request.add_attachments() = MakeAttachment("image/png", png);
  auto response = fuser_->Fuse(request, InSeconds(10));
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(response.status().message(), HasSubstr("attachments[0]: 100000x100000"));
  EXPECT_EQ(Attachments("png", "rejected"), 1.0);
  EXPECT_EQ(OcrRuns(), 0u);
}

TEST_F(FuserTest, PassedDeadlineIsDeadlineExceeded) {
  v1::FuseRequest request;
  *request.add_attachments() = MakeAttachment("image/png", ReadTestImage("order_12345678.png"));
  auto response = fuser_->Fuse(request, std::chrono::system_clock::now());
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(Attachments("png", "timeout"), 1.0);
}

TEST_F(FuserTest, ConcurrentCallsEachGetTheirOwnTesseract) {
  std::string png = ReadTestImage("order_12345678.png");
  std::vector<std::thread> threads;
  std::vector<std::string> texts(2);
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      v1::FuseRequest request;
      *request.add_attachments() = MakeAttachment("image/png", png);
      auto response = fuser_->Fuse(request, InSeconds(60));
      if (response.ok()) texts[t] = response->fused_text();
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_THAT(texts[0], HasSubstr("12345678"));
  EXPECT_THAT(texts[1], HasSubstr("12345678"));
}

TEST(OcrEngineTest, MissingTraineddataFailsAtCreate) {
  auto engine = OcrEngine::Create({.tessdata_dir = "/nonexistent/tessdata"}, {"eng"});
  ASSERT_FALSE(engine.ok());
  EXPECT_EQ(engine.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(engine.status().message(), HasSubstr("'eng'"));
}

}  // namespace
}  // namespace helpline::fusion
