#include "common/http/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace helpline::http {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// A raw TCP client: what goes on the wire is exactly what the test wrote.
class Client {
 public:
  explicit Client(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  ~Client() { Close(); }
  bool connected() const { return connected_; }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  bool Send(const std::string& data) {
    size_t off = 0;
    while (off < data.size()) {
      ssize_t n = ::send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }

  // Reads until `needle` is in what was received (kept in buffer()), EOF or 10 s.
  bool ReadUntil(const std::string& needle) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (buffer_.find(needle) == std::string::npos) {
      if (!ReadSome(deadline)) return false;
    }
    return true;
  }

  // Reads one whole response with Content-Length; returns it and removes it from buffer().
  std::string ReadResponse() {
    if (!ReadUntil("\r\n\r\n")) return buffer_;
    const size_t head_end = buffer_.find("\r\n\r\n") + 4;
    size_t length = 0;
    const size_t cl = Lower(buffer_.substr(0, head_end)).find("content-length: ");
    if (cl != std::string::npos) length = std::stoul(buffer_.substr(cl + 16));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (buffer_.size() < head_end + length) {
      if (!ReadSome(deadline)) break;
    }
    std::string response = buffer_.substr(0, head_end + length);
    buffer_.erase(0, response.size());
    return response;
  }

  // True when the server closed the connection (EOF) within `seconds`.
  bool ClosedWithin(double seconds) {
    const auto deadline = std::chrono::steady_clock::now() +
                          std::chrono::milliseconds(static_cast<int>(seconds * 1000));
    while (ReadSome(deadline)) {
    }
    return eof_;
  }

  const std::string& buffer() const { return buffer_; }

 private:
  static std::string Lower(std::string s) {
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  }

  bool ReadSome(std::chrono::steady_clock::time_point deadline) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now())
                          .count();
    if (left <= 0) return false;
    pollfd pfd{fd_, POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(left)) <= 0) return false;
    char buf[4096];
    ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
    if (n <= 0) {
      eof_ = true;
      return false;
    }
    buffer_.append(buf, static_cast<size_t>(n));
    return true;
  }

  int fd_ = -1;
  bool connected_ = false;
  bool eof_ = false;
  std::string buffer_;
};

std::string Body(const std::string& response) {
  const size_t pos = response.find("\r\n\r\n");
  return pos == std::string::npos ? "" : response.substr(pos + 4);
}

void Echo(const Request& req, ResponseWriter& w) {
  w.Send(200, "text/plain", absl::StrCat(req.method, " ", req.path, " q=", req.query,
                                         " foo=", req.Header("X-Foo"), " body=", req.body,
                                         " remote=", req.remote),
         {{"x-served-by", "test"}});
}

std::unique_ptr<Server> StartOrDie(ServerOptions options, Handler handler) {
  auto server = Server::Start(options, std::move(handler));
  EXPECT_TRUE(server.ok()) << server.status();
  if (!server.ok()) std::abort();
  EXPECT_GT((*server)->port(), 0);
  return std::move(*server);
}

TEST(HttpServerTest, GetAndPost) {
  auto server = StartOrDie({}, Echo);
  {
    Client c(server->port());
    ASSERT_TRUE(c.connected());
    c.Send("GET /v1/models?x=1 HTTP/1.1\r\nHost: t\r\nX-Foo: bar\r\nConnection: close\r\n\r\n");
    const std::string res = c.ReadResponse();
    EXPECT_THAT(res, StartsWith("HTTP/1.1 200 OK\r\n"));
    EXPECT_THAT(res, HasSubstr("x-served-by: test\r\n"));
    EXPECT_THAT(Body(res), StartsWith("GET /v1/models q=x=1 foo=bar body= remote=127.0.0.1:"));
    EXPECT_TRUE(c.ClosedWithin(5));  // Connection: close honoured.
  }
  {
    Client c(server->port());
    c.Send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello world");
    const std::string res = c.ReadResponse();
    EXPECT_THAT(res, StartsWith("HTTP/1.1 200 OK\r\n"));
    EXPECT_THAT(Body(res), StartsWith("POST /echo q= foo= body=hello world "));
  }
}

