// Client side of stage calls: channels with round_robin over DNS and a retry policy for
// idempotent calls (service config), and client contexts that carry the turn's deadline and
// the request id.
#pragma once

#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "helpline/common/v1/server_config.pb.h"

namespace helpline::rpc {

// Fills unset fields of an upstream config with defaults (timeout 5s, max_attempts 2,
// deadline_fraction 1). `default_target` is used when target is empty.
void ApplyUpstreamDefaults(common::v1::UpstreamConfig& config, absl::string_view default_target);

// A channel to `config.target` ("host:port" gets "dns:///" prepended) with round_robin load
// balancing and, for `service_full_name` (e.g. "helpline.dst.v1.DialogueStateService"), a
// retry policy of config.max_attempts attempts on UNAVAILABLE. Never blocks.
std::shared_ptr<grpc::Channel> MakeChannel(const common::v1::UpstreamConfig& config,
                                           absl::string_view service_full_name,
                                           int max_message_bytes);

// Sets the deadline of a stage call: now + min(config.timeout, fraction * (turn_deadline -
// now)), never past turn_deadline; and the x-request-id metadata.
void PrepareClientContext(grpc::ClientContext& context,
                          const common::v1::UpstreamConfig& config, absl::Time turn_deadline,
                          absl::string_view request_id);

}  // namespace helpline::rpc
