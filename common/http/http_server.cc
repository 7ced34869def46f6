#include "common/http/http_server.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <list>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "boost/asio/ip/tcp.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"

namespace helpline::http {

std::string Request::Header(absl::string_view name) const {
  auto it = headers.find(absl::AsciiStrToLower(name));
  return it == headers.end() ? std::string() : it->second;
}

namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

constexpr size_t kHeaderLimit = 64 * 1024;
constexpr int kLingerMillis = 1000;

// A synchronous stream over a socket's fd whose reads give up after a timeout or when the
// server's wake pipe becomes readable (shutdown), and whose writes give up after a timeout.
// Satisfies Beast's SyncReadStream and SyncWriteStream. Never raises SIGPIPE.
class TimedStream {
 public:
  TimedStream(int fd, int wake_fd, int timeout_ms)
      : fd_(fd), wake_fd_(wake_fd), timeout_ms_(timeout_ms) {}

  // Reads stop being aborted by the wake pipe (used while a response is in flight).
  void set_abort_on_wake(bool abort) { abort_on_wake_ = abort; }
  // Reads fail with timed_out once this time has passed, however steadily bytes trickle in
  // (a client sending one byte per idle timeout must not hold a connection for ever).
  void set_read_deadline(std::chrono::steady_clock::time_point deadline) {
    read_deadline_ = deadline;
  }

