// The baseline of helpline-bench: what the gateway does minus the work. In this process:
// four trivial echo servers (PreprocessService shape: the text comes back as
// normalized_text) and a front ChatService that answers each Converse with one Redis GET,
// the four echo hops in sequence (async gRPC callback stubs), one Redis SET, and the reply.
// The same load generator then drives the front, so the two figures compare like for like.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace helpline::bench {

class Baseline {
 public:
  // Starts the five servers on free loopback ports. `redis_url` is "redis://[:pw@]host:port".
  // `redis_threads` run the blocking Redis round trips. UNAVAILABLE when Redis cannot be
  // reached or a server cannot start.
  static absl::StatusOr<std::unique_ptr<Baseline>> Start(const std::string& redis_url,
                                                         int redis_threads);
  virtual ~Baseline() = default;
  // "127.0.0.1:<port>" of the front ChatService (no API key needed).
  virtual std::string target() const = 0;
};

}  // namespace helpline::bench
