// Starts FusionService (real executor, real Tesseract) on a loopback port chosen by the OS
// and calls it with a real stub.
#include "services/fusion/fusion_service.h"

#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/testing/test_images.h"

namespace helpline::fusion {
namespace {

using ::testing::HasSubstr;

using testutil::ReadTestImage;

class FusionServiceTest : public ::testing::Test {
 protected:
  virtual size_t MaxQueued() const { return 8; }
  void SetUp() override {
    auto engine = OcrEngine::Create({}, {"eng"});
    ASSERT_TRUE(engine.ok()) << engine.status();
    engine_ = std::move(*engine);
    fuser_ = std::make_unique<Fuser>(FuserOptions{}, *engine_, registry_);
    executor_ = std::make_unique<rpc::Executor>(2, MaxQueued(), "ocr");
    service_ = std::make_unique<FusionService>(*fuser_, *executor_);
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port_, 0);
    stub_ = v1::FusionService::NewStub(grpc::CreateChannel("127.0.0.1:" + std::to_string(port_),
                                                           grpc::InsecureChannelCredentials()));
  }
  void TearDown() override {
    if (server_) server_->Shutdown();
    if (executor_) executor_->Drain();
  }

  grpc::Status Call(const v1::FuseRequest& request, v1::FuseResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    return stub_->Fuse(&context, request, response);
  }

  int port_ = 0;
  metrics::Registry registry_;
  std::unique_ptr<OcrEngine> engine_;
  std::unique_ptr<Fuser> fuser_;
  std::unique_ptr<rpc::Executor> executor_;
  std::unique_ptr<FusionService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::FusionService::Stub> stub_;
};

TEST_F(FusionServiceTest, PassThroughWithoutAttachments) {
  v1::FuseRequest request;
  request.set_text("hello");
  v1::FuseResponse response;
  grpc::Status status = Call(request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.fused_text(), "hello");
  EXPECT_EQ(response.evidence_size(), 0);
}

TEST_F(FusionServiceTest, ReadsAttachmentOverGrpc) {
  v1::FuseRequest request;
  request.set_text("where is it");
  request.set_language("en");
  common::v1::Attachment* a = request.add_attachments();
  a->set_mime_type("image/webp");
  a->set_data(ReadTestImage("order_12345678.webp"));
  v1::FuseResponse response;
  grpc::Status status = Call(request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.evidence_size(), 1);
  EXPECT_THAT(response.evidence(0).text(), HasSubstr("12345678"));
  EXPECT_THAT(response.fused_text(), ::testing::StartsWith("where is it\n"));
  EXPECT_THAT(registry_.Serialize(),
              HasSubstr("helpline_fusion_attachments_total{format=\"webp\",outcome=\"ok\"} 1"));
  EXPECT_THAT(registry_.Serialize(), HasSubstr("helpline_fusion_ocr_seconds_count 1"));
}

TEST_F(FusionServiceTest, BadAttachmentsAreInvalidArgument) {
  v1::FuseRequest request;
  common::v1::Attachment* a = request.add_attachments();
  a->set_mime_type("application/pdf");
  a->set_data("%PDF-1.7");
  v1::FuseResponse response;
  grpc::Status status = Call(request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(),
              HasSubstr("attachments[0]: unsupported MIME type 'application/pdf'"));

  a->set_mime_type("image/png");
  a->set_data(ReadTestImage("order_12345678.png").substr(0, 33) + std::string(200, 'z'));
  status = Call(request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(), "attachments[0]: cannot decode image");
}

// An executor that takes no work: OCR requests get backpressure, pass-through still works.
class FullExecutorTest : public FusionServiceTest {
 protected:
  size_t MaxQueued() const override { return 0; }
};

TEST_F(FullExecutorTest, FullQueueIsResourceExhausted) {
  v1::FuseRequest request;
  request.set_text("hi");
  v1::FuseResponse response;
  ASSERT_TRUE(Call(request, &response).ok());
  common::v1::Attachment* a = request.add_attachments();
  a->set_mime_type("image/png");
  a->set_data(ReadTestImage("order_12345678.png"));
  grpc::Status status = Call(request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
}

}  // namespace
}  // namespace helpline::fusion