  template <typename MutableBufferSequence>
  size_t read_some(const MutableBufferSequence& buffers, beast::error_code& ec) {
    iovec iov[16];
    const int n = FillIov(buffers, iov);
    if (n == 0) {
      ec = {};
      return 0;
    }
    for (;;) {
      pollfd fds[2] = {{fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
      const int nfds = abort_on_wake_ ? 2 : 1;
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                            read_deadline_ - std::chrono::steady_clock::now())
                            .count();
      if (left <= 0) {
        ec = net::error::timed_out;
        return 0;
      }
      const int ready = ::poll(fds, nfds, static_cast<int>(std::min<int64_t>(timeout_ms_, left)));
      if (ready < 0) {
        if (errno == EINTR) continue;
        ec = beast::error_code(errno, beast::system_category());
        return 0;
      }
      if (ready == 0) {
        ec = net::error::timed_out;
        return 0;
      }
      if (nfds == 2 && (fds[1].revents & POLLIN) != 0 && (fds[0].revents & POLLIN) == 0) {
        ec = net::error::operation_aborted;
        return 0;
      }
      msghdr msg{};
      msg.msg_iov = iov;
      msg.msg_iovlen = n;
      const ssize_t got = ::recvmsg(fd_, &msg, MSG_DONTWAIT);
      if (got > 0) {
        ec = {};
        return static_cast<size_t>(got);
      }
      if (got == 0) {
        ec = net::error::eof;
        return 0;
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
      ec = beast::error_code(errno, beast::system_category());
      return 0;
    }
  }

  template <typename MutableBufferSequence>
  size_t read_some(const MutableBufferSequence& buffers) {
    beast::error_code ec;
    size_t n = read_some(buffers, ec);
    if (ec) throw beast::system_error(ec);  // Beast's throwing overload; we never call it.
    return n;
  }

  template <typename ConstBufferSequence>
  size_t write_some(const ConstBufferSequence& buffers, beast::error_code& ec) {
    iovec iov[16];
    const int n = FillIov(buffers, iov);
    if (n == 0) {
      ec = {};
      return 0;
    }
    for (;;) {
      pollfd pfd{fd_, POLLOUT, 0};
      const int ready = ::poll(&pfd, 1, timeout_ms_);
      if (ready < 0) {
        if (errno == EINTR) continue;
        ec = beast::error_code(errno, beast::system_category());
        return 0;
      }
      if (ready == 0) {
        ec = net::error::timed_out;
        return 0;
      }
      msghdr msg{};
      msg.msg_iov = iov;
      msg.msg_iovlen = n;
      const ssize_t sent = ::sendmsg(fd_, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (sent >= 0) {
        ec = {};
        return static_cast<size_t>(sent);
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
      ec = beast::error_code(errno, beast::system_category());
      return 0;
    }
  }

  template <typename ConstBufferSequence>
  size_t write_some(const ConstBufferSequence& buffers) {
    beast::error_code ec;
    size_t n = write_some(buffers, ec);
    if (ec) throw beast::system_error(ec);
    return n;
  }

  // Writes all of `data`; false on error or timeout.
  bool WriteAll(absl::string_view data) {
    beast::error_code ec;
    net::write(*this, net::const_buffer(data.data(), data.size()), ec);
    return !ec;
  }

  // True once the peer has closed (or reset) its side. Non-blocking.
  bool PeerGone() const {
    pollfd pfd{fd_, POLLRDHUP, 0};
    if (::poll(&pfd, 1, 0) <= 0) return false;
    return (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
  }

 private:
  template <typename Buffers>
  static int FillIov(const Buffers& buffers, iovec* iov) {
    int n = 0;
    for (auto it = net::buffer_sequence_begin(buffers);
         it != net::buffer_sequence_end(buffers) && n < 16; ++it) {
      auto b = *it;
      if (b.size() == 0) continue;
      iov[n].iov_base = const_cast<void*>(static_cast<const void*>(b.data()));
      iov[n].iov_len = b.size();
      ++n;
    }
    return n;
  }

  int fd_;
  int wake_fd_;
  int timeout_ms_;
  bool abort_on_wake_ = true;
  std::chrono::steady_clock::time_point read_deadline_ = std::chrono::steady_clock::time_point::max();
};

// Half-closes and reads what the peer still sends (up to kLingerMillis), so that closing
// with unread input does not reset the connection before the peer reads our response.
void LingeringClose(int fd) {
  ::shutdown(fd, SHUT_WR);
  const auto deadline = Clock::now() + std::chrono::milliseconds(kLingerMillis);
  char sink[4096];
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return;
    pollfd pfd{fd, POLLIN, 0};
    const int ready = ::poll(&pfd, 1, static_cast<int>(left));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return;
    const ssize_t got = ::recv(fd, sink, sizeof(sink), MSG_DONTWAIT);
    if (got == 0) return;
    if (got < 0 && errno != EAGAIN && errno != EINTR) return;
  }
}

std::string StatusReason(int status) {
  const auto reason = bhttp::obsolete_reason(static_cast<bhttp::status>(status));
  return std::string(reason.data(), reason.size());
}

// A complete minimal response with Connection: close.
std::string SimpleResponse(int status, absl::string_view body) {
  return absl::StrCat("HTTP/1.1 ", status, " ", StatusReason(status),
                      "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ",
                      body.size(), "\r\nConnection: close\r\n\r\n", body);
}

class ServerImpl;

struct Connection {
  explicit Connection(tcp::socket s) : socket(std::move(s)) {}
  tcp::socket socket;
  std::thread thread;
  bool finished = false;  // Guarded by ServerImpl::mu_.
  bool closed = false;    // Socket closed; guarded by ServerImpl::mu_.
};

class Writer : public ResponseWriter {
 public:
  // `stopping` turns keep-alive off for responses that start after shutdown began.
  Writer(TimedStream& stream, unsigned version, bool keep_alive,
         const std::atomic<bool>& stopping)
      : stream_(stream), version_(version), keep_alive_(keep_alive), stopping_(stopping) {}

  void Send(int status, absl::string_view content_type, std::string body,
            const Headers& extra_headers) override {
    if (state_ != State::kNone) return;
    state_ = State::kDone;
    if (stopping_.load()) keep_alive_ = false;
    bhttp::response<bhttp::string_body> res;
    res.version(version_);
    res.result(static_cast<unsigned>(status));
    res.set(bhttp::field::content_type,
            beast::string_view(content_type.data(), content_type.size()));
    for (const auto& [name, value] : extra_headers) res.set(name, value);
    res.keep_alive(keep_alive_);
    res.body() = std::move(body);
    res.prepare_payload();
    beast::error_code ec;
    bhttp::write(stream_, res, ec);
    if (ec) failed_ = true;
  }

  bool BeginStream(int status, absl::string_view content_type,
                   const Headers& extra_headers) override {
    if (state_ != State::kNone) return false;
    state_ = State::kStreaming;
    if (stopping_.load()) keep_alive_ = false;
    bhttp::response<bhttp::empty_body> res;
    res.version(11);
    res.result(static_cast<unsigned>(status));
    res.set(bhttp::field::content_type,
            beast::string_view(content_type.data(), content_type.size()));
    res.set(bhttp::field::cache_control, "no-cache");
    for (const auto& [name, value] : extra_headers) res.set(name, value);
    res.keep_alive(keep_alive_);
    res.chunked(true);
    bhttp::response_serializer<bhttp::empty_body> serializer(res);
    beast::error_code ec;
    bhttp::write_header(stream_, serializer, ec);
    if (ec) failed_ = true;
    return !failed_;
  }

  bool WriteChunk(absl::string_view data) override {
    if (state_ != State::kStreaming || failed_) return false;
    if (stream_.PeerGone()) {
      failed_ = true;
      return false;
    }
    if (data.empty()) return true;  // An empty chunk would end the stream.
    if (!stream_.WriteAll(absl::StrCat(absl::Hex(data.size()), "\r\n", data, "\r\n"))) {
      failed_ = true;
    }
    return !failed_;
  }

  void EndStream() override {
    if (state_ != State::kStreaming) return;
    state_ = State::kDone;
    if (!failed_ && !stream_.WriteAll("0\r\n\r\n")) failed_ = true;
  }

  // After the handler: answers 500 if it sent nothing, ends an unfinished stream.
  void Finish() {
    if (state_ == State::kNone) {
      Send(500, "text/plain; charset=utf-8", "internal error: no response\n", {});
    } else if (state_ == State::kStreaming) {
      EndStream();
    }
  }

  bool reusable() const { return keep_alive_ && !failed_; }

 private:
  enum class State { kNone, kStreaming, kDone };
  TimedStream& stream_;
  unsigned version_;
  bool keep_alive_;
  const std::atomic<bool>& stopping_;
  State state_ = State::kNone;
  bool failed_ = false;
};

class ServerImpl : public Server {
 public:
  ServerImpl(const ServerOptions& options, Handler handler)
      : options_(options), handler_(std::move(handler)), acceptor_(ioc_) {}

  ~ServerImpl() override {
    Shutdown(0);
    if (wake_[0] >= 0) ::close(wake_[0]);
    if (wake_[1] >= 0) ::close(wake_[1]);
  }

  absl::Status Init() {
    if (::pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0) {
      return absl::InternalError(absl::StrCat("pipe: ", strerror(errno)));
    }
    beast::error_code ec;
    tcp::resolver resolver(ioc_);
    auto results = resolver.resolve(options_.host, std::to_string(options_.port),
                                    tcp::resolver::numeric_service, ec);
    if (ec || results.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("http host '", options_.host, "': ", ec.message()));
    }
    const tcp::endpoint endpoint = results.begin()->endpoint();
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
    if (!ec) acceptor_.non_blocking(true, ec);
    if (ec) {
      return absl::UnavailableError(absl::StrCat("http listen on ", options_.host, ":",
                                                 options_.port, ": ", ec.message()));
    }
    port_ = acceptor_.local_endpoint(ec).port();
    accept_thread_ = std::thread([this] { AcceptLoop(); });
    return absl::OkStatus();
  }

  uint16_t port() const override { return port_; }

  void Shutdown(double grace_seconds) override {
    // A concurrent or repeated call waits for the first one and then returns.
    std::lock_guard shutdown_lock(shutdown_mu_);
    if (shut_down_) return;
    stopping_.store(true);
    if (wake_[1] >= 0) {
      const char byte = 1;
      [[maybe_unused]] ssize_t n = ::write(wake_[1], &byte, 1);  // Stays readable.
    }
    if (accept_thread_.joinable()) accept_thread_.join();
    beast::error_code ec;
    acceptor_.close(ec);

    std::unique_lock lock(mu_);
    // Idle connections wake up and close; busy ones finish their response and close.
    const auto deadline =
        Clock::now() + std::chrono::duration_cast<Clock::duration>(
                           std::chrono::duration<double>(std::max(0.0, grace_seconds)));
    cv_.wait_until(lock, deadline, [this] { return live_ == 0; });
    // Whatever is still running loses its socket: reads end, writes fail.
    for (auto& c : connections_) {
      if (!c->closed) ::shutdown(c->socket.native_handle(), SHUT_RDWR);
    }
    std::list<std::unique_ptr<Connection>> all = std::move(connections_);
    connections_.clear();
    lock.unlock();
    for (auto& c : all) {
      if (c->thread.joinable()) c->thread.join();
    }
    shut_down_ = true;
  }

 private:
  void AcceptLoop() {
    for (;;) {
      pollfd fds[2] = {{acceptor_.native_handle(), POLLIN, 0}, {wake_[0], POLLIN, 0}};
      const int ready = ::poll(fds, 2, -1);
      if (ready < 0) {
        if (errno == EINTR) continue;
        return;
      }
      if (stopping_.load() || (fds[1].revents & POLLIN) != 0) return;
      beast::error_code ec;
      tcp::socket socket(ioc_);
      acceptor_.accept(socket, ec);
      if (ec == net::error::no_descriptors) {
        // Out of file descriptors: the listener stays readable, so back off instead of
        // spinning; connections that end free descriptors meanwhile.
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        continue;
      }
      if (ec) continue;  // would_block or a connection that vanished.
      ReapFinished();
      std::unique_lock lock(mu_);
      if (live_ >= options_.max_connections) {
        lock.unlock();
        RejectBusy(socket);
        continue;
      }
      auto conn = std::make_unique<Connection>(std::move(socket));
      Connection* raw = conn.get();
      try {
        raw->thread = std::thread([this, raw] { Serve(*raw); });
      } catch (const std::system_error&) {
        // No thread to be had (limits, memory): answer 503 rather than abort the process.
        lock.unlock();
        RejectBusy(raw->socket);
        continue;
      }
      ++live_;
      connections_.push_back(std::move(conn));
    }
  }

  // Over max_connections: read the request head briefly (so that closing does not reset
  // the peer before it reads the answer), answer 503 and close.
  void RejectBusy(tcp::socket& socket) {
    const int fd = socket.native_handle();
    std::string head;
    const auto deadline = Clock::now() + std::chrono::milliseconds(200);
    char buf[4096];
    while (head.find("\r\n\r\n") == std::string::npos && head.size() < kHeaderLimit) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) break;
      pollfd pfd{fd, POLLIN, 0};
      if (::poll(&pfd, 1, static_cast<int>(left)) <= 0) break;
      const ssize_t got = ::recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
      if (got <= 0) break;
      head.append(buf, static_cast<size_t>(got));
    }
    const std::string res = SimpleResponse(503, "too many connections\n");
    [[maybe_unused]] ssize_t n = ::send(fd, res.data(), res.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    ::shutdown(fd, SHUT_WR);
    // Drain briefly without blocking the accept loop for long.
    pollfd pfd{fd, POLLIN, 0};
    if (::poll(&pfd, 1, 50) > 0) {
      [[maybe_unused]] ssize_t r = ::recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    }
    beast::error_code ec;
    socket.close(ec);
  }

  void ReapFinished() {
    std::list<std::unique_ptr<Connection>> done;
    {
      std::lock_guard lock(mu_);
      for (auto it = connections_.begin(); it != connections_.end();) {
        if ((*it)->finished) {
          done.push_back(std::move(*it));
          it = connections_.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (auto& c : done) {
      if (c->thread.joinable()) c->thread.join();
    }
  }

  void Serve(Connection& conn) {
    const int fd = conn.socket.native_handle();
    beast::error_code ec;
    std::string remote;
    const auto ep = conn.socket.remote_endpoint(ec);
    if (!ec) remote = absl::StrCat(ep.address().to_string(), ":", ep.port());
    const int timeout_ms = std::max(1, options_.idle_timeout_seconds) * 1000;
    TimedStream stream(fd, wake_[0], timeout_ms);
    const bool linger = ServeRequests(stream, remote);
    {
      std::lock_guard lock(mu_);
      if (!linger) ::shutdown(fd, SHUT_RDWR);
    }
    if (linger) LingeringClose(fd);
    std::lock_guard lock(mu_);
    conn.socket.close(ec);
    conn.closed = true;
    conn.finished = true;
    --live_;
    cv_.notify_all();
  }

  // Serves requests on one connection until it should close. Returns true when the close
  // should linger (we answered and the peer may still be sending).
  bool ServeRequests(TimedStream& stream, const std::string& remote) {
    beast::flat_buffer buffer;
    for (;;) {
      stream.set_abort_on_wake(true);
      bhttp::request_parser<bhttp::string_body> parser;
      parser.header_limit(kHeaderLimit);
      parser.body_limit(options_.max_body_bytes);
      beast::error_code ec;
      // The next request may take the idle timeout to start, then must arrive whole in time.
      const auto now = std::chrono::steady_clock::now();
      stream.set_read_deadline(now + std::chrono::seconds(options_.idle_timeout_seconds) +
                               std::chrono::seconds(options_.header_read_seconds));
      bhttp::read_header(stream, buffer, parser, ec);
      if (!ec) {
        const auto& head = parser.get();
        if (beast::iequals(head[bhttp::field::expect], "100-continue")) {
          stream.WriteAll("HTTP/1.1 100 Continue\r\n\r\n");
        }
        stream.set_read_deadline(std::chrono::steady_clock::now() +
                                 std::chrono::seconds(options_.body_read_seconds));
        bhttp::read(stream, buffer, parser, ec);
      }
      if (ec == bhttp::error::body_limit) {
        stream.WriteAll(SimpleResponse(413, "request body too large\n"));
        return true;
      }
      if (ec == bhttp::error::header_limit) {
        stream.WriteAll(SimpleResponse(431, "request header fields too large\n"));
        return true;
      }
      if (ec) {
        // A malformed request gets 400; a closed, reset, idle or shut down connection
        // just closes.
        if (ec.category() == bhttp::make_error_code(bhttp::error::bad_method).category() &&
            ec != bhttp::error::end_of_stream && ec != bhttp::error::partial_message) {
          stream.WriteAll(SimpleResponse(400, absl::StrCat("bad request: ", ec.message(), "\n")));
          return true;
        }
        return false;
      }

      stream.set_abort_on_wake(false);  // In flight: finish it even when shutting down.
      auto message = parser.release();
      Request request;
      request.method = std::string(message.method_string());
      request.target = std::string(message.target());
      const size_t q = request.target.find('?');
      request.path = request.target.substr(0, q);
      if (q != std::string::npos) request.query = request.target.substr(q + 1);
      for (const auto& field : message) {
        std::string name = absl::AsciiStrToLower(
            absl::string_view(field.name_string().data(), field.name_string().size()));
        std::string value(field.value());
        auto [it, inserted] = request.headers.emplace(std::move(name), value);
        if (!inserted) it->second += ", " + value;
      }
      request.body = std::move(message.body());
      request.remote = remote;

      const bool keep_alive = message.keep_alive() && !stopping_.load();
      Writer writer(stream, message.version(), keep_alive, stopping_);
      try {
        handler_(request, writer);
      } catch (const std::exception&) {
        // Handlers should not throw; answer 500 if nothing was sent yet.
      } catch (...) {
      }
      writer.Finish();
      if (!writer.reusable() || stopping_.load()) return true;
    }
  }

  ServerOptions options_;
  Handler handler_;
  net::io_context ioc_;
  tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  int wake_[2] = {-1, -1};
  std::atomic<bool> stopping_{false};
  std::thread accept_thread_;

  std::mutex shutdown_mu_;
  bool shut_down_ = false;  // Guarded by shutdown_mu_.

  std::mutex mu_;
  std::condition_variable cv_;
  size_t live_ = 0;
  std::list<std::unique_ptr<Connection>> connections_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Server>> Server::Start(const ServerOptions& options,
                                                      Handler handler) {
  if (!handler) return absl::InvalidArgumentError("http server: handler is empty");
  auto server = std::make_unique<ServerImpl>(options, std::move(handler));
  absl::Status status = server->Init();
  if (!status.ok()) return status;
  return std::unique_ptr<Server>(std::move(server));
}

}  // namespace helpline::http
