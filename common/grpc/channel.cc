#include "common/grpc/channel.h"

#include <algorithm>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace helpline::rpc {
namespace {

bool IsUnset(const google::protobuf::Duration& d) { return d.seconds() == 0 && d.nanos() == 0; }

absl::Duration ToAbsl(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

// "host:port" and "[v6]:port" get "dns:///"; URIs (dns:, ipv4:, ipv6:, unix:, ...) are kept.
std::string ResolvableTarget(const std::string& target) {
  if (absl::StrContains(target, "://")) return target;
  for (absl::string_view scheme : {"dns:", "ipv4:", "ipv6:", "unix:", "unix-abstract:", "vsock:"}) {
    if (absl::StartsWith(target, scheme)) return target;
  }
  return absl::StrCat("dns:///", target);
}

}  // namespace

void ApplyUpstreamDefaults(common::v1::UpstreamConfig& config, absl::string_view default_target) {
  if (config.target().empty()) config.set_target(std::string(default_target));
  if (!(config.deadline_fraction() > 0.0f) || config.deadline_fraction() > 1.0f) {
    config.set_deadline_fraction(1.0f);
  }
  if (IsUnset(config.timeout())) {
    config.mutable_timeout()->set_seconds(5);
    config.mutable_timeout()->set_nanos(0);
  }
  if (config.max_attempts() == 0) config.set_max_attempts(2);
}

std::shared_ptr<grpc::Channel> MakeChannel(const common::v1::UpstreamConfig& config,
                                           absl::string_view service_full_name,
                                           int max_message_bytes) {
  const nlohmann::json round_robin = {{"round_robin", nlohmann::json::object()}};
  nlohmann::json service_config = {{"loadBalancingConfig", nlohmann::json::array({round_robin})}};
  // gRPC caps maxAttempts at 5; a retry policy needs at least 2 attempts.
  const uint32_t attempts = std::min<uint32_t>(config.max_attempts(), 5);
  if (attempts >= 2 && !service_full_name.empty()) {
    nlohmann::json method_config = {
        {"name", nlohmann::json::array({{{"service", std::string(service_full_name)}}})},
        {"retryPolicy",
         {{"maxAttempts", attempts},
          {"initialBackoff", "0.02s"},
          {"maxBackoff", "0.2s"},
          {"backoffMultiplier", 2},
          {"retryableStatusCodes", nlohmann::json::array({"UNAVAILABLE"})}}}};
    service_config["methodConfig"] = nlohmann::json::array({method_config});
  }
  grpc::ChannelArguments args;
  args.SetServiceConfigJSON(service_config.dump());
  // gRPC's default reconnect backoff grows to 120 s: after a stage restarts, calls would
  // keep failing fast long after it is back. Stages are on the same network; retry often.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  if (max_message_bytes > 0) {
    args.SetMaxReceiveMessageSize(max_message_bytes);
    args.SetMaxSendMessageSize(max_message_bytes);
  }
  return grpc::CreateCustomChannel(ResolvableTarget(config.target()),
                                   grpc::InsecureChannelCredentials(), args);
}

void PrepareClientContext(grpc::ClientContext& context,
                          const common::v1::UpstreamConfig& config, absl::Time turn_deadline,
                          absl::string_view request_id) {
  const absl::Time now = absl::Now();
  const absl::Duration timeout =
      IsUnset(config.timeout()) ? absl::Seconds(5) : ToAbsl(config.timeout());
  double fraction = config.deadline_fraction();
  if (!(fraction > 0.0) || fraction > 1.0) fraction = 1.0;
  const absl::Duration remaining = turn_deadline - now;
  absl::Duration budget = std::min(timeout, remaining * fraction);
  if (budget < absl::ZeroDuration()) budget = absl::ZeroDuration();
  const absl::Time deadline = std::min(now + budget, turn_deadline);
  context.set_deadline(absl::ToChronoTime(deadline));
  if (!request_id.empty()) context.AddMetadata("x-request-id", std::string(request_id));
}

}  // namespace helpline::rpc
