#include "services/gateway/auth.h"

#include "gtest/gtest.h"

namespace helpline::gateway {
namespace {

v1::ApiKey Key(const std::string& tenant, const std::string& salt, const std::string& key) {
  v1::ApiKey api_key;
  api_key.set_tenant(tenant);
  api_key.set_salt(salt);
  api_key.set_sha256(SaltedKeyHash(salt, key));
  api_key.set_name(tenant + "-key");
  return api_key;
}

TEST(SaltedKeyHashTest, MatchesShellRecipe) {
  // printf '%s%s' "abcd" "secret" | sha256sum
  EXPECT_EQ(SaltedKeyHash("abcd", "secret"),
            "7666c73ae7b8a41de64b0128607f4dca586b8ecd01b17935c55abe44d2f26822");
}

class AuthenticatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    google::protobuf::RepeatedPtrField<v1::ApiKey> keys;
    *keys.Add() = Key("acme", "00ff", "key-a");
    *keys.Add() = Key("globex", "1234abcd", "key-b");
    auto auth = Authenticator::Create(keys);
    ASSERT_TRUE(auth.ok()) << auth.status();
    auth_ = std::move(*auth);
  }
  std::unique_ptr<Authenticator> auth_;
};

TEST_F(AuthenticatorTest, MapsKeyToTenant) {
  auto a = auth_->Authenticate("Bearer key-a");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->tenant, "acme");
  EXPECT_EQ(a->key_name, "acme-key");
  auto b = auth_->Authenticate("bearer   key-b ");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->tenant, "globex");
}

TEST_F(AuthenticatorTest, RejectsWrongMissingAndMalformed) {
  for (const char* header : {"Bearer key-c", "Bearer KEY-A", "Bearer key-", "Bearer key-aa"}) {
    auto r = auth_->Authenticate(header);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kUnauthenticated) << header;
    EXPECT_EQ(r.status().message().find("key-"), absl::string_view::npos)
        << "the key must not be echoed: " << r.status();
  }
  EXPECT_EQ(auth_->Authenticate("").status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(auth_->Authenticate("Basic a2V5LWE=").status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(auth_->Authenticate("Bearer ").status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(auth_->Authenticate("key-a").status().code(), absl::StatusCode::kUnauthenticated);
}

TEST(AuthenticatorConfigTest, RejectsMalformedEntriesNamingThem) {
  google::protobuf::RepeatedPtrField<v1::ApiKey> keys;
  *keys.Add() = Key("ok", "00", "k");
  v1::ApiKey bad = Key("has space", "00", "k");
  *keys.Add() = bad;
  auto r = Authenticator::Create(keys);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("api_keys[1].tenant"), absl::string_view::npos);

  keys.Mutable(1)->set_tenant("fine");
  keys.Mutable(1)->set_sha256("abc");
  r = Authenticator::Create(keys);
  EXPECT_NE(r.status().message().find("api_keys[1].sha256"), absl::string_view::npos);

  keys.Mutable(1)->set_sha256(SaltedKeyHash("00", "k"));
  keys.Mutable(1)->set_salt("not-hex");
  r = Authenticator::Create(keys);
  EXPECT_NE(r.status().message().find("api_keys[1].salt"), absl::string_view::npos);
}

TEST(AuthenticatorConfigTest, UpperCaseHashAccepted) {
  google::protobuf::RepeatedPtrField<v1::ApiKey> keys;
  v1::ApiKey key = Key("t", "ab", "secret");
  std::string upper = key.sha256();
  for (char& c : upper) c = static_cast<char>(toupper(c));
  key.set_sha256(upper);
  *keys.Add() = key;
  auto auth = Authenticator::Create(keys);
  ASSERT_TRUE(auth.ok());
  EXPECT_TRUE((*auth)->Authenticate("Bearer secret").ok());
}

TEST(TenantRateLimiterTest, BurstThenRefill) {
  absl::Time now = absl::FromUnixSeconds(1000);
  TenantRateLimiter limiter(2.0, 3, [&now] { return now; });
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(limiter.Admit("a").ok()) << i;
  absl::Duration retry;
  absl::Status refused = limiter.Admit("a", &retry);
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NEAR(absl::ToDoubleSeconds(retry), 0.5, 1e-6);
  // Another tenant has its own bucket.
  EXPECT_TRUE(limiter.Admit("b").ok());
  now += absl::Milliseconds(500);
  EXPECT_TRUE(limiter.Admit("a").ok());
  EXPECT_FALSE(limiter.Admit("a").ok());
}

TEST(TenantRateLimiterTest, ZeroRateMeansNoLimit) {
  TenantRateLimiter limiter(0, 1);
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(limiter.Admit("a").ok());
}

}  // namespace
}  // namespace helpline::gateway
