#include "common/config/config.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status/status.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/util/json_util.h"
#include "yaml-cpp/yaml.h"

namespace helpline::config {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

absl::Status Bad(absl::string_view path, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", what));
}

std::string Join(absl::string_view path, absl::string_view key) {
  return path.empty() ? std::string(key) : absl::StrCat(path, ".", key);
}

absl::StatusOr<google::protobuf::Duration> ParseDuration(absl::string_view path,
                                                         absl::string_view text) {
  double scale = 1.0;
  absl::string_view number = text;
  if (absl::EndsWith(text, "ms")) {
    scale = 1e-3;
    number.remove_suffix(2);
  } else if (absl::EndsWith(text, "us")) {
    scale = 1e-6;
    number.remove_suffix(2);
  } else if (absl::EndsWith(text, "s")) {
    number.remove_suffix(1);
  } else if (absl::EndsWith(text, "m")) {
    scale = 60;
    number.remove_suffix(1);
  } else if (absl::EndsWith(text, "h")) {
    scale = 3600;
    number.remove_suffix(1);
  }
  double value = 0;
  if (!absl::SimpleAtod(number, &value) || value < 0 || !std::isfinite(value)) {
    return Bad(path, absl::StrCat("'", text, "' is not a duration such as 250ms, 5s, 2m or 1h"));
  }
  const double seconds = value * scale;
  if (seconds > 315576000000.0) {  // google.protobuf.Duration's range: about 10,000 years.
    return Bad(path, absl::StrCat("'", text, "' is too long a duration"));
  }
  const int64_t total_nanos = std::llround(seconds * 1e9);
  google::protobuf::Duration d;
  d.set_seconds(total_nanos / 1000000000);
  d.set_nanos(static_cast<int32_t>(total_nanos % 1000000000));
  return d;
}

absl::Status MergeNode(const YAML::Node& node, const std::string& path, Message& message);

// Sets (or, when `repeated`, adds) one scalar or message value of `field` from `node`.
absl::Status SetValue(const YAML::Node& node, const std::string& path, Message& message,
                      const FieldDescriptor* field) {
  const Reflection* r = message.GetReflection();
  const bool rep = field->is_repeated();
  if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
    if (field->message_type()->full_name() == "google.protobuf.Duration") {
      if (!node.IsScalar()) return Bad(path, "expected a duration");
      HELPLINE_ASSIGN_OR_RETURN(auto d, ParseDuration(path, node.Scalar()));
      Message* target = rep ? r->AddMessage(&message, field) : r->MutableMessage(&message, field);
      target->CopyFrom(d);
      return absl::OkStatus();
    }
    if (!node.IsMap() && !node.IsNull()) return Bad(path, "expected a mapping");
    Message* target = rep ? r->AddMessage(&message, field) : r->MutableMessage(&message, field);
    return node.IsNull() ? absl::OkStatus() : MergeNode(node, path, *target);
  }
  if (!node.IsScalar()) return Bad(path, "expected a single value");
  const std::string text = node.Scalar();
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_STRING:
      rep ? r->AddString(&message, field, text) : r->SetString(&message, field, text);
      return absl::OkStatus();
    case FieldDescriptor::CPPTYPE_BOOL: {
      std::string lower = absl::AsciiStrToLower(text);
      bool v;
      if (lower == "true" || lower == "yes" || lower == "on" || lower == "1") v = true;
      else if (lower == "false" || lower == "no" || lower == "off" || lower == "0") v = false;
      else return Bad(path, absl::StrCat("'", text, "' is not a boolean"));
      rep ? r->AddBool(&message, field, v) : r->SetBool(&message, field, v);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_INT32:
    case FieldDescriptor::CPPTYPE_INT64: {
      int64_t v;
      if (!absl::SimpleAtoi(text, &v)) return Bad(path, absl::StrCat("'", text, "' is not an integer"));
      if (field->cpp_type() == FieldDescriptor::CPPTYPE_INT32) {
        if (v < INT32_MIN || v > INT32_MAX) return Bad(path, "out of range");
        rep ? r->AddInt32(&message, field, v) : r->SetInt32(&message, field, v);
      } else {
        rep ? r->AddInt64(&message, field, v) : r->SetInt64(&message, field, v);
      }
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_UINT32:
    case FieldDescriptor::CPPTYPE_UINT64: {
      uint64_t v;
      if (absl::StartsWith(absl::StripAsciiWhitespace(text), "-") || !absl::SimpleAtoi(text, &v)) {
        return Bad(path, absl::StrCat("'", text, "' is not a non-negative integer"));
      }
      if (field->cpp_type() == FieldDescriptor::CPPTYPE_UINT32) {
        if (v > UINT32_MAX) return Bad(path, "out of range");
        rep ? r->AddUInt32(&message, field, v) : r->SetUInt32(&message, field, v);
      } else {
        rep ? r->AddUInt64(&message, field, v) : r->SetUInt64(&message, field, v);
      }
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_FLOAT:
    case FieldDescriptor::CPPTYPE_DOUBLE: {
      double v;
      if (!absl::SimpleAtod(text, &v) || !std::isfinite(v)) {
        return Bad(path, absl::StrCat("'", text, "' is not a number"));
      }
      if (field->cpp_type() == FieldDescriptor::CPPTYPE_FLOAT) {
        rep ? r->AddFloat(&message, field, static_cast<float>(v))
            : r->SetFloat(&message, field, static_cast<float>(v));
      } else {
        rep ? r->AddDouble(&message, field, v) : r->SetDouble(&message, field, v);
      }
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_ENUM: {
      const auto* value = field->enum_type()->FindValueByName(absl::AsciiStrToUpper(text));
      if (value == nullptr) return Bad(path, absl::StrCat("'", text, "' is not a known value"));
      rep ? r->AddEnum(&message, field, value) : r->SetEnum(&message, field, value);
      return absl::OkStatus();
    }
    default:
      return Bad(path, "unsupported field type");
  }
}

absl::Status SetField(const YAML::Node& node, const std::string& path, Message& message,
                      const FieldDescriptor* field) {
  const Reflection* r = message.GetReflection();
  if (field->is_map()) {
    if (!node.IsMap()) return Bad(path, "expected a mapping");
    const Descriptor* entry = field->message_type();
    for (const auto& kv : node) {
      if (!kv.first.IsScalar()) return Bad(path, "map keys must be plain values");
      std::string key = kv.first.Scalar();
      Message* item = r->AddMessage(&message, field);
      std::string item_path = Join(path, key);
      HELPLINE_RETURN_IF_ERROR(SetValue(kv.first, item_path, *item, entry->map_key()));
      HELPLINE_RETURN_IF_ERROR(SetValue(kv.second, item_path, *item, entry->map_value()));
    }
    return absl::OkStatus();
  }
  if (field->is_repeated()) {
    r->ClearField(&message, field);  // A list replaces the one before it.
    if (node.IsNull()) return absl::OkStatus();
    if (!node.IsSequence()) return Bad(path, "expected a list");
    for (size_t i = 0; i < node.size(); ++i) {
      HELPLINE_RETURN_IF_ERROR(SetValue(node[i], absl::StrCat(path, "[", i, "]"), message, field));
    }
    return absl::OkStatus();
  }
  return SetValue(node, path, message, field);
}

const FieldDescriptor* FindField(const Descriptor* d, absl::string_view key) {
  const FieldDescriptor* f = d->FindFieldByName(std::string(key));
  if (f == nullptr) f = d->FindFieldByCamelcaseName(std::string(key));
  return f;
}

absl::Status MergeNode(const YAML::Node& node, const std::string& path, Message& message) {
  if (node.IsNull()) return absl::OkStatus();
  if (!node.IsMap()) return Bad(path.empty() ? "(top level)" : path, "expected a mapping");
  for (const auto& kv : node) {
    if (!kv.first.IsScalar()) return Bad(path.empty() ? "(top level)" : path, "keys must be names");
    std::string key = kv.first.Scalar();
    std::string key_path = Join(path, key);
    const FieldDescriptor* field = FindField(message.GetDescriptor(), key);
    if (field == nullptr) return Bad(key_path, "unknown key");
    HELPLINE_RETURN_IF_ERROR(SetField(kv.second, key_path, message, field));
  }
  return absl::OkStatus();
}

absl::StatusOr<YAML::Node> ParseYaml(absl::string_view text, absl::string_view origin) {
  try {
    return YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(origin, ": line ", e.mark.line + 1, ": ", e.msg));
  }
}

}  // namespace

absl::Status MergeYaml(absl::string_view yaml_text, absl::string_view origin, Message& message) {
  HELPLINE_ASSIGN_OR_RETURN(YAML::Node node, ParseYaml(yaml_text, origin));
  absl::Status status = MergeNode(node, "", message);
  if (!status.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(origin, ": ", status.message()));
  }
  return absl::OkStatus();
}

