#include "services/gateway/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/metrics/metrics.h"

namespace helpline::gateway {
namespace {

metrics::Family<metrics::Counter>& AuthRejections() {
  static auto& family = metrics::Registry::Default().AddCounter(
      "helpline_auth_rejections_total", "Requests rejected for a missing or unknown API key.",
      {"reason"});
  return family;
}

metrics::Family<metrics::Counter>& RateLimited() {
  static auto& family = metrics::Registry::Default().AddCounter(
      "helpline_rate_limited_total", "Turns refused by the per-tenant rate limit.", {"tenant"});
  return family;
}

std::string Sha256(absl::string_view salt, absl::string_view key) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  EVP_DigestUpdate(ctx, salt.data(), salt.size());
  EVP_DigestUpdate(ctx, key.data(), key.size());
  EVP_DigestFinal_ex(ctx, digest, &length);
  EVP_MD_CTX_free(ctx);
  return std::string(reinterpret_cast<const char*>(digest), length);
}

bool IsHex(absl::string_view text) {
  return !text.empty() &&
         std::all_of(text.begin(), text.end(), [](char c) { return absl::ascii_isxdigit(c); });
}

}  // namespace

std::string SaltedKeyHash(absl::string_view salt, absl::string_view key) {
  return absl::BytesToHexString(Sha256(salt, key));
}

absl::Status ValidateTenant(absl::string_view tenant) {
  if (tenant.empty() || tenant.size() > 64) {
    return absl::InvalidArgumentError("must be 1 to 64 characters");
  }
  for (char c : tenant) {
    if (!absl::ascii_isalnum(c) && c != '.' && c != '_' && c != '-') {
      return absl::InvalidArgumentError("may only hold [A-Za-z0-9._-]");
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Authenticator>> Authenticator::Create(
    const google::protobuf::RepeatedPtrField<v1::ApiKey>& keys) {
  std::vector<Entry> entries;
  for (int i = 0; i < keys.size(); ++i) {
    const v1::ApiKey& key = keys[i];
    const std::string where = absl::StrCat("api_keys[", i, "]");
    if (absl::Status s = ValidateTenant(key.tenant()); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ".tenant: ", s.message()));
    }
    if (!IsHex(key.salt())) {
      return absl::InvalidArgumentError(absl::StrCat(where, ".salt: must be hex"));
    }
    if (key.sha256().size() != 64 || !IsHex(key.sha256())) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ".sha256: must be 64 hex characters (a SHA-256)"));
    }
    Entry entry;
    entry.tenant = key.tenant();
    entry.name = key.name().empty() ? where : key.name();
    entry.salt = key.salt();
    entry.digest = absl::HexStringToBytes(absl::AsciiStrToLower(key.sha256()));
    entries.push_back(std::move(entry));
  }
  return std::unique_ptr<Authenticator>(new Authenticator(std::move(entries)));
}

absl::StatusOr<Principal> Authenticator::Authenticate(absl::string_view authorization) const {
  absl::string_view value = absl::StripAsciiWhitespace(authorization);
  if (value.empty()) {
    AuthRejections().Get({"missing"}).Increment();
    return absl::UnauthenticatedError(
        "missing API key: send 'Authorization: Bearer <key>' (gRPC: 'authorization' metadata)");
  }
  if (value.size() < 7 || !absl::EqualsIgnoreCase(value.substr(0, 7), "bearer ")) {
    AuthRejections().Get({"malformed"}).Increment();
    return absl::UnauthenticatedError("authorization must be 'Bearer <key>'");
  }
  absl::string_view key = absl::StripAsciiWhitespace(value.substr(7));
  if (key.empty()) {
    AuthRejections().Get({"malformed"}).Increment();
    return absl::UnauthenticatedError("authorization must be 'Bearer <key>'");
  }
  // Every entry is hashed and compared, whatever matched, so that the time taken does not
  // tell which entry (if any) was close.
  const Entry* match = nullptr;
  for (const Entry& entry : keys_) {
    std::string digest = Sha256(entry.salt, key);
    if (digest.size() == entry.digest.size() &&
        CRYPTO_memcmp(digest.data(), entry.digest.data(), digest.size()) == 0 &&
        match == nullptr) {
      match = &entry;
    }
  }
  if (match == nullptr) {
    AuthRejections().Get({"unknown_key"}).Increment();
    return absl::UnauthenticatedError("invalid API key");
  }
  return Principal{match->tenant, match->name};
}

TenantRateLimiter::TenantRateLimiter(double rate, double burst, Clock clock)
    : rate_(rate), burst_(std::max(1.0, burst)), clock_(std::move(clock)) {
  if (!clock_) clock_ = [] { return absl::Now(); };
}

absl::Status TenantRateLimiter::Admit(const std::string& tenant, absl::Duration* retry_after) {
  if (rate_ <= 0) return absl::OkStatus();
  const absl::Time now = clock_();
  double wait_seconds = 0;
  {
    std::lock_guard lock(mu_);
    auto [it, inserted] = buckets_.try_emplace(tenant);
    Bucket& bucket = it->second;
    if (inserted) {
      bucket.tokens = burst_;
    } else {
      const double elapsed = std::max(0.0, absl::ToDoubleSeconds(now - bucket.last));
      bucket.tokens = std::min(burst_, bucket.tokens + elapsed * rate_);
    }
    bucket.last = now;
    if (bucket.tokens >= 1.0) {
      bucket.tokens -= 1.0;
      return absl::OkStatus();
    }
    wait_seconds = (1.0 - bucket.tokens) / rate_;
  }
  RateLimited().Get({tenant}).Increment();
  const absl::Duration wait = absl::Seconds(wait_seconds);
  if (retry_after != nullptr) *retry_after = wait;
  return absl::ResourceExhaustedError(absl::StrCat(
      "rate limit of ", rate_, " turns per second exceeded for this tenant; retry after ",
      std::max<int64_t>(1, static_cast<int64_t>(std::ceil(wait_seconds * 1000))), " ms"));
}

}  // namespace helpline::gateway
