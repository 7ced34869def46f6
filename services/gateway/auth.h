// API keys and per-tenant rate limits of the gateway.
//
// Keys live in the config as salted SHA-256 hashes (see gateway_config.proto ApiKey): the
// hash of the salt's hex text followed by the key. A presented key is hashed with every
// configured salt and compared in constant time; the key itself is never stored or logged.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "helpline/gateway/v1/gateway_config.pb.h"

namespace helpline::gateway {

// Who is calling: the tenant of the key and the key's name (for logs; never the key).
struct Principal {
  std::string tenant;
  std::string key_name;
};

// Hex SHA-256 of `salt` followed by `key` (what `printf '%s%s' "$salt" "$key" | sha256sum`
// prints). Exposed for tests and tools.
std::string SaltedKeyHash(absl::string_view salt, absl::string_view key);

// OK when `tenant` is 1 to 64 characters of [A-Za-z0-9._-]; else INVALID_ARGUMENT.
absl::Status ValidateTenant(absl::string_view tenant);

// Checks API keys. Immutable after Create(); thread-safe.
class Authenticator {
 public:
  // INVALID_ARGUMENT naming the entry (e.g. "api_keys[1].sha256: ...") when a key entry is
  // malformed: bad tenant, salt not hex, sha256 not 64 hex characters.
  static absl::StatusOr<std::unique_ptr<Authenticator>> Create(
      const google::protobuf::RepeatedPtrField<v1::ApiKey>& keys);

  // Checks an `Authorization` header / metadata value ("Bearer <key>"). UNAUTHENTICATED when
  // it is missing, malformed or names no configured key. Never blocks.
  absl::StatusOr<Principal> Authenticate(absl::string_view authorization) const;

  size_t key_count() const { return keys_.size(); }

 private:
  struct Entry {
    std::string tenant;
    std::string name;
    std::string salt;
    std::string digest;  // 32 raw bytes.
  };
  explicit Authenticator(std::vector<Entry> keys) : keys_(std::move(keys)) {}
  std::vector<Entry> keys_;
};

// A token bucket per tenant: `rate` turns per second, bursts of up to `burst`. Thread-safe.
class TenantRateLimiter {
 public:
  using Clock = std::function<absl::Time()>;
  // rate <= 0 disables the limit. `clock` defaults to absl::Now.
  TenantRateLimiter(double rate, double burst, Clock clock = nullptr);

  // Takes one token of `tenant`'s bucket. RESOURCE_EXHAUSTED when the bucket is empty; then
  // `*retry_after` (if not null) is the time until a token is available.
  absl::Status Admit(const std::string& tenant, absl::Duration* retry_after = nullptr);

  bool enabled() const { return rate_ > 0; }

 private:
  struct Bucket {
    double tokens = 0;
    absl::Time last;
  };
  const double rate_;
  const double burst_;
  Clock clock_;
  std::mutex mu_;
  std::map<std::string, Bucket> buckets_;
};

}  // namespace helpline::gateway
