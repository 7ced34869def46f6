#include "services/gateway/openai_api.h"

#include <cmath>
#include <limits>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/grpc/server.h"
#include "common/log/log.h"
#include "common/metrics/metrics.h"
#include "common/redis/session_store.h"
#include "common/status/status.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/time_util.h"

namespace helpline::gateway {
namespace {

using nlohmann::json;

// Invalid UTF-8 in the body is replaced by this noncharacter (U+FDD0) before parsing, so
// that the error can name the field that held it.
constexpr char kBadUtf8Marker[] = "\xEF\xB7\x90";

std::string Sanitize(absl::string_view body) {
  std::string out;
  out.reserve(body.size());
  size_t i = 0;
  while (i < body.size()) {
    size_t length = 1;
    const unsigned char c = static_cast<unsigned char>(body[i]);
    if (c >= 0xC2 && c <= 0xDF) length = 2;
    else if (c >= 0xE0 && c <= 0xEF) length = 3;
    else if (c >= 0xF0 && c <= 0xF4) length = 4;
    if (c < 0x80) {
      out.push_back(body[i]);
      ++i;
      continue;
    }
    if (length > 1 && i + length <= body.size() && IsValidUtf8(body.substr(i, length))) {
      out.append(body.data() + i, length);
      i += length;
    } else {
      out.append(kBadUtf8Marker);
      ++i;
    }
  }
  return out;
}

absl::Status Bad(absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", what));
}

// Reads the fields of a request, knowing whether the body had invalid UTF-8.
class Reader {
 public:
  explicit Reader(bool had_bad_utf8) : had_bad_utf8_(had_bad_utf8) {}

  absl::Status String(const json& value, absl::string_view field, std::string& out) const {
    if (!value.is_string()) return Bad(field, "expected a string");
    out = value.get<std::string>();
    if (had_bad_utf8_ && absl::StrContains(out, kBadUtf8Marker)) {
      return Bad(field, "not valid UTF-8");
    }
    return absl::OkStatus();
  }

