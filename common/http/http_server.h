// A small HTTP/1.1 server (Boost.Beast, one thread per connection, keep-alive) for the
// gateway's OpenAI-compatible API and every service's /metrics endpoint.
//
// Handlers run on the connection's thread and may block. Streaming responses (SSE) use
// chunked transfer encoding.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace helpline::http {

// Header names are lower-case.
using Headers = std::map<std::string, std::string>;

struct Request {
  std::string method;   // "GET", "POST", ...
  std::string target;   // Path and query as sent: "/v1/models?x=1".
  std::string path;     // "/v1/models".
  std::string query;    // "x=1".
  Headers headers;      // Lower-case names.
  std::string body;
  std::string remote;   // "ip:port" of the peer.

  // Header value or "" (name in lower case).
  std::string Header(absl::string_view name) const;
};

// How a handler answers. Exactly one of Send() or BeginStream()..EndStream() per request.
class ResponseWriter {
 public:
  virtual ~ResponseWriter() = default;
  // Sends a complete response with Content-Length.
  virtual void Send(int status, absl::string_view content_type, std::string body,
                    const Headers& extra_headers = {}) = 0;
  // Starts a chunked response (e.g. "text/event-stream"). False if the client is gone.
  virtual bool BeginStream(int status, absl::string_view content_type,
                           const Headers& extra_headers = {}) = 0;
  // Writes and flushes one chunk. False once the client has gone away.
  virtual bool WriteChunk(absl::string_view data) = 0;
  // Ends the chunked response.
  virtual void EndStream() = 0;
};

using Handler = std::function<void(const Request&, ResponseWriter&)>;

struct ServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;                         // 0 picks a free port.
  size_t max_connections = 256;              // Beyond it new connections get 503 and close.
  size_t max_body_bytes = 48u << 20;         // Larger bodies get 413.
  int idle_timeout_seconds = 60;             // Keep-alive connections idle longer are closed.
  int header_read_seconds = 30;              // A request's header must arrive within this.
  int body_read_seconds = 120;               // And its body within this (48 MiB at 400 KB/s).
};

class Server {
 public:
  // Binds and starts accepting on a background thread. UNAVAILABLE if the port is taken.
  static absl::StatusOr<std::unique_ptr<Server>> Start(const ServerOptions& options,
                                                       Handler handler);
  virtual ~Server() = default;
  // The bound port.
  virtual uint16_t port() const = 0;
  // Stops accepting; waits up to `grace_seconds` for in-flight requests, then closes all
  // connections. Idempotent; the destructor calls it with grace 0.
  virtual void Shutdown(double grace_seconds) = 0;
};

}  // namespace helpline::http
