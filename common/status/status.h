// Status helpers: the one mapping from absl::Status to grpc::Status (and back), and
// macros that keep error propagation short.
#pragma once

#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "grpcpp/support/status.h"

namespace helpline {

// Maps our status to gRPC's. UNKNOWN never leaves a service: it becomes INTERNAL.
grpc::Status ToGrpcStatus(const absl::Status& status);

// Maps a gRPC status (e.g. from a downstream call) to ours, keeping code and message.
absl::Status FromGrpcStatus(const grpc::Status& status);

// The canonical name of a gRPC code ("INVALID_ARGUMENT"), e.g. for metric labels.
std::string GrpcCodeName(grpc::StatusCode code);

// The HTTP status the gateway answers for a status code (400, 401, 404, 429, 503, 504, ...).
int HttpStatusFor(absl::StatusCode code);

// Prints "<what>: <status>" as a JSON log line to stderr and returns exit_code, for main().
int ExitWithError(absl::string_view what, const absl::Status& status, int exit_code);

}  // namespace helpline

#define HELPLINE_STATUS_CONCAT_INNER_(a, b) a##b
#define HELPLINE_STATUS_CONCAT_(a, b) HELPLINE_STATUS_CONCAT_INNER_(a, b)

// Returns the status from the enclosing function when `expr` is not OK.
#define HELPLINE_RETURN_IF_ERROR(expr)              \
  do {                                              \
    ::absl::Status helpline_status_ = (expr);       \
    if (!helpline_status_.ok()) return helpline_status_; \
  } while (0)

// `lhs = value of expr` when expr (an absl::StatusOr) is OK, else returns its status.
#define HELPLINE_ASSIGN_OR_RETURN(lhs, expr) \
  HELPLINE_ASSIGN_OR_RETURN_IMPL_(HELPLINE_STATUS_CONCAT_(helpline_statusor_, __LINE__), lhs, expr)
#define HELPLINE_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                    \
  if (!tmp.ok()) return tmp.status();                   \
  lhs = std::move(tmp).value()
