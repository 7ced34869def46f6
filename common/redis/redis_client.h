// RAII hiredis client: one connection with connect and command timeouts, and a pool that
// reconnects broken connections. Commands are argv-style and binary-safe.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

struct redisContext;

namespace helpline::redis {

struct RedisOptions {
  std::string host = "127.0.0.1";
  int port = 6379;
  std::string password;  // Empty: no AUTH.
  int db = 0;
  absl::Duration connect_timeout = absl::Seconds(1);
  absl::Duration command_timeout = absl::Seconds(1);
  size_t pool_size = 16;
};

// Parses "redis://[:password@]host[:port][/db]". INVALID_ARGUMENT naming what is wrong.
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

// One connection. Not thread-safe: use one per thread, or the pool.
class Connection {
 public:
  // UNAVAILABLE when the server cannot be reached within connect_timeout or AUTH/SELECT fail.
  static absl::StatusOr<std::unique_ptr<Connection>> Connect(const RedisOptions& options);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Runs one command. A Redis error reply becomes INTERNAL with Redis's message, except
  // script errors that start with a known prefix (see session_store.cc). I/O errors and
  // timeouts are UNAVAILABLE and mark the connection broken.
  absl::StatusOr<Reply> Command(const std::vector<std::string>& args);
  bool broken() const { return broken_; }

 private:
  explicit Connection(redisContext* context) : context_(context) {}
  redisContext* context_;
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
