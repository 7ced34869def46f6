#include "common/redis/session_store.h"

#include <openssl/evp.h>

#include <algorithm>
#include <random>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/log/log.h"

namespace helpline::session {
namespace {

using redis::Reply;

// All scripts take KEYS = {state, turns, lease, fence} (one hash slot, thanks to the tag).

// ARGV: lease_ttl_ms, max_turns (0 = all), idle_ttl_ms.
// Busy: {0}. Acquired: {token (decimal string), record bytes or nil, {turn bytes...}}.
// A new fence starts at the server's clock in microseconds, so that tokens keep increasing
// even after Erase deleted the fence while an old turn was still running.
constexpr char kAcquireScript[] = R"lua(
if redis.call('EXISTS', KEYS[3]) == 1 then
  return {0}
end
if redis.call('EXISTS', KEYS[4]) == 0 then
  local now = redis.call('TIME')
  redis.call('SET', KEYS[4], now[1] .. string.format('%06d', tonumber(now[2])))
end
redis.call('INCR', KEYS[4])
local token = redis.call('GET', KEYS[4])
redis.call('PEXPIRE', KEYS[4], ARGV[3])
redis.call('SET', KEYS[3], token, 'PX', ARGV[1])
local first = 0
local n = tonumber(ARGV[2])
if n > 0 then first = -n end
return {token, redis.call('HGET', KEYS[1], 'record'), redis.call('LRANGE', KEYS[2], first, -1)}
)lua";

// ARGV: token, expected_version, new_version, record bytes, turn bytes, max_turns (0 = no
// cap), idle_ttl_ms. Checks everything before the first write, so a refusal writes nothing.
constexpr char kCommitScript[] = R"lua(
if redis.call('GET', KEYS[3]) ~= ARGV[1] then
  return redis.error_reply('ABORTED lease lost')
end
local stored = redis.call('HGET', KEYS[1], 'version') or '0'
if stored ~= ARGV[2] then
  return redis.error_reply('ABORTED version moved: stored ' .. stored .. ', expected ' .. ARGV[2])
end
redis.call('HSET', KEYS[1], 'record', ARGV[4], 'version', ARGV[3])
redis.call('RPUSH', KEYS[2], ARGV[5])
local n = tonumber(ARGV[6])
if n > 0 then redis.call('LTRIM', KEYS[2], -n, -1) end
redis.call('PEXPIRE', KEYS[1], ARGV[7])
redis.call('PEXPIRE', KEYS[2], ARGV[7])
redis.call('PEXPIRE', KEYS[4], ARGV[7])
redis.call('DEL', KEYS[3])
return tonumber(ARGV[3])
)lua";

// ARGV: token, expected_version, record bytes, idle_ttl_ms. Like commit without a turn: the
// version is left as it is. Checks everything before the first write.
constexpr char kUpdateScript[] = R"lua(
if redis.call('GET', KEYS[3]) ~= ARGV[1] then
  return redis.error_reply('ABORTED lease lost')
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  return redis.error_reply('ABORTED the session does not exist')
end
local stored = redis.call('HGET', KEYS[1], 'version') or '0'
if stored ~= ARGV[2] then
  return redis.error_reply('ABORTED version moved: stored ' .. stored .. ', expected ' .. ARGV[2])
end
redis.call('HSET', KEYS[1], 'record', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('PEXPIRE', KEYS[4], ARGV[4])
redis.call('DEL', KEYS[3])
return 1
)lua";

// ARGV: token. 1 when the lease was ours and is gone, else 0.
constexpr char kReleaseScript[] = R"lua(
if redis.call('GET', KEYS[3]) == ARGV[1] then
  return redis.call('DEL', KEYS[3])
end
return 0
)lua";

