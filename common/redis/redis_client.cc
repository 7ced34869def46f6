#include "common/redis/redis_client.h"

#include <hiredis/hiredis.h>
#include <poll.h>
#include <sys/time.h>

#include <cerrno>
#include <chrono>
#include <utility>

#include "absl/algorithm/container.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/metrics/metrics.h"

namespace helpline::redis {
namespace {

metrics::Family<metrics::Histogram>& CommandSeconds() {
  static auto& family = metrics::Registry::Default().AddHistogram(
      "helpline_redis_command_seconds", "Latency of Redis commands, by command name.",
      {"command"});
  return family;
}

metrics::Family<metrics::Counter>& Errors() {
  static auto& family = metrics::Registry::Default().AddCounter(
      "helpline_redis_errors_total",
      "Redis failures by kind: connect, timeout, io, reply (error reply from Redis), "
      "pool_exhausted.",
      {"kind"});
  return family;
}

void CountError(absl::string_view kind) { Errors().Get({kind}).Increment(); }

timeval TimevalOf(absl::Duration d) {
  if (d < absl::ZeroDuration()) d = absl::ZeroDuration();
  timeval tv = absl::ToTimeval(d);
  return tv;
}

// Redis error codes after which the server cannot serve us right now (retry later, maybe on a
// new connection): UNAVAILABLE rather than INTERNAL.
bool IsTransientErrorCode(absl::string_view message) {
  for (absl::string_view code : {"LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN",
                                 "READONLY", "MOVED", "ASK"}) {
    if (absl::StartsWith(message, code) &&
        (message.size() == code.size() || message[code.size()] == ' ')) {
      return true;
    }
  }
  return false;
}

Reply CopyReply(const redisReply* r) {
  Reply out;
  switch (r->type) {
    case REDIS_REPLY_STRING:
      out.type = Reply::Type::kString;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = Reply::Type::kStatus;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = Reply::Type::kInteger;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = Reply::Type::kArray;
      out.elements.reserve(r->elements);
      for (size_t i = 0; i < r->elements; ++i) out.elements.push_back(CopyReply(r->element[i]));
      break;
    default:  // REDIS_REPLY_NIL (errors inside arrays do not occur in RESP2 replies we send).
      out.type = Reply::Type::kNil;
      break;
  }
  return out;
}

// Decodes %XX escapes; INVALID_ARGUMENT naming `field` on a malformed escape.
absl::StatusOr<std::string> PercentDecode(absl::string_view in, absl::string_view field) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out.push_back(in[i]);
      continue;
    }
    int value = 0;
    if (i + 2 >= in.size()) {
      return absl::InvalidArgumentError(absl::StrCat("redis url: ", field,
                                                     ": truncated percent escape"));
    }
    for (size_t k = 1; k <= 2; ++k) {
      char c = in[i + k];
      int digit = absl::ascii_isdigit(c) ? c - '0'
                  : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                  : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                           : -1;
      if (digit < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("redis url: ", field, ": invalid percent escape"));
      }
      value = value * 16 + digit;
    }
    out.push_back(static_cast<char>(value));
    i += 2;
  }
  return out;
}

}  // namespace

