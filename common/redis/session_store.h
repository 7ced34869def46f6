// The session store of DESIGN §3: one conversation's state and turns, scoped by tenant.
//
// Keys (hash-tagged so that a session lives in one Redis Cluster slot):
//   <prefix>:{<tenant>:<session>}:state   hash: `record` = SessionRecord bytes (state,
//                                         version, handoff), `version` = the version as a decimal
//                                         string (so the commit script need not parse protobuf)
//   <prefix>:{<tenant>:<session>}:turns   list of Turn bytes, oldest first, capped at max_turns
//   <prefix>:{<tenant>:<session>}:lease   fencing token of the turn holding the session (PX
//                                         lease_ttl)
//   <prefix>:{<tenant>:<session>}:fence   counter the fencing tokens come from
// state, turns and fence expire after idle_ttl without a commit. See common/redis/README.md.
//
// A turn acquires the lease and loads the session (one Lua script, waiting while another
// turn of the same session holds it), runs the stages, then commits and releases (one Lua
// script: lease token and version checked, state and turn written together, list trimmed,
// TTLs refreshed, lease deleted): two round trips per turn. Two turns of
// one session are therefore serialized: both commit, in order, neither is lost. A commit
// whose lease was lost (expired and taken by another turn) is refused: nothing is written.
// A change of the record alone (a handoff accepted or released) takes the same lease and is
// written by UpdateAndRelease, so it is serialized with the session's turns.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/redis/redis_client.h"
#include "helpline/common/v1/session.pb.h"
#include "helpline/common/v1/types.pb.h"

namespace helpline::session {

struct SessionKey {
  std::string tenant;
  std::string session_id;
};

// OK when `id` is 1 to 128 characters of [A-Za-z0-9._:-]; else INVALID_ARGUMENT naming
// `field` (e.g. "session_id").
absl::Status ValidateSessionId(absl::string_view id, absl::string_view field = "session_id");

// OK when `tenant` is 1 to 128 characters of [A-Za-z0-9._-]; else INVALID_ARGUMENT naming
// "tenant". (No ':' so that "<tenant>:<session>" is unambiguous; no braces in either, so the
// hash tag is always the whole "{<tenant>:<session>}".)
absl::Status ValidateTenant(absl::string_view tenant);

struct Lease {
  SessionKey key;
  uint64_t token = 0;  // Fencing token: strictly increasing per session.
};

struct LoadedSession {
  bool exists = false;
  common::v1::SessionRecord record;       // Empty with version 0 when !exists.
  std::vector<common::v1::Turn> turns;    // Oldest first.
};

struct Acquired {
  Lease lease;
  LoadedSession session;
};

class SessionStore {
 public:
  virtual ~SessionStore() = default;

  // Waits (polling with backoff) until no other turn holds the session, then holds it for
  // lease_ttl and loads the record and the last `max_turns` turns (0 = all stored), in one
  // round trip per attempt. DEADLINE_EXCEEDED if `deadline` passes first; UNAVAILABLE if
  // Redis is down.
  virtual absl::StatusOr<Acquired> AcquireAndLoad(const SessionKey& key, size_t max_turns,
                                                  absl::Time deadline) = 0;
  // Releases the lease if it is still ours. Never fails the turn: errors are logged.
  virtual void ReleaseLease(const Lease& lease) = 0;
  // Loads the record and the last `max_turns` turns (0 = all stored). UNAVAILABLE.
  virtual absl::StatusOr<LoadedSession> Load(const SessionKey& key, size_t max_turns) = 0;
  // Atomically writes `state` with version expected_version + 1, appends `turn`, trims the
  // list, refreshes the TTLs and releases the lease, provided the lease is still held and
  // the stored version equals expected_version. Returns the new version. ABORTED (nothing
  // written) when the lease was lost or the version moved; UNAVAILABLE when Redis is down or
  // did not answer in time (then nothing was written, or everything: the script is atomic).
  // The stored record is built here: `state`, version expected_version + 1, update_time now.
  // `turn` is stored as given, except: index 0 becomes expected_version (the turn's zero-based
  // position) and an unset create_time becomes now. After ABORTED the lease is NOT released
  // (if it is still ours): call ReleaseLease. Blocks for one round trip.
  // `record` supplies the state and the handoff (the stored record is replaced whole: a
  // handoff the record lacks is gone); its version and update_time are set here.
  virtual absl::StatusOr<uint64_t> CommitAndRelease(const Lease& lease, uint64_t expected_version,
                                                    const common::v1::SessionRecord& record,
                                                    const common::v1::Turn& turn) = 0;
  // The same with a record that holds only `state` (no handoff).
  absl::StatusOr<uint64_t> CommitAndRelease(const Lease& lease, uint64_t expected_version,
                                            const common::v1::DialogueState& state,
                                            const common::v1::Turn& turn);
  // Atomically replaces the stored record by `record` without appending a turn (a handoff
  // accepted or released), refreshes the TTLs and releases the lease, provided the lease is
  // still held, the session exists and its version equals expected_version. The version
  // stays expected_version (it counts turns); `record` is stored with that version and its
  // own update_time. ABORTED (nothing written; lease not released) when the lease was lost,
  // the session is gone or the version moved; UNAVAILABLE when Redis is down or late.
  // Blocks for one round trip.
  virtual absl::Status UpdateAndRelease(const Lease& lease, uint64_t expected_version,
                                        const common::v1::SessionRecord& record) = 0;
  // Deletes every key of the session. Returns the number of keys removed; NOT_FOUND when
  // the session had no state.
  virtual absl::StatusOr<int> Erase(const SessionKey& key) = 0;
  // OK when the store answers.
  virtual absl::Status Ping() = 0;
};

struct RedisSessionStoreOptions {
  std::string key_prefix = "helpline";  // No '{' or '}'.
  size_t max_turns = 50;                // Turns kept per session; 0 = no cap.
  absl::Duration idle_ttl = absl::Hours(24);
  absl::Duration lease_ttl = absl::Seconds(30);
};

// INVALID_ARGUMENT naming the field: empty or braced key_prefix, idle_ttl or lease_ttl below
// 1 ms. Call before constructing the store (the gateway's config validation).
absl::Status ValidateStoreOptions(const RedisSessionStoreOptions& options);

// The Redis implementation. Thread-safe; borrows the pool, which must outlive it.
class RedisSessionStore : public SessionStore {
 public:
  RedisSessionStore(redis::Pool& pool, RedisSessionStoreOptions options);

  absl::StatusOr<Acquired> AcquireAndLoad(const SessionKey& key, size_t max_turns,
                                          absl::Time deadline) override;
  void ReleaseLease(const Lease& lease) override;
  absl::StatusOr<LoadedSession> Load(const SessionKey& key, size_t max_turns) override;
  using SessionStore::CommitAndRelease;
  absl::StatusOr<uint64_t> CommitAndRelease(const Lease& lease, uint64_t expected_version,
                                            const common::v1::SessionRecord& record,
                                            const common::v1::Turn& turn) override;
  absl::Status UpdateAndRelease(const Lease& lease, uint64_t expected_version,
                                const common::v1::SessionRecord& record) override;
  absl::StatusOr<int> Erase(const SessionKey& key) override;
  absl::Status Ping() override;

  // "<prefix>:{<tenant>:<session>}:<suffix>"; exposed for tests.
  std::string KeyFor(const SessionKey& key, absl::string_view suffix) const;

 private:
  redis::Pool& pool_;
  const RedisSessionStoreOptions options_;
};

}  // namespace helpline::session
