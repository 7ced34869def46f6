#include "common/redis/redis_client.h"

#include "gtest/gtest.h"

namespace helpline::redis {
namespace {

TEST(ParseRedisUrlTest, HostOnlyGetsDefaults) {
  auto options = ParseRedisUrl("redis://cache.internal");
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->host, "cache.internal");
  EXPECT_EQ(options->port, 6379);
  EXPECT_EQ(options->db, 0);
  EXPECT_EQ(options->password, "");
  EXPECT_EQ(options->username, "");
}

TEST(ParseRedisUrlTest, PasswordPortAndDb) {
  auto options = ParseRedisUrl("redis://:s3cr%40t@10.0.0.7:6380/3");
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->host, "10.0.0.7");
  EXPECT_EQ(options->port, 6380);
  EXPECT_EQ(options->db, 3);
  EXPECT_EQ(options->password, "s3cr@t");
  EXPECT_EQ(options->username, "");
}

TEST(ParseRedisUrlTest, UserAndPassword) {
  auto options = ParseRedisUrl("redis://helpline:pw@localhost:1234/");
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->username, "helpline");
  EXPECT_EQ(options->password, "pw");
  EXPECT_EQ(options->port, 1234);
  EXPECT_EQ(options->db, 0);
}

TEST(ParseRedisUrlTest, Ipv6) {
  auto options = ParseRedisUrl("redis://[::1]:7000");
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->host, "::1");
  EXPECT_EQ(options->port, 7000);
}

struct BadUrl {
  const char* url;
  const char* message_part;
};

class ParseRedisUrlBadTest : public ::testing::TestWithParam<BadUrl> {};

TEST_P(ParseRedisUrlBadTest, IsInvalidArgumentNamingTheProblem) {
  auto options = ParseRedisUrl(GetParam().url);
  ASSERT_FALSE(options.ok()) << GetParam().url;
  EXPECT_EQ(options.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(options.status().message().find(GetParam().message_part), absl::string_view::npos)
      << options.status();
}

INSTANTIATE_TEST_SUITE_P(
    All, ParseRedisUrlBadTest,
    ::testing::Values(BadUrl{"http://host", "redis://"}, BadUrl{"", "redis://"},
                      BadUrl{"rediss://host", "TLS"}, BadUrl{"redis://", "host is empty"},
                      BadUrl{"redis://:6379", "host is empty"},
                      BadUrl{"redis://host:0", "port"}, BadUrl{"redis://host:70000", "port"},
                      BadUrl{"redis://host:abc", "port"}, BadUrl{"redis://host:", "port"},
                      BadUrl{"redis://host/x", "database"}, BadUrl{"redis://host/-1", "database"},
                      BadUrl{"redis://pw@host", "credentials"},
                      BadUrl{"redis://:@host", "password is empty"},
                      BadUrl{"redis://:p%zz@host", "password"},
                      BadUrl{"redis://:p%2@host", "password"},
                      BadUrl{"redis://host?db=1", "query"}, BadUrl{"redis://[::1", "]"}));

}  // namespace
}  // namespace helpline::redis