absl::StatusOr<RedisOptions> ParseRedisUrl(absl::string_view url) {
  constexpr absl::string_view kScheme = "redis://";
  if (absl::StartsWithIgnoreCase(url, "rediss://")) {
    return absl::InvalidArgumentError("redis url: TLS (rediss://) is not supported");
  }
  if (!absl::StartsWithIgnoreCase(url, kScheme)) {
    return absl::InvalidArgumentError(
        absl::StrCat("redis url: must start with \"redis://\", got \"", url.substr(0, 16), "\""));
  }
  absl::string_view rest = url.substr(kScheme.size());
  if (rest.find_first_of("?#") != absl::string_view::npos) {
    return absl::InvalidArgumentError("redis url: query parameters are not supported");
  }
  RedisOptions options;
  absl::string_view authority = rest;
  absl::string_view path;
  if (size_t slash = rest.find('/'); slash != absl::string_view::npos) {
    authority = rest.substr(0, slash);
    path = rest.substr(slash + 1);
  }
  if (size_t at = authority.rfind('@'); at != absl::string_view::npos) {
    absl::string_view userinfo = authority.substr(0, at);
    authority = authority.substr(at + 1);
    size_t colon = userinfo.find(':');
    if (colon == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          "redis url: credentials must be \":password@\" or \"user:password@\"");
    }
    auto user = PercentDecode(userinfo.substr(0, colon), "user");
    if (!user.ok()) return user.status();
    auto password = PercentDecode(userinfo.substr(colon + 1), "password");
    if (!password.ok()) return password.status();
    if (password->empty()) return absl::InvalidArgumentError("redis url: password is empty");
    options.username = *std::move(user);
    options.password = *std::move(password);
  }
  absl::string_view host = authority;
  absl::string_view port;
  bool has_port = false;
  if (absl::StartsWith(authority, "[")) {
    size_t close = authority.find(']');
    if (close == absl::string_view::npos) {
      return absl::InvalidArgumentError("redis url: host: missing ']' after IPv6 address");
    }
    host = authority.substr(1, close - 1);
    absl::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') {
        return absl::InvalidArgumentError("redis url: host: unexpected text after ']'");
      }
      port = after.substr(1);
      has_port = true;
    }
  } else if (size_t colon = authority.rfind(':'); colon != absl::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
    has_port = true;
  }
  if (host.empty()) return absl::InvalidArgumentError("redis url: host is empty");
  options.host = std::string(host);
  if (has_port) {
    int value = 0;
    if (port.empty() || !absl::c_all_of(port, absl::ascii_isdigit) ||
        !absl::SimpleAtoi(port, &value) || value < 1 || value > 65535) {
      return absl::InvalidArgumentError(
          absl::StrCat("redis url: port must be 1..65535, got \"", port, "\""));
    }
    options.port = value;
  }
  if (!path.empty()) {
    int db = 0;
    if (!absl::c_all_of(path, absl::ascii_isdigit) || !absl::SimpleAtoi(path, &db) || db < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("redis url: database must be a non-negative integer, got \"", path, "\""));
    }
    options.db = db;
  }
  return options;
}

// ---------------------------------------------------------------------------------------------
// Connection

absl::StatusOr<std::unique_ptr<Connection>> Connection::Connect(const RedisOptions& options) {
  std::string endpoint = absl::StrCat(options.host, ":", options.port);
  redisContext* context = redisConnectWithTimeout(options.host.c_str(), options.port,
                                                  TimevalOf(options.connect_timeout));
  if (context == nullptr) {
    CountError("connect");
    return absl::UnavailableError(
        absl::StrCat("redis at ", endpoint, " unreachable: cannot allocate a connection"));
  }
  if (context->err != 0) {
    std::string reason = context->errstr;
    redisFree(context);
    CountError("connect");
    return absl::UnavailableError(
        absl::StrCat("redis at ", endpoint, " unreachable: ", reason));
  }
  if (redisSetTimeout(context, TimevalOf(options.command_timeout)) != REDIS_OK) {
    redisFree(context);
    CountError("connect");
    return absl::UnavailableError(
        absl::StrCat("redis at ", endpoint, ": cannot set the command timeout"));
  }
  std::unique_ptr<Connection> connection(
      new Connection(context, endpoint, options.command_timeout));
  if (!options.password.empty()) {
    std::vector<std::string> auth = {"AUTH"};
    if (!options.username.empty()) auth.push_back(options.username);
    auth.push_back(options.password);
    absl::StatusOr<Reply> reply = connection->Command(auth);
    if (!reply.ok()) {
      CountError("connect");
      // Redis's message ("WRONGPASS ...") never contains the password.
      return absl::UnavailableError(absl::StrCat("redis at ", endpoint,
                                                 ": AUTH failed: ", reply.status().message()));
    }
  }
  if (options.db != 0) {
    absl::StatusOr<Reply> reply = connection->Command({"SELECT", absl::StrCat(options.db)});
    if (!reply.ok()) {
      CountError("connect");
      return absl::UnavailableError(absl::StrCat("redis at ", endpoint, ": SELECT ", options.db,
                                                 " failed: ", reply.status().message()));
    }
  }
  return connection;
}

Connection::~Connection() {
  if (context_ != nullptr) redisFree(context_);
}