TEST(HttpServerTest, KeepAliveServesTwoRequestsOnOneConnection) {
  auto server = StartOrDie({}, Echo);
  Client c(server->port());
  c.Send("GET /one HTTP/1.1\r\nHost: t\r\n\r\n");
  const std::string first = c.ReadResponse();
  c.Send("POST /two HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc");
  const std::string second = c.ReadResponse();
  EXPECT_THAT(Body(first), StartsWith("GET /one "));
  EXPECT_THAT(Body(second), StartsWith("POST /two q= foo= body=abc "));
  // Same connection: the same remote port.
  const std::string remote1 = Body(first).substr(Body(first).find("remote="));
  const std::string remote2 = Body(second).substr(Body(second).find("remote="));
  EXPECT_EQ(remote1, remote2);
}

TEST(HttpServerTest, ChunkedRequestBodyIsDecoded) {
  auto server = StartOrDie({}, Echo);
  Client c(server->port());
  c.Send("POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
         "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
  EXPECT_THAT(Body(c.ReadResponse()), StartsWith("POST /c q= foo= body=abcde "));
}

TEST(HttpServerTest, TooLargeBodyGets413) {
  ServerOptions options;
  options.max_body_bytes = 10;
  std::atomic<int> calls{0};
  auto server = StartOrDie(options, [&](const Request& r, ResponseWriter& w) {
    ++calls;
    Echo(r, w);
  });
  Client c(server->port());
  c.Send("POST /big HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n" + std::string(100, 'x'));
  EXPECT_THAT(c.ReadResponse(), StartsWith("HTTP/1.1 413 "));
  EXPECT_TRUE(c.ClosedWithin(5));
  // A body within the limit is fine.
  Client ok(server->port());
  ok.Send("POST /small HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n0123456789");
  EXPECT_THAT(ok.ReadResponse(), StartsWith("HTTP/1.1 200 "));
  EXPECT_EQ(calls.load(), 1);
}

TEST(HttpServerTest, ExpectContinueBeyondLimitGets413WithoutBody) {
  ServerOptions options;
  options.max_body_bytes = 10;
  auto server = StartOrDie(options, Echo);
  Client c(server->port());
  c.Send("POST /big HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\nExpect: 100-continue\r\n\r\n");
  EXPECT_THAT(c.ReadResponse(), StartsWith("HTTP/1.1 413 "));
}

TEST(HttpServerTest, MalformedRequestGets400) {
  auto server = StartOrDie({}, Echo);
  Client c(server->port());
  c.Send("THIS IS NOT HTTP\r\n\r\n");
  EXPECT_THAT(c.ReadResponse(), StartsWith("HTTP/1.1 400 "));
  EXPECT_TRUE(c.ClosedWithin(5));
}

TEST(HttpServerTest, OverMaxConnectionsGets503) {
  ServerOptions options;
  options.max_connections = 1;
  auto server = StartOrDie(options, Echo);
  Client first(server->port());
  first.Send("GET /a HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_THAT(first.ReadResponse(), StartsWith("HTTP/1.1 200 "));  // Accepted and kept open.
  Client second(server->port());
  second.Send("GET /b HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_THAT(second.ReadResponse(), StartsWith("HTTP/1.1 503 "));
  // The first connection still works.
  first.Send("GET /c HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_THAT(first.ReadResponse(), StartsWith("HTTP/1.1 200 "));
}

TEST(HttpServerTest, HandlerThatSendsNothingGives500) {
  auto server = StartOrDie({}, [](const Request&, ResponseWriter&) {});
  Client c(server->port());
  c.Send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_THAT(c.ReadResponse(), StartsWith("HTTP/1.1 500 "));
}

TEST(HttpServerTest, StreamingChunksArriveInOrderAsWritten) {
  absl::Notification first_seen;
  auto server = StartOrDie({}, [&](const Request&, ResponseWriter& w) {
    ASSERT_TRUE(w.BeginStream(200, "text/event-stream"));
    EXPECT_TRUE(w.WriteChunk("data: one\n\n"));
    // The client must receive chunk one before chunk two is even written.
    first_seen.WaitForNotificationWithTimeout(absl::Seconds(10));
    EXPECT_TRUE(w.WriteChunk("data: two\n\n"));
    w.EndStream();
  });
  Client c(server->port());
  c.Send("GET /stream HTTP/1.1\r\nHost: t\r\n\r\n");
  ASSERT_TRUE(c.ReadUntil("data: one\n\n"));
  EXPECT_THAT(c.buffer(), HasSubstr("Transfer-Encoding: chunked\r\n"));
  EXPECT_THAT(c.buffer(), HasSubstr("Content-Type: text/event-stream\r\n"));
  EXPECT_EQ(c.buffer().find("data: two"), std::string::npos);
  first_seen.Notify();
  ASSERT_TRUE(c.ReadUntil("0\r\n\r\n"));
  const std::string body = Body(c.buffer());
  EXPECT_EQ(body, "b\r\ndata: one\n\n\r\nb\r\ndata: two\n\n\r\n0\r\n\r\n");
}

TEST(HttpServerTest, WriteChunkReturnsFalseOncePeerClosed) {
  absl::Notification started;
  absl::Notification done;
  std::atomic<bool> last_write{true};
  auto server = StartOrDie({}, [&](const Request&, ResponseWriter& w) {
    w.BeginStream(200, "text/event-stream");
    w.WriteChunk("data: hello\n\n");
    started.Notify();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    bool ok = true;
    while (ok && std::chrono::steady_clock::now() < deadline) {
      ok = w.WriteChunk("data: more\n\n");
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    last_write = ok;
    done.Notify();
    w.EndStream();
  });
  {
    Client c(server->port());
    c.Send("GET /stream HTTP/1.1\r\nHost: t\r\n\r\n");
    ASSERT_TRUE(c.ReadUntil("data: hello"));
    started.WaitForNotification();
  }  // Client closes.
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(20)));
  EXPECT_FALSE(last_write.load());
}

TEST(HttpServerTest, ShutdownFinishesInFlightRequestAndStopsAccepting) {
  absl::Notification entered;
  absl::Notification release;
  auto server = StartOrDie({}, [&](const Request&, ResponseWriter& w) {
    entered.Notify();
    release.WaitForNotificationWithTimeout(absl::Seconds(10));
    w.Send(200, "text/plain", "finished");
  });
  const uint16_t port = server->port();
  Client idle(port);  // An idle keep-alive connection must not hold up shutdown.
  Client busy(port);
  busy.Send("GET /slow HTTP/1.1\r\nHost: t\r\n\r\n");
  entered.WaitForNotification();

  std::thread stopper([&] { server->Shutdown(10); });
  // Wait until the listener is gone, then let the handler finish.
  bool refused = false;
  for (int i = 0; i < 1000 && !refused; ++i) {
    Client probe(port);
    refused = !probe.connected();
    if (!refused) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_TRUE(refused);
  release.Notify();
  const std::string res = busy.ReadResponse();
  EXPECT_THAT(res, StartsWith("HTTP/1.1 200 "));
  EXPECT_EQ(Body(res), "finished");
  EXPECT_THAT(res, HasSubstr("Connection: close"));  // No keep-alive while shutting down.
  stopper.join();
  EXPECT_TRUE(idle.ClosedWithin(1));
  server->Shutdown(0);  // Idempotent.
}

TEST(HttpServerTest, ShutdownGraceExpiryCutsStreams) {
  absl::Notification streaming;
  std::atomic<bool> write_failed{false};
  auto server = StartOrDie({}, [&](const Request&, ResponseWriter& w) {
    w.BeginStream(200, "text/event-stream");
    streaming.Notify();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < deadline) {
      if (!w.WriteChunk("data: x\n\n")) {
        write_failed = true;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  Client c(server->port());
  c.Send("GET /forever HTTP/1.1\r\nHost: t\r\n\r\n");
  streaming.WaitForNotification();
  const auto start = std::chrono::steady_clock::now();
  server->Shutdown(0.2);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_TRUE(write_failed.load());
}

TEST(HttpServerTest, IdleConnectionIsClosedAfterTimeout) {
  ServerOptions options;
  options.idle_timeout_seconds = 1;
  auto server = StartOrDie(options, Echo);
  Client c(server->port());
  EXPECT_TRUE(c.ClosedWithin(5));
}

TEST(HttpServerTest, TricklingHeaderIsCutAtTheHeaderDeadline) {
  ServerOptions options;
  options.idle_timeout_seconds = 1;
  options.header_read_seconds = 1;
  auto server = StartOrDie(options, Echo);
  Client c(server->port());
  ASSERT_TRUE(c.Send("GET / HTTP/1.1\r\n"));
  // One header byte every 300 ms never trips the 1 s idle timeout; the 2 s request deadline
  // (idle + header) closes the connection all the same.
  const auto start = std::chrono::steady_clock::now();
  bool closed = false;
  for (int i = 0; i < 30 && !closed; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    closed = !c.Send("X") || c.ClosedWithin(0.01);
  }
  EXPECT_TRUE(closed);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(6));
}

TEST(HttpServerTest, PortInUseIsUnavailable) {
  auto server = StartOrDie({}, Echo);
  ServerOptions options;
  options.port = server->port();
  auto second = Server::Start(options, Echo);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable) << second.status();
}

}  // namespace
}  // namespace helpline::http
