#include "lm/model/safetensors.h"

#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace helpline::lm {
namespace {

using ::testing::HasSubstr;

class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/safetensors_test_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::system(absl::StrCat("rm -rf ", dir_).c_str()); }

  // Writes u64 header length + header + data; returns the path.
  std::string Write(const std::string& header, const std::string& data, int64_t header_len = -1) {
    const std::string path = absl::StrCat(dir_, "/m", counter_++, ".safetensors");
    std::ofstream out(path, std::ios::binary);
    uint64_t n = header_len >= 0 ? static_cast<uint64_t>(header_len) : header.size();
    for (int i = 0; i < 8; ++i) out.put(static_cast<char>((n >> (8 * i)) & 0xff));
    out << header << data;
    return path;
  }

  std::string dir_;
  int counter_ = 0;
};

std::string Floats(std::initializer_list<float> values) {
  std::string s;
  for (float v : values) s.append(reinterpret_cast<const char*>(&v), 4);
  return s;
}

TEST_F(SafetensorsTest, ReadsF32F16Bf16AndMetadata) {
  // a: F32 [2] = {1.5, -2}; b: F16 [2] = {1.0 (0x3c00), -0.5 (0xb800)}; c: BF16 [1] = 3.0 (0x4040)
  std::string data = Floats({1.5f, -2.0f});
  data += std::string("\x00\x3c\x00\xb8", 4);
  data += std::string("\x40\x40", 2);
  const std::string header =
      R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
      R"("b":{"dtype":"F16","shape":[1,2],"data_offsets":[8,12]},"c":{"dtype":"BF16","shape":[1],"data_offsets":[12,14]}})";
  auto file = SafetensorsFile::Open(Write(header, data));
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->metadata().at("format"), "pt");
  ASSERT_EQ((*file)->tensors().size(), 3u);
  float out[2];
  SafetensorsFile::ToFloat32(*(*file)->Find("a"), out);
  EXPECT_EQ(out[0], 1.5f);
  EXPECT_EQ(out[1], -2.0f);
  const SafetensorsTensor* b = (*file)->Find("b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->shape, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(b->dtype, SafetensorsDtype::kF16);
  SafetensorsFile::ToFloat32(*b, out);
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], -0.5f);
  SafetensorsFile::ToFloat32(*(*file)->Find("c"), out);
  EXPECT_EQ(out[0], 3.0f);
  EXPECT_EQ((*file)->Find("nope"), nullptr);
}

TEST_F(SafetensorsTest, F16SubnormalsAndInfinity) {
  // 0x0001 = 2^-24 (smallest subnormal), 0x7c00 = +inf, 0xfbff = -65504
  const std::string data("\x01\x00\x00\x7c\xff\xfb", 6);
  auto file = SafetensorsFile::Open(Write(R"({"x":{"dtype":"F16","shape":[3],"data_offsets":[0,6]}})", data));
  ASSERT_TRUE(file.ok()) << file.status();
  float out[3];
  SafetensorsFile::ToFloat32(*(*file)->Find("x"), out);
  EXPECT_EQ(out[0], std::ldexp(1.0f, -24));
  EXPECT_TRUE(std::isinf(out[1]) && out[1] > 0);
  EXPECT_EQ(out[2], -65504.0f);
}

TEST_F(SafetensorsTest, MissingFileIsNotFound) {
  auto file = SafetensorsFile::Open(dir_ + "/none.safetensors");
  EXPECT_EQ(file.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(file.status().message(), HasSubstr("none.safetensors"));
}

void ExpectInvalid(const absl::StatusOr<std::unique_ptr<SafetensorsFile>>& file, const std::string& path,
                   const std::string& text) {
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), absl::StatusCode::kInvalidArgument) << file.status();
  EXPECT_THAT(file.status().message(), HasSubstr(path));
  EXPECT_THAT(file.status().message(), HasSubstr(text));
}

TEST_F(SafetensorsTest, MalformedFilesNameTheFileAndTensor) {
  {
    const std::string path = absl::StrCat(dir_, "/short.safetensors");
    std::ofstream(path) << "abc";
    ExpectInvalid(SafetensorsFile::Open(path), path, "truncated");
  }
  {
    const std::string path = Write(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", Floats({1}), 1000);
    ExpectInvalid(SafetensorsFile::Open(path), path, "header length 1000");
  }
  {
    const std::string path = Write(R"({"a":{"dtype":"F32",)", "");
    ExpectInvalid(SafetensorsFile::Open(path), path, "not valid JSON");
  }
  {
    const std::string path = Write(R"([1,2])", "");
    ExpectInvalid(SafetensorsFile::Open(path), path, "not a JSON object");
  }
  {  // data cut short: the offsets run past the end
    const std::string path = Write(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", Floats({1, 2}));
    ExpectInvalid(SafetensorsFile::Open(path), path, "tensor w: data_offsets [0, 16] run past the end");
  }
  {
    const std::string path = Write(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", Floats({1, 2}));
    ExpectInvalid(SafetensorsFile::Open(path), path, "tensor w: shape [3] of F32 needs 12 bytes");
  }
  {
    const std::string path = Write(
        R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
        Floats({1, 2, 3}));
    ExpectInvalid(SafetensorsFile::Open(path), path, "tensor b: data_offsets overlap those of tensor a");
  }
  {
    const std::string path = Write(R"({"w":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}})", Floats({1, 2}));
    ExpectInvalid(SafetensorsFile::Open(path), path, "tensor w: dtype F64 is not supported");
  }
  {
    const std::string path = Write(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", Floats({1}));
    ExpectInvalid(SafetensorsFile::Open(path), path, "tensor w: shape");
  }
  {
    const std::string path = Write(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", Floats({1}));
    ExpectInvalid(SafetensorsFile::Open(path), path, "tensor w: data_offsets [4, 0] are reversed");
  }
  {
    const std::string path = Write(R"({"w":{"dtype":"F32","shape":[1]}})", Floats({1}));
    ExpectInvalid(SafetensorsFile::Open(path), path, "tensor w: data_offsets");
  }
}

}  // namespace
}  // namespace helpline::lm