bool Connection::PeerClosed() const {
  if (broken_ || context_ == nullptr || context_->err != 0) return true;
  pollfd pfd{};
  pfd.fd = context_->fd;
  pfd.events = POLLIN;
  int n = poll(&pfd, 1, 0);
  if (n < 0) return errno != EINTR;
  // Readable while no command is outstanding means EOF, a reset, or bytes we did not ask for.
  return n > 0 && (pfd.revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

absl::StatusOr<Reply> Connection::Command(const std::vector<std::string>& args) {
  if (args.empty()) return absl::InvalidArgumentError("redis command: no arguments");
  std::string name = absl::AsciiStrToUpper(args[0]);
  if (broken_) {
    return absl::UnavailableError(
        absl::StrCat("redis at ", endpoint_, ": ", name, ": connection is broken"));
  }
  std::vector<const char*> argv;
  std::vector<size_t> argvlen;
  argv.reserve(args.size());
  argvlen.reserve(args.size());
  for (const std::string& arg : args) {
    argv.push_back(arg.data());
    argvlen.push_back(arg.size());
  }
  absl::Time start = absl::Now();
  errno = 0;
  auto* reply = static_cast<redisReply*>(
      redisCommandArgv(context_, static_cast<int>(args.size()), argv.data(), argvlen.data()));
  int saved_errno = errno;
  CommandSeconds().Get({name}).Observe(absl::ToDoubleSeconds(absl::Now() - start));
  if (reply == nullptr) {
    broken_ = true;
    // hiredis reports an expired SO_RCVTIMEO as an I/O error with errno EAGAIN.
    bool timeout = context_->err == REDIS_ERR_IO && (saved_errno == EAGAIN ||
                                                     saved_errno == EWOULDBLOCK ||
                                                     saved_errno == ETIMEDOUT);
    if (timeout) {
      CountError("timeout");
      return absl::UnavailableError(absl::StrCat("redis at ", endpoint_, ": ", name,
                                                 ": no answer within ",
                                                 absl::FormatDuration(command_timeout_)));
    }
    CountError("io");
    return absl::UnavailableError(
        absl::StrCat("redis at ", endpoint_, ": ", name, ": connection error: ",
                     context_->errstr[0] != '\0' ? context_->errstr : "unknown I/O error"));
  }
  std::unique_ptr<redisReply, void (*)(void*)> owned(reply, freeReplyObject);
  if (reply->type == REDIS_REPLY_ERROR) {
    absl::string_view message(reply->str, reply->len);
    if (absl::StartsWith(message, kAbortedReplyPrefix)) {
      // A script's deliberate refusal (e.g. lease lost): an outcome, not a Redis failure.
      return absl::AbortedError(message.substr(sizeof(kAbortedReplyPrefix) - 1));
    }
    if (absl::StartsWith(message, "NOSCRIPT")) return absl::NotFoundError(message);
    CountError("reply");
    if (IsTransientErrorCode(message)) {
      // After a failover or during loading another connection (or later) may succeed.
      broken_ = true;
      return absl::UnavailableError(
          absl::StrCat("redis at ", endpoint_, ": ", name, ": ", message));
    }
    return absl::InternalError(absl::StrCat("redis at ", endpoint_, ": ", name, ": ", message));
  }
  return CopyReply(reply);
}

// ---------------------------------------------------------------------------------------------
// Pool

Pool::Pool(RedisOptions options) : options_(std::move(options)) {}

Pool::~Pool() = default;

absl::StatusOr<std::unique_ptr<Connection>> Pool::Take() {
  const size_t capacity = options_.pool_size == 0 ? 1 : options_.pool_size;
  std::unique_ptr<Connection> connection;
  {
    std::unique_lock lock(mu_);
    auto has_slot = [&] { return !idle_.empty() || outstanding_ < capacity; };
    if (!has_slot()) {
      auto wait = std::chrono::microseconds(absl::ToInt64Microseconds(options_.command_timeout));
      if (!cv_.wait_for(lock, wait, has_slot)) {
        CountError("pool_exhausted");
        return absl::UnavailableError(absl::StrCat(
            "redis pool: all ", capacity, " connections busy for ",
            absl::FormatDuration(options_.command_timeout)));
      }
    }
    ++outstanding_;
    // Connections the server closed while idle (restart, idle timeout) are dropped here, so
    // that a restarted Redis costs no failed command.
    while (!idle_.empty()) {
      std::unique_ptr<Connection> candidate = std::move(idle_.back());
      idle_.pop_back();
      if (!candidate->PeerClosed()) {
        connection = std::move(candidate);
        break;
      }
    }
  }
  if (connection != nullptr) return connection;
  absl::StatusOr<std::unique_ptr<Connection>> fresh = Connection::Connect(options_);
  if (!fresh.ok()) Give(nullptr);
  return fresh;
}

void Pool::Give(std::unique_ptr<Connection> connection) {
  {
    std::lock_guard lock(mu_);
    --outstanding_;
    if (connection != nullptr && !connection->broken()) idle_.push_back(std::move(connection));
  }
  cv_.notify_one();
}

absl::StatusOr<Reply> Pool::Command(const std::vector<std::string>& args) {
  absl::StatusOr<std::unique_ptr<Connection>> connection = Take();
  if (!connection.ok()) return connection.status();
  absl::StatusOr<Reply> reply = (*connection)->Command(args);
  Give(*std::move(connection));
  return reply;
}

}  // namespace helpline::redis
