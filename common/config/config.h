// Service configuration: a proto message per service, filled in this order, each step
// overriding the one before:
//   1. the defaults the service puts in the message before loading,
//   2. the YAML file given by --config FILE,
//   3. environment variables HELPLINE_<SERVICE>__<FIELD>__<SUBFIELD>=value
//      (e.g. HELPLINE_DST__SERVER__GRPC_PORT=6000),
//   4. flags --set field.subfield=value (repeatable).
// Values in steps 3 and 4 are YAML too, so lists work: --set store.redis_url=redis://h:1
// or --set 'limits.max_attachments=2'. Unknown keys are rejected with their path.
// google.protobuf.Duration fields take "250ms", "1.5s", "2m", "1h" or a number of seconds.
#pragma once

#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "google/protobuf/message.h"

namespace helpline::config {

// Merges YAML text into `message`. `origin` names the source in errors ("dst.yaml").
// INVALID_ARGUMENT naming the key path on an unknown key or a value of the wrong type.
absl::Status MergeYaml(absl::string_view yaml_text, absl::string_view origin,
                       google::protobuf::Message& message);

// Reads and merges a YAML file. NOT_FOUND if it cannot be read.
absl::Status MergeYamlFile(const std::string& path, google::protobuf::Message& message);

// Sets the field at a dotted path ("server.grpc_port") from a YAML value ("50061").
absl::Status SetField(absl::string_view path, absl::string_view yaml_value,
                      google::protobuf::Message& message);

// Applies HELPLINE_<SERVICE>__A__B=value variables from `env` (a NULL-terminated array
// like `environ`). `service` is the upper-case service name, e.g. "DST".
absl::Status ApplyEnvironment(absl::string_view service, char** env,
                              google::protobuf::Message& message);

// Parses the command line: --config FILE, --set PATH=VALUE, --help. Merges into `message`
// (which holds the defaults). On --help prints usage and returns CANCELLED.
// `service` is the lower-case name without prefix, e.g. "dst".
absl::Status LoadFromCommandLine(absl::string_view service, int argc, char** argv,
                                 google::protobuf::Message& message);

// A human-readable dump of the effective config (one line of JSON) for the startup log.
std::string ToJson(const google::protobuf::Message& message);

}  // namespace helpline::config