 private:
  bool had_bad_utf8_;
};

const json* Find(const json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return nullptr;
  return &*it;
}

struct MessageContent {
  std::string text;
  std::vector<common::v1::Attachment> attachments;
  std::vector<std::string> attachment_fields;
};

absl::StatusOr<MessageContent> ParseContent(const Reader& reader, const json& content,
                                            const std::string& field, bool allow_images) {
  MessageContent out;
  if (content.is_string()) {
    HELPLINE_RETURN_IF_ERROR(reader.String(content, field, out.text));
    return out;
  }
  if (!content.is_array()) return Bad(field, "expected a string or an array");
  std::vector<std::string> texts;
  for (size_t j = 0; j < content.size(); ++j) {
    const std::string part_field = absl::StrCat(field, "[", j, "]");
    const json& part = content[j];
    if (!part.is_object()) return Bad(part_field, "expected an object");
    const json* type = Find(part, "type");
    if (type == nullptr) return Bad(absl::StrCat(part_field, ".type"), "required");
    std::string type_name;
    HELPLINE_RETURN_IF_ERROR(reader.String(*type, absl::StrCat(part_field, ".type"), type_name));
    if (type_name == "text") {
      const json* text = Find(part, "text");
      if (text == nullptr) return Bad(absl::StrCat(part_field, ".text"), "required");
      std::string value;
      HELPLINE_RETURN_IF_ERROR(reader.String(*text, absl::StrCat(part_field, ".text"), value));
      texts.push_back(std::move(value));
    } else if (type_name == "image_url") {
      const std::string image_field = absl::StrCat(part_field, ".image_url");
      const json* image = Find(part, "image_url");
      if (image == nullptr) return Bad(image_field, "required");
      if (!image->is_object()) return Bad(image_field, "expected an object with a url");
      const json* url = Find(*image, "url");
      if (url == nullptr) return Bad(absl::StrCat(image_field, ".url"), "required");
      std::string url_text;
      HELPLINE_RETURN_IF_ERROR(reader.String(*url, absl::StrCat(image_field, ".url"), url_text));
      if (!allow_images) continue;  // Images of earlier messages are not re-read.
      HELPLINE_ASSIGN_OR_RETURN(common::v1::Attachment attachment,
                                DecodeDataUrl(url_text, absl::StrCat(image_field, ".url")));
      out.attachments.push_back(std::move(attachment));
      out.attachment_fields.push_back(image_field);
    } else {
      return Bad(absl::StrCat(part_field, ".type"),
                 absl::StrCat("unsupported content part type '", type_name,
                              "' (expected 'text' or 'image_url')"));
    }
  }
  out.text = absl::StrJoin(texts, "\n");
  return out;
}

absl::StatusOr<double> Number(const json& value, absl::string_view field, double low,
                              double high) {
  if (!value.is_number()) return Bad(field, "expected a number");
  const double number = value.get<double>();
  if (!std::isfinite(number) || number < low || number > high) {
    return Bad(field, absl::StrCat("must be between ", low, " and ", high));
  }
  return number;
}

absl::StatusOr<int64_t> Integer(const json& value, absl::string_view field) {
  if (!value.is_number_integer()) return Bad(field, "expected an integer");
  if (value.is_number_unsigned()) {
    const uint64_t number = value.get<uint64_t>();
    if (number > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return Bad(field, "out of range");
    }
    return static_cast<int64_t>(number);
  }
  return value.get<int64_t>();
}

std::string ValidRequestId(const std::string& given) {
  if (given.empty() || given.size() > 64) return rpc::NewRequestId();
  for (char c : given) {
    if (!absl::ascii_isalnum(c) && c != '.' && c != '_' && c != '-') return rpc::NewRequestId();
  }
  return given;
}

json StateJson(const common::v1::DialogueState& state) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string text;
  if (!google::protobuf::util::MessageToJsonString(state, &text, options).ok()) {
    return json::object();
  }
  json parsed = json::parse(text, nullptr, false);
  return parsed.is_discarded() ? json::object() : parsed;
}

int64_t UnixNow() { return absl::ToUnixSeconds(absl::Now()); }

std::string SseData(const json& value) {
  return absl::StrCat("data: ", value.dump(-1, ' ', false, json::error_handler_t::replace),
                      "\n\n");
}

std::string Dump(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace

absl::StatusOr<common::v1::Attachment> DecodeDataUrl(absl::string_view url,
                                                     absl::string_view field) {
  if (url.size() < 5 || !absl::EqualsIgnoreCase(url.substr(0, 5), "data:")) {
    return Bad(field, "only data: URLs are supported (data:image/png;base64,...)");
  }
  const size_t comma = url.find(',');
  if (comma == absl::string_view::npos) return Bad(field, "malformed data: URL (no ',')");
  absl::string_view meta = url.substr(5, comma - 5);
  std::vector<absl::string_view> params = absl::StrSplit(meta, ';');
  if (params.empty() || params[0].empty()) return Bad(field, "data: URL without a MIME type");
  bool base64 = false;
  for (size_t i = 1; i < params.size(); ++i) {
    if (absl::EqualsIgnoreCase(params[i], "base64")) base64 = true;
  }
  if (!base64) return Bad(field, "data: URL must be base64-encoded (';base64,')");
  common::v1::Attachment attachment;
  attachment.set_mime_type(absl::AsciiStrToLower(params[0]));
  std::string data;
  if (!absl::Base64Unescape(url.substr(comma + 1), &data)) {
    return Bad(field, "invalid base64 payload");
  }
  attachment.set_data(std::move(data));
  return attachment;
}

absl::StatusOr<ChatCompletionRequest> ParseChatCompletionRequest(absl::string_view body) {
  const bool bad_utf8 = !IsValidUtf8(body);
  json root;
  try {
    root = bad_utf8 ? json::parse(Sanitize(body)) : json::parse(body.begin(), body.end());
  } catch (const json::exception& e) {
    std::string what = e.what();
    if (const size_t end = what.find("] "); what.rfind("[json.exception", 0) == 0 &&
                                            end != std::string::npos) {
      what = what.substr(end + 2);
    }
    return absl::InvalidArgumentError(absl::StrCat("malformed JSON body: ", what));
  }
  if (!root.is_object()) {
    return absl::InvalidArgumentError("request body: expected a JSON object");
  }
  const Reader reader(bad_utf8);
  ChatCompletionRequest request;
  TurnInput& turn = request.turn;

  if (const json* v = Find(root, "model")) {
    HELPLINE_RETURN_IF_ERROR(reader.String(*v, "model", request.model));
  }
  if (const json* v = Find(root, "stream")) {
    if (!v->is_boolean()) return Bad("stream", "expected a boolean");
    request.stream = v->get<bool>();
  }
  if (const json* v = Find(root, "stream_options")) {
    if (!v->is_object()) return Bad("stream_options", "expected an object");
    if (const json* u = Find(*v, "include_usage")) {
      if (!u->is_boolean()) return Bad("stream_options.include_usage", "expected a boolean");
      request.include_usage = u->get<bool>();
    }
  }
  if (const json* v = Find(root, "n")) {
    HELPLINE_ASSIGN_OR_RETURN(int64_t n, Integer(*v, "n"));
    if (n != 1) return Bad("n", "only n = 1 is supported");
  }
  for (const char* name : {"max_tokens", "max_completion_tokens"}) {
    if (const json* v = Find(root, name)) {
      HELPLINE_ASSIGN_OR_RETURN(int64_t tokens, Integer(*v, name));
      if (tokens < 1 || tokens > 1'000'000) return Bad(name, "must be between 1 and 1000000");
      turn.options.set_max_tokens(static_cast<uint32_t>(tokens));
    }
  }
  if (const json* v = Find(root, "temperature")) {
    HELPLINE_ASSIGN_OR_RETURN(double t, Number(*v, "temperature", 0, 2));
    turn.options.set_temperature(static_cast<float>(t));
  }
  if (const json* v = Find(root, "top_p")) {
    HELPLINE_ASSIGN_OR_RETURN(double p, Number(*v, "top_p", 0, 1));
    turn.options.set_top_p(static_cast<float>(p));
  }
  if (const json* v = Find(root, "stop")) {
    if (v->is_string()) {
      std::string stop;
      HELPLINE_RETURN_IF_ERROR(reader.String(*v, "stop", stop));
      if (stop.empty()) return Bad("stop", "must not be empty");
      turn.options.add_stop(stop);
    } else if (v->is_array()) {
      if (v->size() > 4) return Bad("stop", "at most 4 stop sequences");
      for (size_t i = 0; i < v->size(); ++i) {
        const std::string field = absl::StrCat("stop[", i, "]");
        std::string stop;
        HELPLINE_RETURN_IF_ERROR(reader.String((*v)[i], field, stop));
        if (stop.empty()) return Bad(field, "must not be empty");
        turn.options.add_stop(stop);
      }
    } else {
      return Bad("stop", "expected a string or an array of strings");
    }
  }
  if (const json* v = Find(root, "frequency_penalty")) {
    HELPLINE_ASSIGN_OR_RETURN(double f, Number(*v, "frequency_penalty", -2, 2));
    turn.options.set_frequency_penalty(static_cast<float>(f));
  }
  if (const json* v = Find(root, "presence_penalty")) {
    HELPLINE_ASSIGN_OR_RETURN(double f, Number(*v, "presence_penalty", -2, 2));
    turn.options.set_presence_penalty(static_cast<float>(f));
  }
  if (const json* v = Find(root, "seed")) {
    HELPLINE_ASSIGN_OR_RETURN(int64_t seed, Integer(*v, "seed"));
    turn.options.set_seed(static_cast<uint64_t>(seed));
  }
  if (const json* v = Find(root, "user")) {
    HELPLINE_RETURN_IF_ERROR(reader.String(*v, "user", request.user));
  }

  const json* messages = Find(root, "messages");
  if (messages == nullptr) return Bad("messages", "required");
  if (!messages->is_array()) return Bad("messages", "expected an array");
  if (messages->empty()) return Bad("messages", "must not be empty");
  const size_t last = messages->size() - 1;
  for (size_t i = 0; i < messages->size(); ++i) {
    const std::string field = absl::StrCat("messages[", i, "]");
    const json& message = (*messages)[i];
    if (!message.is_object()) return Bad(field, "expected an object");
    const json* role_value = Find(message, "role");
    if (role_value == nullptr) return Bad(absl::StrCat(field, ".role"), "required");
    std::string role;
    HELPLINE_RETURN_IF_ERROR(reader.String(*role_value, absl::StrCat(field, ".role"), role));
    if (role != "system" && role != "developer" && role != "user" && role != "assistant") {
      return Bad(absl::StrCat(field, ".role"),
                 absl::StrCat("unsupported role '", role,
                              "' (expected 'system', 'developer', 'user' or 'assistant')"));
    }
    const std::string content_field = absl::StrCat(field, ".content");
    const json* content = Find(message, "content");
    MessageContent parsed;
    if (content == nullptr) {
      if (role != "assistant") return Bad(content_field, "required");
    } else {
      HELPLINE_ASSIGN_OR_RETURN(parsed, ParseContent(reader, *content, content_field,
                                                     role == "user" && i == last));
    }
    if (i == last) {
      if (role != "user") {
        return Bad(absl::StrCat(field, ".role"),
                   "the last message must be the user's (role 'user')");
      }
      turn.text = std::move(parsed.text);
      turn.text_field = content_field;
      turn.attachments = std::move(parsed.attachments);
      turn.attachment_fields = std::move(parsed.attachment_fields);
    } else if (role == "user" || role == "assistant") {
      chat::v1::HistoryMessage history;
      history.set_role(role);
      history.set_text(std::move(parsed.text));
      turn.history.push_back(std::move(history));
      turn.history_fields.push_back(content_field);
    }
    // System and developer messages are accepted and ignored: the domain sets the persona.
  }
  if (bad_utf8) {
    // The invalid bytes were somewhere the fields above did not read (a key, an ignored
    // field); still not acceptable.
    return Bad("request body", "not valid UTF-8");
  }
  return request;
}

std::string ErrorParam(const absl::Status& status) {
  absl::string_view message = status.message();
  const size_t colon = message.find(": ");
  if (colon == absl::string_view::npos || colon == 0) return "";
  absl::string_view head = message.substr(0, colon);
  for (char c : head) {
    if (!absl::ascii_isalnum(c) && c != '_' && c != '.' && c != '[' && c != ']' && c != '-') {
      return "";
    }
  }
  return std::string(head);
}

std::string ErrorType(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange: return "invalid_request_error";
    case absl::StatusCode::kUnauthenticated: return "authentication_error";
    case absl::StatusCode::kPermissionDenied: return "permission_error";
    case absl::StatusCode::kNotFound: return "not_found_error";
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kAlreadyExists: return "conflict_error";
    case absl::StatusCode::kResourceExhausted: return "rate_limit_error";
    default: return "server_error";
  }
}

json ErrorJson(const absl::Status& status) {
  json error = json::object();
  error["message"] = std::string(status.message());
  error["type"] = ErrorType(status.code());
  const std::string param =
      status.code() == absl::StatusCode::kInvalidArgument ? ErrorParam(status) : "";
  error["param"] = param.empty() ? json(nullptr) : json(param);
  std::string code = absl::AsciiStrToLower(absl::StatusCodeToString(status.code()));
  if (status.code() == absl::StatusCode::kUnauthenticated) code = "invalid_api_key";
  if (status.code() == absl::StatusCode::kResourceExhausted) code = "rate_limit_exceeded";
  error["code"] = code;
  return json{{"error", error}};
}

std::string OpenAiFinishReason(const std::string& finish_reason) {
  return finish_reason == "length" ? "length" : "stop";
}

namespace {

json TimeJson(const google::protobuf::Timestamp& time) {
  if (time.seconds() == 0 && time.nanos() == 0) return nullptr;
  return google::protobuf::util::TimeUtil::ToString(time);
}

json NullIfEmpty(const std::string& text) { return text.empty() ? json(nullptr) : json(text); }

json SummaryJson(const common::v1::HandoffSummary& summary) {
  json slots = json::object();
  for (const auto& [name, value] : summary.slots()) slots[name] = value;
  json missing = json::array();
  for (const std::string& slot : summary.missing_slots()) missing.push_back(slot);
  json lines = json::array();
  for (const common::v1::TranscriptLine& line : summary.recent_lines()) {
    lines.push_back(
        {{"speaker", line.speaker()}, {"text", line.text()}, {"turn_index", line.turn_index()}});
  }
  return {{"text", summary.text()},           {"intent", summary.intent()},
          {"slots", std::move(slots)},        {"missing_slots", std::move(missing)},
          {"reason", summary.reason()},       {"turn_count", summary.turn_count()},
          {"language", summary.language()},   {"recent_lines", std::move(lines)}};
}

}  // namespace

json HandoffJson(const common::v1::Handoff& handoff) {
  return {{"status", HandoffStatusName(handoff.status())},
          {"reason", handoff.reason()},
          {"sequence", handoff.sequence()},
          {"initiate_turn", handoff.initiate_turn()},
          {"initiate_time", TimeJson(handoff.initiate_time())},
          {"agent_id", NullIfEmpty(handoff.agent_id())},
          {"accept_time", TimeJson(handoff.accept_time())},
          {"release_time", TimeJson(handoff.release_time())},
          {"released_by", NullIfEmpty(handoff.released_by())},
          {"summary", SummaryJson(handoff.summary())}};
}

absl::StatusOr<std::string> ParseHandoffActionBody(absl::string_view body, bool agent_required) {
  std::string agent_id;
  if (!absl::StripAsciiWhitespace(body).empty()) {
    if (!IsValidUtf8(body)) return Bad("request body", "not valid UTF-8");
    json root = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
    if (root.is_discarded()) return absl::InvalidArgumentError("malformed JSON body");
    if (!root.is_object()) return Bad("request body", "expected a JSON object");
    if (const json* v = Find(root, "agent_id")) {
      if (!v->is_string()) return Bad("agent_id", "expected a string");
      agent_id = v->get<std::string>();
    }
  }
  HELPLINE_RETURN_IF_ERROR(ValidateAgentId(agent_id, "agent_id", agent_required));
  return agent_id;
}

json HelplineJson(const TurnResult& result) {
  const chat::v1::ConverseResponse& r = result.response;
  json out = json::object();
  out["session_id"] = r.session_id().empty() ? json(nullptr) : json(r.session_id());
  out["state"] = StateJson(r.state());
  out["escalate"] = r.state().escalate();
  out["escalation_reason"] = r.state().escalation_reason();
  if (r.has_handoff()) out["handoff"] = HandoffJson(r.handoff());
  out["degraded"] = r.degraded();
  out["degraded_stages"] = json::array();
  for (const std::string& stage : r.degraded_stages()) out["degraded_stages"].push_back(stage);
  out["turn_index"] = r.turn_index();
  out["request_id"] = r.request_id();
  out["finish_reason"] = r.finish_reason();
  json evidence = json::array();
  for (const auto& e : r.evidence()) {
    evidence.push_back({{"attachment_index", e.attachment_index()},
                        {"source", e.source()},
                        {"text", e.text()},
                        {"confidence", e.confidence()}});
  }
  out["evidence"] = std::move(evidence);
  json timings = json::array();
  for (const auto& t : r.timings()) {
    timings.push_back({{"stage", t.stage()}, {"micros", t.micros()}});
  }
  out["timings"] = std::move(timings);
  return out;
}

namespace {

json UsageJson(const common::v1::Usage& usage) {
  return {{"prompt_tokens", usage.prompt_tokens()},
          {"completion_tokens", usage.completion_tokens()},
          {"total_tokens", usage.prompt_tokens() + usage.completion_tokens()}};
}

json Chunk(const std::string& id, int64_t created, const std::string& model, json delta,
           json finish_reason) {
  return {{"id", id},
          {"object", "chat.completion.chunk"},
          {"created", created},
          {"model", model},
          {"choices", json::array({{{"index", 0},
                                    {"delta", std::move(delta)},
                                    {"finish_reason", std::move(finish_reason)}}})}};
}

}  // namespace

json CompletionJson(const TurnResult& result, const std::string& id, int64_t created,
                    const std::string& model) {
  const chat::v1::ConverseResponse& r = result.response;
  return {{"id", id},
          {"object", "chat.completion"},
          {"created", created},
          {"model", model},
          {"choices", json::array({{{"index", 0},
                                    {"message", {{"role", "assistant"}, {"content", r.reply()}}},
                                    {"finish_reason", OpenAiFinishReason(r.finish_reason())}}})},
          {"usage", UsageJson(r.usage())},
          {"helpline", HelplineJson(result)}};
}

OpenAiApi::OpenAiApi(OpenAiApiOptions options, const Authenticator& auth,
                     TenantRateLimiter& limiter, TurnRunner& runner, HandoffDesk& handoffs,
                     std::function<absl::Status()> ready)
    : options_(std::move(options)),
      auth_(auth),
      limiter_(limiter),
      runner_(runner),
      handoffs_(handoffs),
      ready_(std::move(ready)) {}

void OpenAiApi::SendError(http::ResponseWriter& writer, const absl::Status& status,
                          const std::string& request_id, absl::Duration retry_after) {
  http::Headers headers{{"X-Request-Id", request_id}};
  if (status.code() == absl::StatusCode::kUnauthenticated) {
    headers["WWW-Authenticate"] = "Bearer";
  }
  if (status.code() == absl::StatusCode::kResourceExhausted) {
    const double seconds = std::max(1.0, std::ceil(absl::ToDoubleSeconds(retry_after)));
    headers["Retry-After"] = absl::StrCat(static_cast<int64_t>(seconds));
  }
  writer.Send(HttpStatusFor(status.code()), "application/json", Dump(ErrorJson(status)),
              headers);
}

void OpenAiApi::Handle(const http::Request& request, http::ResponseWriter& writer) {
  const std::string request_id = ValidRequestId(request.Header("x-request-id"));
  const std::string& path = request.path;
  if (path == "/healthz") {
    writer.Send(200, "text/plain; charset=utf-8", "ok\n");
    return;
  }
  if (path == "/readyz") {
    absl::Status ready = draining_ ? absl::UnavailableError("draining: shutting down")
                                   : (ready_ ? ready_() : absl::OkStatus());
    if (ready.ok()) {
      writer.Send(200, "text/plain; charset=utf-8", "ready\n");
    } else {
      writer.Send(503, "text/plain; charset=utf-8",
                  absl::StrCat("not ready: ", ready.message(), "\n"));
    }
    return;
  }
  if (path == "/metrics") {
    runner_.active_sessions().Refresh(absl::Now());
    writer.Send(200, metrics::kContentType, metrics::Registry::Default().Serialize());
    return;
  }
  if (path == "/v1/chat/completions") {
    if (request.method != "POST") {
      SendError(writer, absl::InvalidArgumentError("method: use POST for /v1/chat/completions"),
                request_id);
      return;
    }
    ChatCompletions(request, request_id, writer);
    return;
  }
  if (absl::StartsWith(path, "/v1/sessions/")) {
    Handoffs(request, request_id, writer);
    return;
  }
  if (path == "/v1/models" || absl::StartsWith(path, "/v1/models/")) {
    absl::StatusOr<Principal> principal = auth_.Authenticate(request.Header("authorization"));
    if (!principal.ok()) {
      SendError(writer, principal.status(), request_id);
      return;
    }
    const json model = {{"id", options_.model_name},
                        {"object", "model"},
                        {"created", 0},
                        {"owned_by", "helpline"}};
    if (path == "/v1/models") {
      writer.Send(200, "application/json",
                  Dump({{"object", "list"}, {"data", json::array({model})}}),
                  {{"X-Request-Id", request_id}});
    } else if (path.substr(std::string("/v1/models/").size()) == options_.model_name) {
      writer.Send(200, "application/json", Dump(model), {{"X-Request-Id", request_id}});
    } else {
      SendError(writer, absl::NotFoundError(absl::StrCat("model '",
                                                          path.substr(11), "' does not exist")),
                request_id);
    }
    return;
  }
  SendError(writer, absl::NotFoundError(absl::StrCat("no route for ", request.method, " ", path)),
            request_id);
}

void OpenAiApi::Handoffs(const http::Request& request, const std::string& request_id,
                         http::ResponseWriter& writer) {
  // /v1/sessions/{id}/handoff, /v1/sessions/{id}/handoff/accept, .../release.
  absl::string_view rest = absl::string_view(request.path).substr(sizeof("/v1/sessions/") - 1);
  const size_t slash = rest.find('/');
  const absl::string_view session_id = rest.substr(0, slash);
  const absl::string_view action =
      slash == absl::string_view::npos ? absl::string_view() : rest.substr(slash);
  const bool get = action == "/handoff";
  const bool accept = action == "/handoff/accept";
  const bool release = action == "/handoff/release";
  if (!get && !accept && !release) {
    SendError(writer,
              absl::NotFoundError(absl::StrCat("no route for ", request.method, " ", request.path,
                                               " (sessions have /handoff, /handoff/accept and "
                                               "/handoff/release)")),
              request_id);
    return;
  }
  const char* method = get ? "GET" : "POST";
  if (request.method != method) {
    SendError(writer,
              absl::InvalidArgumentError(
                  absl::StrCat("method: use ", method, " for ", request.path)),
              request_id);
    return;
  }
  absl::StatusOr<Principal> principal = auth_.Authenticate(request.Header("authorization"));
  if (!principal.ok()) {
    SendError(writer, principal.status(), request_id);
    return;
  }
  if (absl::Status valid = session::ValidateSessionId(session_id); !valid.ok()) {
    SendError(writer, valid, request_id);
    return;
  }
  const session::SessionKey key{principal->tenant, std::string(session_id)};
  log::ScopedContext log_context(request_id, key.session_id);
  absl::StatusOr<common::v1::Handoff> handoff;
  if (get) {
    handoff = handoffs_.Get(key);
  } else {
    absl::StatusOr<std::string> agent_id = ParseHandoffActionBody(request.body, accept);
    if (!agent_id.ok()) {
      SendError(writer, agent_id.status(), request_id);
      return;
    }
    const absl::Time deadline = absl::Now() + options_.turn_timeout;
    handoff = accept ? handoffs_.Accept(key, *agent_id, deadline)
                     : handoffs_.Release(key, *agent_id, deadline);
  }
  if (!handoff.ok()) {
    SendError(writer, handoff.status(), request_id);
    return;
  }
  writer.Send(200, "application/json",
              Dump({{"object", "helpline.handoff"},
                    {"session_id", key.session_id},
                    {"handoff", HandoffJson(*handoff)}}),
              {{"X-Request-Id", request_id}});
}

void OpenAiApi::ChatCompletions(const http::Request& http_request, const std::string& request_id,
                                http::ResponseWriter& writer) {
  absl::StatusOr<Principal> principal = auth_.Authenticate(http_request.Header("authorization"));
  if (!principal.ok()) {
    SendError(writer, principal.status(), request_id);
    return;
  }
  absl::StatusOr<ChatCompletionRequest> parsed = ParseChatCompletionRequest(http_request.body);
  if (!parsed.ok()) {
    SendError(writer, parsed.status(), request_id);
    return;
  }
  ChatCompletionRequest& request = *parsed;
  TurnInput& turn = request.turn;
  turn.tenant = principal->tenant;
  turn.request_id = request_id;
  turn.deadline = absl::Now() + options_.turn_timeout;
  const std::string header_session = http_request.Header("x-helpline-session");
  if (!header_session.empty()) {
    turn.session_id = header_session;
    turn.session_field = "X-Helpline-Session";
  } else if (!request.user.empty()) {
    turn.session_id = request.user;
    turn.session_field = "user";
  }
  if (!turn.session_id.empty()) {
    // The session holds the history: earlier messages of the request are not used.
    turn.history.clear();
    turn.history_fields.clear();
  }
  log::ScopedContext log_context(request_id, turn.session_id);

  // Validation first, so that a bad request is answered before it costs a rate-limit token.
  if (absl::Status s = ValidateTurnInput(turn, runner_.limits()); !s.ok()) {
    SendError(writer, s, request_id);
    return;
  }
  absl::Duration retry_after;
  if (absl::Status s = limiter_.Admit(turn.tenant, &retry_after); !s.ok()) {
    SendError(writer, s, request_id, retry_after);
    return;
  }

  const std::string id = absl::StrCat("chatcmpl-", rpc::NewRequestId());
  const int64_t created = UnixNow();
  const std::string& model = options_.model_name;
  if (!request.stream) {
    absl::StatusOr<TurnResult> result = runner_.Run(turn);
    if (!result.ok()) {
      SendError(writer, result.status(), request_id);
      return;
    }
    writer.Send(200, "application/json", Dump(CompletionJson(*result, id, created, model)),
                {{"X-Request-Id", request_id}});
    return;
  }

  // Streaming: the response starts with the first delta, so that an error before it still
  // gets its proper HTTP status.
  bool begun = false;
  bool client_gone = false;
  auto begin = [&]() -> bool {
    if (begun) return !client_gone;
    begun = true;
    if (!writer.BeginStream(200, "text/event-stream",
                            {{"X-Request-Id", request_id}, {"Cache-Control", "no-cache"}})) {
      client_gone = true;
      return false;
    }
    if (!writer.WriteChunk(SseData(Chunk(id, created, model,
                                         {{"role", "assistant"}, {"content", ""}}, nullptr)))) {
      client_gone = true;
    }
    return !client_gone;
  };
  turn.on_delta = [&](absl::string_view delta) -> bool {
    if (!begin()) return false;
    if (!writer.WriteChunk(
            SseData(Chunk(id, created, model, {{"content", std::string(delta)}}, nullptr)))) {
      client_gone = true;
    }
    return !client_gone;
  };
  absl::StatusOr<TurnResult> result = runner_.Run(turn);
  if (!result.ok() && !begun) {
    SendError(writer, result.status(), request_id);
    return;
  }
  if (!begin()) {
    writer.EndStream();
    return;
  }
  if (!result.ok()) {
    writer.WriteChunk(SseData(ErrorJson(result.status())));
  } else {
    json last = Chunk(id, created, model, json::object(),
                      OpenAiFinishReason(result->response.finish_reason()));
    last["helpline"] = HelplineJson(*result);
    writer.WriteChunk(SseData(last));
    if (request.include_usage) {
      json usage = {{"id", id},
                    {"object", "chat.completion.chunk"},
                    {"created", created},
                    {"model", model},
                    {"choices", json::array()},
                    {"usage", UsageJson(result->response.usage())}};
      writer.WriteChunk(SseData(usage));
    }
  }
  writer.WriteChunk("data: [DONE]\n\n");
  writer.EndStream();
}

}  // namespace helpline::gateway