absl::Status MergeYamlFile(const std::string& path, Message& message) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("config file ", path, ": cannot be read"));
  std::stringstream buffer;
  buffer << in.rdbuf();
  return MergeYaml(buffer.str(), path, message);
}

absl::Status SetField(absl::string_view path, absl::string_view yaml_value, Message& message) {
  std::vector<std::string> parts = absl::StrSplit(path, '.');
  Message* current = &message;
  std::string so_far;
  for (size_t i = 0; i < parts.size(); ++i) {
    so_far = Join(so_far, parts[i]);
    const FieldDescriptor* field = FindField(current->GetDescriptor(), parts[i]);
    if (field == nullptr) return Bad(so_far, "unknown key");
    if (i + 1 == parts.size()) {
      HELPLINE_ASSIGN_OR_RETURN(YAML::Node node, ParseYaml(yaml_value, so_far));
      return SetField(node, so_far, *current, field);
    }
    if (field->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE || field->is_repeated()) {
      return Bad(so_far, "has no sub-fields");
    }
    current = current->GetReflection()->MutableMessage(current, field);
  }
  return Bad(path, "empty path");
}

absl::Status ApplyEnvironment(absl::string_view service, char** env, Message& message) {
  const std::string prefix = absl::StrCat("HELPLINE_", service, "__");
  for (char** e = env; e != nullptr && *e != nullptr; ++e) {
    absl::string_view entry(*e);
    if (!absl::StartsWith(entry, prefix)) continue;
    size_t eq = entry.find('=');
    if (eq == absl::string_view::npos) continue;
    std::string name(entry.substr(prefix.size(), eq - prefix.size()));
    std::string path = absl::AsciiStrToLower(absl::StrJoin(absl::StrSplit(name, "__"), "."));
    absl::Status status = SetField(path, entry.substr(eq + 1), message);
    if (!status.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("environment variable ", entry.substr(0, eq), ": ", status.message()));
    }
  }
  return absl::OkStatus();
}

