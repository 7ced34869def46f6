// The load generator of helpline-bench: N sessions x M turns of ChatService.Converse, with
// C sessions in flight at once (each session's turns run one after the other, like a real
// conversation), over the gRPC callback API. Used for the gateway and the baseline alike.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace helpline::bench {

struct LoadOptions {
  std::string target;          // "host:port" of a ChatService.
  std::string api_key;         // Sent as "authorization: Bearer <key>"; may be empty.
  int sessions = 64;           // N
  int turns = 5;               // M turns per session.
  int concurrency = 1;         // C sessions in flight.
  std::string text;            // The customer's text of every turn.
  std::string session_prefix;  // Session ids are "<prefix>-<i>".
  absl::Duration turn_timeout = absl::Seconds(30);
  int channels = 4;            // Separate HTTP/2 connections the load is spread over.
};

struct LoadResult {
  int concurrency = 0;
  int64_t turns = 0;        // Completed OK.
  int64_t errors = 0;       // Turns that failed.
  std::string first_error;  // "CODE: message" of the first failure.
  double seconds = 0;       // Wall time of the whole run.
  double turns_per_second = 0;
  double p50_ms = 0, p90_ms = 0, p99_ms = 0, max_ms = 0;
  // Median of each stage's `timings` entry over the OK turns, in milliseconds.
  std::map<std::string, double> stage_median_ms;
};

// Runs the load and blocks until every turn has finished. Failed turns are counted, not
// retried; a session goes on with its next turn after a failure.
LoadResult RunLoad(const LoadOptions& options);

// The q-quantile (0..1) of `values` (nearest rank); 0 when empty. Sorts `values`.
double Quantile(std::vector<double>& values, double q);

}  // namespace helpline::bench