// ARGV: max_turns (0 = all). {record bytes or nil, {turn bytes...}}, one consistent snapshot.
constexpr char kLoadScript[] = R"lua(
local first = 0
local n = tonumber(ARGV[1])
if n > 0 then first = -n end
return {redis.call('HGET', KEYS[1], 'record'), redis.call('LRANGE', KEYS[2], first, -1)}
)lua";

// {1 if the state existed else 0, number of keys deleted}.
constexpr char kEraseScript[] = R"lua(
local existed = redis.call('EXISTS', KEYS[1])
return {existed, redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])}
)lua";

struct Script {
  const char* name;
  std::string source;
  std::string sha1;  // Hex, what EVALSHA wants.
};

std::string Sha1Hex(absl::string_view text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(text.data(), text.size(), digest, &length, EVP_sha1(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < length; ++i) {
    hex.push_back(kHex[digest[i] >> 4]);
    hex.push_back(kHex[digest[i] & 0xf]);
  }
  return hex;
}

const Script& MakeScript(const char* name, const char* source) {
  // Leaked on purpose: scripts live as long as the process.
  return *new Script{name, source, Sha1Hex(source)};
}

const Script& AcquireScript() {
  static const Script& s = MakeScript("acquire", kAcquireScript);
  return s;
}
const Script& CommitScript() {
  static const Script& s = MakeScript("commit", kCommitScript);
  return s;
}
const Script& UpdateScript() {
  static const Script& s = MakeScript("update", kUpdateScript);
  return s;
}
const Script& ReleaseScript() {
  static const Script& s = MakeScript("release", kReleaseScript);
  return s;
}
const Script& LoadScript() {
  static const Script& s = MakeScript("load", kLoadScript);
  return s;
}
const Script& EraseScript() {
  static const Script& s = MakeScript("erase", kEraseScript);
  return s;
}

// EVALSHA, and EVAL when the server does not know the script yet (first use, restart,
// SCRIPT FLUSH); EVAL also caches it for the next EVALSHA.
absl::StatusOr<Reply> RunScript(redis::Pool& pool, const Script& script,
                                const std::vector<std::string>& keys,
                                const std::vector<std::string>& args) {
  std::vector<std::string> argv;
  argv.reserve(3 + keys.size() + args.size());
  argv.push_back("EVALSHA");
  argv.push_back(script.sha1);
  argv.push_back(absl::StrCat(keys.size()));
  argv.insert(argv.end(), keys.begin(), keys.end());
  argv.insert(argv.end(), args.begin(), args.end());
  absl::StatusOr<Reply> reply = pool.Command(argv);
  if (!reply.ok() && absl::IsNotFound(reply.status()) &&
      absl::StartsWith(reply.status().message(), "NOSCRIPT")) {
    argv[0] = "EVAL";
    argv[1] = script.source;
    reply = pool.Command(argv);
  }
  return reply;
}

absl::Status UnexpectedReply(const Script& script) {
  return absl::InternalError(
      absl::StrCat("session store: unexpected reply to the ", script.name, " script"));
}

std::string Millis(absl::Duration d) {
  return absl::StrCat(std::max<int64_t>(1, absl::ToInt64Milliseconds(d)));
}

google::protobuf::Timestamp ToProtoTime(absl::Time t) {
  google::protobuf::Timestamp out;
  int64_t nanos = absl::ToUnixNanos(t);
  out.set_seconds(nanos / 1000000000);
  out.set_nanos(static_cast<int32_t>(nanos % 1000000000));
  return out;
}

absl::Status ValidateChars(absl::string_view value, absl::string_view field,
                           absl::string_view allowed_punct, absl::string_view allowed_text) {
  if (value.empty() || value.size() > 128) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": must be 1 to 128 characters, got ",
                                                   value.size()));
  }
  for (size_t i = 0; i < value.size(); ++i) {
    char c = value[i];
    if (absl::ascii_isalnum(c) || allowed_punct.find(c) != absl::string_view::npos) continue;
    std::string shown = absl::ascii_isgraph(c)
                            ? absl::StrCat("'", absl::string_view(&c, 1), "'")
                            : absl::StrCat("byte 0x", absl::Hex(static_cast<unsigned char>(c),
                                                                absl::kZeroPad2));
    return absl::InvalidArgumentError(absl::StrCat(field, ": character ", shown, " at offset ", i,
                                                   " is not allowed; use ", allowed_text));
  }
  return absl::OkStatus();
}