absl::Status LoadFromCommandLine(absl::string_view service, int argc, char** argv,
                                 Message& message) {
  std::string config_file;
  std::vector<std::pair<std::string, std::string>> sets;
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg(argv[i]);
    auto take_value = [&](absl::string_view flag) -> absl::StatusOr<std::string> {
      if (absl::StartsWith(arg, absl::StrCat(flag, "="))) return std::string(arg.substr(flag.size() + 1));
      if (i + 1 >= argc) return absl::InvalidArgumentError(absl::StrCat(flag, ": needs a value"));
      return std::string(argv[++i]);
    };
    if (arg == "--help" || arg == "-h") {
      std::cout << "usage: helpline-" << service
                << " [--config FILE] [--set field.path=value ...]\n"
                   "Environment: HELPLINE_"
                << absl::AsciiStrToUpper(service)
                << "__FIELD__SUBFIELD=value overrides the file; --set overrides both.\n";
      return absl::CancelledError("help shown");
    }
    if (arg == "--config" || absl::StartsWith(arg, "--config=")) {
      HELPLINE_ASSIGN_OR_RETURN(config_file, take_value("--config"));
    } else if (arg == "--set" || absl::StartsWith(arg, "--set=")) {
      HELPLINE_ASSIGN_OR_RETURN(std::string kv, take_value("--set"));
      size_t eq = kv.find('=');
      if (eq == std::string::npos) {
        return absl::InvalidArgumentError(absl::StrCat("--set ", kv, ": expected PATH=VALUE"));
      }
      sets.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag '", arg, "' (see --help)"));
    }
  }
  if (!config_file.empty()) HELPLINE_RETURN_IF_ERROR(MergeYamlFile(config_file, message));
  HELPLINE_RETURN_IF_ERROR(ApplyEnvironment(absl::AsciiStrToUpper(service), environ, message));
  for (const auto& [path, value] : sets) {
    absl::Status status = SetField(path, value, message);
    if (!status.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--set ", path, ": ", status.message()));
    }
  }
  return absl::OkStatus();
}

std::string ToJson(const Message& message) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(message, &out, options);
  return out;
}

}  // namespace helpline::config
