// RAII hiredis client: one connection with connect and command timeouts, and a pool that
// reconnects broken connections. Commands are argv-style and binary-safe.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

struct redisContext;

namespace helpline::redis {

struct RedisOptions {
  std::string host = "127.0.0.1";
  int port = 6379;
  std::string username;  // Redis 6 ACL user; empty: AUTH with the password only.
  std::string password;  // Empty: no AUTH.
  int db = 0;
  absl::Duration connect_timeout = absl::Seconds(1);
  absl::Duration command_timeout = absl::Seconds(1);
  size_t pool_size = 16;
};

// Parses "redis://[[user]:password@]host[:port][/db]" (IPv6 hosts in brackets; user and
// password percent-decoded). INVALID_ARGUMENT naming what is wrong.
absl::StatusOr<RedisOptions> ParseRedisUrl(absl::string_view url);

// A reply, copied out of hiredis.
struct Reply {
  enum class Type { kNil, kString, kInteger, kArray, kStatus };
  Type type = Type::kNil;
  std::string str;          // kString, kStatus.
  long long integer = 0;    // kInteger.
  std::vector<Reply> elements;  // kArray.

  bool is_nil() const { return type == Type::kNil; }
};

// Redis error replies that start with this prefix become ABORTED with the rest of the message
// (session_store.cc's scripts answer "ABORTED lease lost" this way).
inline constexpr char kAbortedReplyPrefix[] = "ABORTED ";

// One connection. Not thread-safe: use one per thread, or the pool.
class Connection {
 public:
  // UNAVAILABLE when the server cannot be reached within connect_timeout or AUTH/SELECT fail.
  static absl::StatusOr<std::unique_ptr<Connection>> Connect(const RedisOptions& options);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Runs one command; blocks up to command_timeout. A Redis error reply becomes INTERNAL
  // with Redis's message, except: kAbortedReplyPrefix -> ABORTED; "NOSCRIPT" -> NOT_FOUND
  // (message kept, for EVALSHA fallback); LOADING, BUSY, MASTERDOWN, TRYAGAIN, CLUSTERDOWN,
  // READONLY, MOVED, ASK -> UNAVAILABLE (and the connection is marked broken). I/O errors and
  // timeouts are UNAVAILABLE and mark the connection broken. Records
  // helpline_redis_command_seconds{command} and helpline_redis_errors_total{kind}.
  absl::StatusOr<Reply> Command(const std::vector<std::string>& args);
  bool broken() const { return broken_; }
  // True when the server has closed the idle connection (or sent something unasked): a
  // non-blocking poll of the socket, no round trip. The pool drops such connections.
  bool PeerClosed() const;

 private:
  Connection(redisContext* context, std::string endpoint, absl::Duration command_timeout)
      : context_(context), endpoint_(std::move(endpoint)), command_timeout_(command_timeout) {}
  redisContext* context_;
  std::string endpoint_;  // "host:port", for messages.
  absl::Duration command_timeout_;
  bool broken_ = false;
};

// A fixed-size pool. Thread-safe. Acquire blocks up to command_timeout for a free slot.
class Pool {
 public:
  explicit Pool(RedisOptions options);
  ~Pool();

  // Runs one command on a pooled connection, connecting or reconnecting as needed.
  // UNAVAILABLE when Redis is down or no connection frees up in time.
  absl::StatusOr<Reply> Command(const std::vector<std::string>& args);
  const RedisOptions& options() const { return options_; }

 private:
  absl::StatusOr<std::unique_ptr<Connection>> Take();
  void Give(std::unique_ptr<Connection> connection);

  const RedisOptions options_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Connection>> idle_;
  size_t outstanding_ = 0;  // Connections checked out or being created.
};

}  // namespace helpline::redis