absl::Status ValidateKey(const SessionKey& key) {
  absl::Status tenant = ValidateTenant(key.tenant);
  if (!tenant.ok()) return tenant;
  return ValidateSessionId(key.session_id);
}

// Fills `out` from a record (string or nil) and a list of turns.
absl::Status DecodeSession(const Reply& record, const Reply& turns, const Script& script,
                           LoadedSession& out) {
  if (turns.type != Reply::Type::kArray) return UnexpectedReply(script);
  if (record.type == Reply::Type::kString) {
    if (!out.record.ParseFromString(record.str)) {
      return absl::DataLossError("session store: the stored session record does not parse");
    }
    out.exists = true;
  } else if (record.is_nil()) {
    out.exists = false;
    out.record.Clear();
  } else {
    return UnexpectedReply(script);
  }
  out.turns.clear();
  out.turns.reserve(turns.elements.size());
  for (size_t i = 0; i < turns.elements.size(); ++i) {
    const Reply& bytes = turns.elements[i];
    common::v1::Turn turn;
    if (bytes.type != Reply::Type::kString || !turn.ParseFromString(bytes.str)) {
      return absl::DataLossError(
          absl::StrCat("session store: stored turn ", i, " of the session does not parse"));
    }
    out.turns.push_back(std::move(turn));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateSessionId(absl::string_view id, absl::string_view field) {
  return ValidateChars(id, field, "._:-", "[A-Za-z0-9._:-]");
}

absl::Status ValidateTenant(absl::string_view tenant) {
  return ValidateChars(tenant, "tenant", "._-", "[A-Za-z0-9._-]");
}

absl::Status ValidateStoreOptions(const RedisSessionStoreOptions& options) {
  if (options.key_prefix.empty()) {
    return absl::InvalidArgumentError("key_prefix: must not be empty");
  }
  if (options.key_prefix.find_first_of("{}") != std::string::npos) {
    return absl::InvalidArgumentError("key_prefix: must not contain '{' or '}'");
  }
  if (options.idle_ttl < absl::Milliseconds(1)) {
    return absl::InvalidArgumentError("idle_ttl: must be at least 1ms");
  }
  if (options.lease_ttl < absl::Milliseconds(1)) {
    return absl::InvalidArgumentError("lease_ttl: must be at least 1ms");
  }
  return absl::OkStatus();
}

RedisSessionStore::RedisSessionStore(redis::Pool& pool, RedisSessionStoreOptions options)
    : pool_(pool), options_(std::move(options)) {}

std::string RedisSessionStore::KeyFor(const SessionKey& key, absl::string_view suffix) const {
  return absl::StrCat(options_.key_prefix, ":{", key.tenant, ":", key.session_id, "}:", suffix);
}

absl::StatusOr<Acquired> RedisSessionStore::AcquireAndLoad(const SessionKey& key,
                                                           size_t max_turns, absl::Time deadline) {
  absl::Status valid = ValidateKey(key);
  if (!valid.ok()) return valid;
  const std::vector<std::string> keys = {KeyFor(key, "state"), KeyFor(key, "turns"),
                                         KeyFor(key, "lease"), KeyFor(key, "fence")};
  const std::vector<std::string> args = {Millis(options_.lease_ttl), absl::StrCat(max_turns),
                                         Millis(options_.idle_ttl)};
  thread_local std::minstd_rand random(std::random_device{}());
  absl::Duration backoff = absl::Milliseconds(2);
  while (true) {
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError("session is busy with another turn");
    }
    absl::StatusOr<Reply> reply = RunScript(pool_, AcquireScript(), keys, args);
    if (!reply.ok()) return reply.status();
    if (reply->type != Reply::Type::kArray || reply->elements.empty()) {
      return UnexpectedReply(AcquireScript());
    }
    const Reply& first = reply->elements[0];
    if (first.type == Reply::Type::kString) {
      if (reply->elements.size() != 3) return UnexpectedReply(AcquireScript());
      Acquired acquired;
      acquired.lease.key = key;
      if (!absl::SimpleAtoi(first.str, &acquired.lease.token)) {
        return UnexpectedReply(AcquireScript());
      }
      absl::Status decoded = DecodeSession(reply->elements[1], reply->elements[2],
                                           AcquireScript(), acquired.session);
      if (!decoded.ok()) {
        ReleaseLease(acquired.lease);
        return decoded;
      }
      return acquired;
    }
    if (first.type != Reply::Type::kInteger || first.integer != 0) {
      return UnexpectedReply(AcquireScript());
    }
    // Busy: another turn of this session runs. Full jitter in [backoff/2, backoff] keeps
    // waiters from retrying in lockstep; never sleep past the deadline.
    std::uniform_int_distribution<int64_t> jitter(absl::ToInt64Microseconds(backoff) / 2,
                                                  absl::ToInt64Microseconds(backoff));
    absl::Duration sleep =
        std::min(absl::Microseconds(jitter(random)), deadline - absl::Now());
    if (sleep > absl::ZeroDuration()) absl::SleepFor(sleep);
    backoff = std::min(backoff * 2, absl::Milliseconds(50));
  }
}

void RedisSessionStore::ReleaseLease(const Lease& lease) {
  if (!ValidateKey(lease.key).ok()) return;
  absl::StatusOr<Reply> reply = RunScript(
      pool_, ReleaseScript(),
      {KeyFor(lease.key, "state"), KeyFor(lease.key, "turns"), KeyFor(lease.key, "lease"),
       KeyFor(lease.key, "fence")},
      {absl::StrCat(lease.token)});
  if (!reply.ok()) {
    log::Warn("session lease not released; it expires after lease_ttl",
              {{"error", std::string(reply.status().ToString())}});
  } else if (reply->type == Reply::Type::kInteger && reply->integer == 0) {
    log::Debug("session lease was no longer ours", {{"token", lease.token}});
  }
}

absl::StatusOr<LoadedSession> RedisSessionStore::Load(const SessionKey& key, size_t max_turns) {
  absl::Status valid = ValidateKey(key);
  if (!valid.ok()) return valid;
  absl::StatusOr<Reply> reply =
      RunScript(pool_, LoadScript(),
                {KeyFor(key, "state"), KeyFor(key, "turns"), KeyFor(key, "lease"),
                 KeyFor(key, "fence")},
                {absl::StrCat(max_turns)});
  if (!reply.ok()) return reply.status();
  if (reply->type != Reply::Type::kArray || reply->elements.size() != 2) {
    return UnexpectedReply(LoadScript());
  }
  LoadedSession loaded;
  absl::Status decoded =
      DecodeSession(reply->elements[0], reply->elements[1], LoadScript(), loaded);
  if (!decoded.ok()) return decoded;
  return loaded;
}

absl::StatusOr<uint64_t> SessionStore::CommitAndRelease(const Lease& lease,
                                                        uint64_t expected_version,
                                                        const common::v1::DialogueState& state,
                                                        const common::v1::Turn& turn) {
  common::v1::SessionRecord record;
  *record.mutable_state() = state;
  return CommitAndRelease(lease, expected_version, record, turn);
}

absl::StatusOr<uint64_t> RedisSessionStore::CommitAndRelease(
    const Lease& lease, uint64_t expected_version, const common::v1::SessionRecord& given,
    const common::v1::Turn& turn) {
  absl::Status valid = ValidateKey(lease.key);
  if (!valid.ok()) return valid;
  const absl::Time now = absl::Now();
  const uint64_t new_version = expected_version + 1;
  common::v1::SessionRecord record = given;
  record.set_version(new_version);
  *record.mutable_update_time() = ToProtoTime(now);
  common::v1::Turn stored_turn = turn;
  if (stored_turn.index() == 0) stored_turn.set_index(static_cast<uint32_t>(expected_version));
  if (!stored_turn.has_create_time()) *stored_turn.mutable_create_time() = ToProtoTime(now);
  std::string record_bytes;
  std::string turn_bytes;
  if (!record.SerializeToString(&record_bytes) || !stored_turn.SerializeToString(&turn_bytes)) {
    return absl::InternalError("session store: cannot serialize the session record or turn");
  }
  absl::StatusOr<Reply> reply = RunScript(
      pool_, CommitScript(),
      {KeyFor(lease.key, "state"), KeyFor(lease.key, "turns"), KeyFor(lease.key, "lease"),
       KeyFor(lease.key, "fence")},
      {absl::StrCat(lease.token), absl::StrCat(expected_version), absl::StrCat(new_version),
       std::move(record_bytes), std::move(turn_bytes), absl::StrCat(options_.max_turns),
       Millis(options_.idle_ttl)});
  if (!reply.ok()) return reply.status();
  if (reply->type != Reply::Type::kInteger ||
      static_cast<uint64_t>(reply->integer) != new_version) {
    return UnexpectedReply(CommitScript());
  }
  return new_version;
}

absl::Status RedisSessionStore::UpdateAndRelease(const Lease& lease, uint64_t expected_version,
                                                 const common::v1::SessionRecord& given) {
  absl::Status valid = ValidateKey(lease.key);
  if (!valid.ok()) return valid;
  common::v1::SessionRecord record = given;
  record.set_version(expected_version);
  std::string record_bytes;
  if (!record.SerializeToString(&record_bytes)) {
    return absl::InternalError("session store: cannot serialize the session record");
  }
  absl::StatusOr<Reply> reply = RunScript(
      pool_, UpdateScript(),
      {KeyFor(lease.key, "state"), KeyFor(lease.key, "turns"), KeyFor(lease.key, "lease"),
       KeyFor(lease.key, "fence")},
      {absl::StrCat(lease.token), absl::StrCat(expected_version), std::move(record_bytes),
       Millis(options_.idle_ttl)});
  if (!reply.ok()) return reply.status();
  if (reply->type != Reply::Type::kInteger || reply->integer != 1) {
    return UnexpectedReply(UpdateScript());
  }
  return absl::OkStatus();
}

absl::StatusOr<int> RedisSessionStore::Erase(const SessionKey& key) {
  absl::Status valid = ValidateKey(key);
  if (!valid.ok()) return valid;
  absl::StatusOr<Reply> reply =
      RunScript(pool_, EraseScript(),
                {KeyFor(key, "state"), KeyFor(key, "turns"), KeyFor(key, "lease"),
                 KeyFor(key, "fence")},
                {});
  if (!reply.ok()) return reply.status();
  if (reply->type != Reply::Type::kArray || reply->elements.size() != 2 ||
      reply->elements[0].type != Reply::Type::kInteger ||
      reply->elements[1].type != Reply::Type::kInteger) {
    return UnexpectedReply(EraseScript());
  }
  if (reply->elements[0].integer == 0) {
    return absl::NotFoundError(absl::StrCat("session_id '", key.session_id, "' not found"));
  }
  return static_cast<int>(reply->elements[1].integer);
}

absl::Status RedisSessionStore::Ping() {
  absl::StatusOr<Reply> reply = pool_.Command({"PING"});
  return reply.ok() ? absl::OkStatus() : reply.status();
}

}  // namespace helpline::session
