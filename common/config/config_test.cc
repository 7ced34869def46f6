#include "common/config/config.h"

#include "gtest/gtest.h"
#include "helpline/gateway/v1/gateway_config.pb.h"

namespace helpline::config {
namespace {

using helpline::gateway::v1::GatewayConfig;

TEST(ConfigTest, MergesNestedYamlRepeatedAndDurations) {
  GatewayConfig c;
  c.set_http_port(8080);  // A default the file does not touch.
  ASSERT_TRUE(MergeYaml(R"(
server:
  grpc_port: 6000
  shutdown_grace: 250ms
store:
  redis_url: redis://127.0.0.1:7000
  idle_ttl: 2h
api_keys:
  - {tenant: acme, salt: "00", sha256: "ab", name: dev}
limits: {max_text_bytes: 100}
)", "test.yaml", c).ok());
  EXPECT_EQ(c.server().grpc_port(), 6000u);
  EXPECT_EQ(c.server().shutdown_grace().nanos(), 250000000);
  EXPECT_EQ(c.store().idle_ttl().seconds(), 7200);
  ASSERT_TRUE(MergeYaml("turn_timeout: 1.9999999999s\n", "x", c).ok());
  EXPECT_EQ(c.turn_timeout().seconds(), 2);
  EXPECT_EQ(c.turn_timeout().nanos(), 0);
  EXPECT_EQ(c.store().redis_url(), "redis://127.0.0.1:7000");
  ASSERT_EQ(c.api_keys_size(), 1);
  EXPECT_EQ(c.api_keys(0).tenant(), "acme");
  EXPECT_EQ(c.limits().max_text_bytes(), 100u);
  EXPECT_EQ(c.http_port(), 8080u);
}

TEST(ConfigTest, UnknownKeyIsRejectedWithItsPath) {
  GatewayConfig c;
  absl::Status s = MergeYaml("store:\n  redis_uri: x\n", "gw.yaml", c);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("store.redis_uri: unknown key"), std::string::npos) << s;
  EXPECT_NE(s.message().find("gw.yaml"), std::string::npos) << s;
}

TEST(ConfigTest, WrongTypesAreRejected) {
  GatewayConfig c;
  EXPECT_NE(MergeYaml("http_port: -1\n", "x", c).message().find("http_port"), std::string::npos);
  EXPECT_FALSE(MergeYaml("http_port: abc\n", "x", c).ok());
  EXPECT_FALSE(MergeYaml("store: 5\n", "x", c).ok());
  EXPECT_FALSE(MergeYaml("turn_timeout: soon\n", "x", c).ok());
  EXPECT_FALSE(MergeYaml("http_port: [1\n", "x", c).ok());  // Malformed YAML.
  EXPECT_EQ(MergeYaml("? [a, b]\n: 1\n", "x", c).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(MergeYaml("turn_timeout: 1e300h\n", "x", c).ok());
}

TEST(ConfigTest, EnvironmentAndSetOverride) {
  GatewayConfig c;
  std::string a = "HELPLINE_GATEWAY__STORE__MAX_TURNS=7";
  std::string b = "HELPLINE_DST__SOMETHING=1";  // Another service's variable: ignored.
  char* env[] = {a.data(), b.data(), nullptr};
  ASSERT_TRUE(ApplyEnvironment("GATEWAY", env, c).ok());
  EXPECT_EQ(c.store().max_turns(), 7u);
  ASSERT_TRUE(SetField("limits.max_attachments", "2", c).ok());
  EXPECT_EQ(c.limits().max_attachments(), 2u);
  EXPECT_EQ(SetField("limits.nope", "2", c).code(), absl::StatusCode::kInvalidArgument);
  std::string bad = "HELPLINE_GATEWAY__NOPE=1";
  char* env2[] = {bad.data(), nullptr};
  absl::Status s = ApplyEnvironment("GATEWAY", env2, c);
  EXPECT_NE(s.message().find("HELPLINE_GATEWAY__NOPE"), std::string::npos) << s;
}

TEST(ConfigTest, CommandLine) {
  GatewayConfig c;
  std::string prog = "helpline-gateway", set = "--set", kv = "http_port=9999";
  char* argv[] = {prog.data(), set.data(), kv.data()};
  ASSERT_TRUE(LoadFromCommandLine("gateway", 3, argv, c).ok());
  EXPECT_EQ(c.http_port(), 9999u);
  std::string bad = "--frobnicate";
  char* argv2[] = {prog.data(), bad.data()};
  EXPECT_EQ(LoadFromCommandLine("gateway", 2, argv2, c).code(), absl::StatusCode::kInvalidArgument);
  std::string cfg = "--config=/nonexistent.yaml";
  char* argv3[] = {prog.data(), cfg.data()};
  EXPECT_EQ(LoadFromCommandLine("gateway", 2, argv3, c).code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace helpline::config
