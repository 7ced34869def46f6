// The JSON level of /v1/chat/completions: every bad input of issue 2's list gets
// INVALID_ARGUMENT and an error object whose param (and message) names the field.
#include "services/gateway/openai_api.h"

#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace helpline::gateway {
namespace {

using ::testing::HasSubstr;
using nlohmann::json;

std::string Be32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
          static_cast<char>(v)};
}

std::string Png(uint32_t width, uint32_t height) {
  std::string b("\x89PNG\r\n\x1a\n", 8);
  b += Be32(13) + "IHDR" + Be32(width) + Be32(height);
  b += std::string("\x08\x02\x00\x00\x00", 5) + Be32(0);
  return b;
}

std::string DataUrl(absl::string_view mime, absl::string_view bytes) {
  return absl::StrCat("data:", mime, ";base64,", absl::Base64Escape(bytes));
}

json UserWithImages(const std::string& text, const std::vector<std::string>& urls) {
  json content = json::array({{{"type", "text"}, {"text", text}}});
  for (const std::string& url : urls) {
    content.push_back({{"type", "image_url"}, {"image_url", {{"url", url}}}});
  }
  return {{"role", "user"}, {"content", content}};
}

v1::Limits DefaultLimits() {
  v1::Limits limits;
  ApplyLimitDefaults(limits);
  return limits;
}

// Parses, then validates the turn as the handler does; returns the first error.
absl::Status ParseAndValidate(const std::string& body, const v1::Limits& limits = DefaultLimits()) {
  absl::StatusOr<ChatCompletionRequest> parsed = ParseChatCompletionRequest(body);
  if (!parsed.ok()) return parsed.status();
  return ValidateTurnInput(parsed->turn, limits);
}

void ExpectBad(const std::string& body, const std::string& param,
               const std::string& message_part = "",
               const v1::Limits& limits = DefaultLimits()) {
  absl::Status status = ParseAndValidate(body, limits);
  ASSERT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << body.substr(0, 200);
  EXPECT_EQ(HttpStatusFor(status.code()), 400);
  json error = ErrorJson(status)["error"];
  EXPECT_EQ(error["type"], "invalid_request_error");
  if (param.empty()) {
    EXPECT_TRUE(error["param"].is_null()) << error.dump();
  } else {
    EXPECT_EQ(error["param"], param) << error.dump();
  }
  EXPECT_THAT(std::string(status.message()), HasSubstr(param));
  if (!message_part.empty()) {
    EXPECT_THAT(std::string(status.message()), HasSubstr(message_part));
  }
}

std::string Body(json messages, json extra = json::object()) {
  json body = {{"model", "helpline"}, {"messages", std::move(messages)}};
  for (auto& [key, value] : extra.items()) body[key] = value;
  return body.dump();
}

json User(const std::string& text) { return {{"role", "user"}, {"content", text}}; }

TEST(ParseTest, SimpleRequest) {
  auto r = ParseChatCompletionRequest(Body(
      json::array({{{"role", "system"}, {"content", "be nice"}},
                   User("hello"),
                   {{"role", "assistant"}, {"content", "hi, how can I help?"}},
                   User("where is my order")}),
      {{"stream", true}, {"max_tokens", 64}, {"temperature", 0.5}, {"top_p", 0.9},
       {"stop", "\n\n"}, {"seed", 7}, {"user", "sess-1"}, {"n", 1},
       {"frequency_penalty", 0.5}, {"presence_penalty", -0.25},
       {"stream_options", {{"include_usage", true}}}, {"unknown_field", {1, 2, 3}}}));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->stream);
  EXPECT_TRUE(r->include_usage);
  EXPECT_EQ(r->user, "sess-1");
  EXPECT_FLOAT_EQ(r->turn.options.frequency_penalty(), 0.5f);
  EXPECT_FLOAT_EQ(r->turn.options.presence_penalty(), -0.25f);
  EXPECT_EQ(r->turn.text, "where is my order");
  EXPECT_EQ(r->turn.text_field, "messages[3].content");
  ASSERT_EQ(r->turn.history.size(), 2u);  // The system message is not history.
  EXPECT_EQ(r->turn.history[0].role(), "user");
  EXPECT_EQ(r->turn.history[1].role(), "assistant");
  EXPECT_EQ(r->turn.history_fields[1], "messages[2].content");
  EXPECT_EQ(r->turn.options.max_tokens(), 64u);
  EXPECT_FLOAT_EQ(r->turn.options.temperature(), 0.5f);
  EXPECT_FLOAT_EQ(r->turn.options.top_p(), 0.9f);
  ASSERT_EQ(r->turn.options.stop_size(), 1);
  EXPECT_EQ(r->turn.options.seed(), 7u);
}

TEST(ParseTest, ContentPartsAndImages) {
  const std::string png = Png(10, 20);
  auto r = ParseChatCompletionRequest(
      Body(json::array({UserWithImages("my receipt", {DataUrl("image/png", png)})}),
           {{"max_completion_tokens", 5}, {"stop", {"a", "b"}}}));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->turn.text, "my receipt");
  ASSERT_EQ(r->turn.attachments.size(), 1u);
  EXPECT_EQ(r->turn.attachments[0].mime_type(), "image/png");
  EXPECT_EQ(r->turn.attachments[0].data(), png);
  EXPECT_EQ(r->turn.attachment_fields[0], "messages[0].content[1].image_url");
  EXPECT_EQ(r->turn.options.max_tokens(), 5u);
  EXPECT_EQ(r->turn.options.stop_size(), 2);
  EXPECT_TRUE(ValidateTurnInput(r->turn, DefaultLimits()).ok());
}

TEST(ParseTest, NullOptionalFieldsAreAbsent) {
  auto r = ParseChatCompletionRequest(Body(json::array({User("hi")}),
                                           {{"temperature", nullptr}, {"stop", nullptr},
                                            {"user", nullptr}, {"stream", nullptr}}));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->stream);
}

TEST(BadInputTest, MalformedJson) {
  ExpectBad("{\"messages\": [", "", "malformed JSON");
  ExpectBad("not json", "", "malformed JSON");
  ExpectBad("", "", "malformed JSON");
  ExpectBad("[1,2]", "", "expected a JSON object");
}

TEST(BadInputTest, InvalidUtf8NamesTheField) {
  std::string body = Body(json::array({User("PLACEHOLDER")}));
  body.replace(body.find("PLACEHOLDER"), 11, "bad \xC3\x28 byte");
  ExpectBad(body, "messages[0].content", "not valid UTF-8");

  std::string history = Body(json::array({User("PLACEHOLDER"), User("ok")}));
  history.replace(history.find("PLACEHOLDER"), 11, "\xFF\xFE");
  ExpectBad(history, "messages[0].content", "not valid UTF-8");

  std::string in_key = "{\"\xFFkey\": 1, \"messages\": [{\"role\":\"user\",\"content\":\"x\"}]}";
  ExpectBad(in_key, "", "not valid UTF-8");
}

TEST(BadInputTest, EmptyText) {
  ExpectBad(Body(json::array({User("")})), "messages[0].content", "must not be empty");
  ExpectBad(Body(json::array({User("  \n\t ")})), "messages[0].content", "must not be empty");
  ExpectBad(Body(json::array({UserWithImages("", {})})), "messages[0].content",
            "must not be empty");
}

TEST(BadInputTest, TextOverLimit) {
  v1::Limits limits = DefaultLimits();
  limits.set_max_text_bytes(100);
  ExpectBad(Body(json::array({User(std::string(101, 'a'))})), "messages[0].content",
            "more than the limit of 100", limits);
  EXPECT_TRUE(ParseAndValidate(Body(json::array({User(std::string(100, 'a'))})), limits).ok());
}

TEST(BadInputTest, TooManyAttachments) {
  const std::string url = DataUrl("image/png", Png(4, 4));
  ExpectBad(Body(json::array({UserWithImages("look", {url, url, url, url, url})})),
            "messages[0].content", "5 attachments, more than the limit of 4");
}

TEST(BadInputTest, AttachmentTooLarge) {
  v1::Limits limits = DefaultLimits();
  limits.set_max_attachment_bytes(64);
  std::string big = Png(4, 4) + std::string(100, '\0');
  ExpectBad(Body(json::array({UserWithImages("look", {DataUrl("image/png", big)})})),
            "messages[0].content[1].image_url", "", limits);
}

TEST(BadInputTest, UnknownMimeType) {
  ExpectBad(Body(json::array({UserWithImages("look", {DataUrl("image/gif", "GIF89a....")})})),
            "messages[0].content[1].image_url", "image/gif");
}

TEST(BadInputTest, UndecodableImage) {
  ExpectBad(Body(json::array({UserWithImages("look", {DataUrl("image/png", "not a png")})})),
            "messages[0].content[1].image_url");
  // Declared PNG, actually a JPEG header.
  ExpectBad(Body(json::array(
                {UserWithImages("look", {DataUrl("image/png", "\xFF\xD8\xFF\xE0rest")})})),
            "messages[0].content[1].image_url");
}

TEST(BadInputTest, OversizedImagePixels) {
  ExpectBad(Body(json::array({UserWithImages("look", {DataUrl("image/png", Png(60000, 60000))})})),
            "messages[0].content[1].image_url");
}

TEST(BadInputTest, NonDataUrlAndBadBase64) {
  ExpectBad(Body(json::array({UserWithImages("look", {"https://example.com/a.png"})})),
            "messages[0].content[1].image_url.url", "only data: URLs");
  ExpectBad(Body(json::array({UserWithImages("look", {"data:image/png;base64,@@@"})})),
            "messages[0].content[1].image_url.url", "base64");
  ExpectBad(Body(json::array({UserWithImages("look", {"data:image/png,raw"})})),
            "messages[0].content[1].image_url.url", "base64");
}

TEST(BadInputTest, KnownFieldsOfTheWrongType) {
  ExpectBad(Body(json::array({{{"role", "user"}, {"content", 42}}})), "messages[0].content",
            "expected a string or an array");
  ExpectBad(Body(json::array({{{"role", 1}, {"content", "x"}}})), "messages[0].role",
            "expected a string");
  ExpectBad(Body(json::array({User("x")}), {{"stream", "yes"}}), "stream", "expected a boolean");
  ExpectBad(Body(json::array({User("x")}), {{"max_tokens", "10"}}), "max_tokens",
            "expected an integer");
  ExpectBad(Body(json::array({User("x")}), {{"max_tokens", 1.5}}), "max_tokens");
  ExpectBad(Body(json::array({User("x")}), {{"max_tokens", 0}}), "max_tokens");
  ExpectBad(Body(json::array({User("x")}), {{"temperature", "hot"}}), "temperature",
            "expected a number");
  ExpectBad(Body(json::array({User("x")}), {{"temperature", 3}}), "temperature");
  ExpectBad(Body(json::array({User("x")}), {{"frequency_penalty", 2.5}}), "frequency_penalty");
  ExpectBad(Body(json::array({User("x")}), {{"presence_penalty", "high"}}), "presence_penalty");
  ExpectBad(Body(json::array({User("x")}), {{"top_p", 1.5}}), "top_p");
  ExpectBad(Body(json::array({User("x")}), {{"stop", 5}}), "stop");
  ExpectBad(Body(json::array({User("x")}), {{"stop", {"a", "b", "c", "d", "e"}}}), "stop",
            "at most 4");
  ExpectBad(Body(json::array({User("x")}), {{"stop", {"a", 2}}}), "stop[1]");
  ExpectBad(Body(json::array({User("x")}), {{"seed", "x"}}), "seed");
  ExpectBad(Body(json::array({User("x")}), {{"user", 5}}), "user");
  ExpectBad(Body(json::array({User("x")}), {{"model", 5}}), "model");
  ExpectBad(Body(json::array({User("x")}), {{"n", 2}}), "n", "only n = 1");
  ExpectBad(Body(json::array({User("x")}), {{"stream_options", true}}), "stream_options");
  ExpectBad(Body(json::array({{{"role", "user"},
                               {"content", json::array({{{"type", "text"}, {"text", 3}}})}}})),
            "messages[0].content[0].text");
  ExpectBad(Body(json::array({{{"role", "user"},
                               {"content", json::array({{{"type", "input_audio"}}})}}})),
            "messages[0].content[0].type", "unsupported content part type");
  ExpectBad(Body(json::array({{{"role", "user"},
                               {"content", json::array({{{"type", "image_url"},
                                                         {"image_url", "data:x"}}})}}})),
            "messages[0].content[0].image_url", "expected an object");
}

TEST(BadInputTest, MessagesShape) {
  ExpectBad(json({{"model", "m"}}).dump(), "messages", "required");
  ExpectBad(json({{"messages", "hi"}}).dump(), "messages", "expected an array");
  ExpectBad(json({{"messages", json::array()}}).dump(), "messages", "must not be empty");
  ExpectBad(Body(json::array({"hi"})), "messages[0]", "expected an object");
  ExpectBad(Body(json::array({{{"content", "hi"}}})), "messages[0].role", "required");
  ExpectBad(Body(json::array({{{"role", "tool"}, {"content", "x"}}, User("x")})),
            "messages[0].role", "unsupported role 'tool'");
  ExpectBad(Body(json::array({User("x"), {{"role", "assistant"}, {"content", "y"}}})),
            "messages[1].role", "the last message must be the user's");
  ExpectBad(Body(json::array({{{"role", "user"}}})), "messages[0].content", "required");
}

TEST(BadInputTest, SessionIdFromUserField) {
  auto r = ParseChatCompletionRequest(Body(json::array({User("x")}), {{"user", "bad id!"}}));
  ASSERT_TRUE(r.ok());
  r->turn.session_id = r->user;
  r->turn.session_field = "user";
  absl::Status s = ValidateTurnInput(r->turn, DefaultLimits());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ErrorJson(s)["error"]["param"], "user");
}

TEST(BadInputTest, HistoryOverLimit) {
  v1::Limits limits = DefaultLimits();
  limits.set_max_history_messages(2);
  ExpectBad(Body(json::array({User("a"), User("b"), User("c"), User("d")})), "history", "",
            limits);
}

TEST(ErrorJsonTest, Shapes) {
  json auth = ErrorJson(absl::UnauthenticatedError("invalid API key"))["error"];
  EXPECT_EQ(auth["type"], "authentication_error");
  EXPECT_EQ(auth["code"], "invalid_api_key");
  EXPECT_TRUE(auth["param"].is_null());
  EXPECT_EQ(auth["message"], "invalid API key");
  json rate = ErrorJson(absl::ResourceExhaustedError("slow down"))["error"];
  EXPECT_EQ(rate["type"], "rate_limit_error");
  EXPECT_EQ(rate["code"], "rate_limit_exceeded");
  json down = ErrorJson(absl::UnavailableError("session store: down"))["error"];
  EXPECT_EQ(down["type"], "server_error");
  EXPECT_EQ(down["code"], "unavailable");
  EXPECT_TRUE(down["param"].is_null());
  EXPECT_EQ(ErrorType(absl::StatusCode::kNotFound), "not_found_error");
}

TEST(CompletionJsonTest, Shape) {
  TurnResult result;
  chat::v1::ConverseResponse& r = result.response;
  r.set_session_id("s1");
  r.set_reply("Your order is on its way.");
  r.set_finish_reason("eos");
  r.mutable_state()->set_active_intent("track_order");
  r.mutable_state()->set_escalate(true);
  r.mutable_state()->set_escalation_reason("customer_request");
  (*r.mutable_state()->mutable_slots())["order_id"].set_value("12345678");
  r.mutable_usage()->set_prompt_tokens(10);
  r.mutable_usage()->set_completion_tokens(6);
  r.set_turn_index(2);
  r.set_request_id("req-1");
  r.add_degraded_stages("generation");
  r.set_degraded(true);
  auto* timing = r.add_timings();
  timing->set_stage("dst");
  timing->set_micros(1500);
  common::v1::Handoff& handoff = *r.mutable_handoff();
  handoff.set_status(common::v1::HANDOFF_STATUS_INITIATED);
  handoff.set_reason("customer_request");
  handoff.set_sequence(1);
  handoff.set_initiate_turn(2);
  handoff.mutable_initiate_time()->set_seconds(1700000000);
  handoff.mutable_summary()->set_text("Intent: track_order.");
  (*handoff.mutable_summary()->mutable_slots())["order_id"] = "12345678";
  auto* line = handoff.mutable_summary()->add_recent_lines();
  line->set_speaker("customer");
  line->set_text("a human please");
  line->set_turn_index(2);
  json body = CompletionJson(result, "chatcmpl-x", 1700000000, "helpline");
  EXPECT_EQ(body["object"], "chat.completion");
  EXPECT_EQ(body["id"], "chatcmpl-x");
  EXPECT_EQ(body["model"], "helpline");
  EXPECT_EQ(body["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(body["choices"][0]["message"]["content"], "Your order is on its way.");
  EXPECT_EQ(body["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(body["usage"]["total_tokens"], 16);
  const json& h = body["helpline"];
  EXPECT_EQ(h["session_id"], "s1");
  EXPECT_EQ(h["state"]["active_intent"], "track_order");
  EXPECT_EQ(h["state"]["slots"]["order_id"]["value"], "12345678");
  EXPECT_EQ(h["escalate"], true);
  EXPECT_EQ(h["handoff"]["status"], "initiated");
  EXPECT_EQ(h["handoff"]["reason"], "customer_request");
  EXPECT_EQ(h["handoff"]["sequence"], 1);
  EXPECT_EQ(h["handoff"]["initiate_time"], "2023-11-14T22:13:20Z");
  EXPECT_TRUE(h["handoff"]["accept_time"].is_null());
  EXPECT_TRUE(h["handoff"]["agent_id"].is_null());
  EXPECT_EQ(h["handoff"]["summary"]["text"], "Intent: track_order.");
  EXPECT_EQ(h["handoff"]["summary"]["slots"]["order_id"], "12345678");
  EXPECT_EQ(h["handoff"]["summary"]["recent_lines"][0]["speaker"], "customer");
  EXPECT_EQ(h["handoff"]["summary"]["recent_lines"][0]["turn_index"], 2);
  EXPECT_EQ(h["degraded_stages"], json::array({"generation"}));
  EXPECT_EQ(h["turn_index"], 2);
  EXPECT_EQ(h["timings"][0]["stage"], "dst");
  EXPECT_EQ(h["timings"][0]["micros"], 1500);
}

TEST(CompletionJsonTest, NoHandoffObjectWithoutAHandoff) {
  TurnResult result;
  result.response.set_reply("Hello!");
  json body = CompletionJson(result, "chatcmpl-y", 1700000000, "helpline");
  EXPECT_FALSE(body["helpline"].contains("handoff")) << body.dump();
}

TEST(HandoffBodyTest, AgentIdIsCheckedAndNamed) {
  EXPECT_EQ(*ParseHandoffActionBody(R"({"agent_id":"alice@desk"})", true), "alice@desk");
  EXPECT_EQ(*ParseHandoffActionBody("", false), "");
  EXPECT_EQ(*ParseHandoffActionBody("  ", false), "");
  EXPECT_EQ(*ParseHandoffActionBody(R"({"agent_id":null})", false), "");
  struct Case {
    std::string body;
    bool required;
    std::string message;
  };
  for (const Case& c : std::vector<Case>{
           {"", true, "agent_id: required"},
           {"{}", true, "agent_id: required"},
           {R"({"agent_id":7})", true, "agent_id: expected a string"},
           {R"({"agent_id":"a b"})", false, "agent_id: character byte 0x20 at offset 1"},
           {R"({"agent_id":")" + std::string(129, 'a') + R"("})", true,
            "agent_id: must be 1 to 128 characters, got 129"},
           {"[1]", true, "request body: expected a JSON object"},
           {"{", true, "malformed JSON body"},
           {"{\"agent_id\":\"caf\xE9\"}", true, "request body: not valid UTF-8"},
       }) {
    absl::StatusOr<std::string> parsed = ParseHandoffActionBody(c.body, c.required);
    ASSERT_FALSE(parsed.ok()) << c.body;
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << c.body;
    EXPECT_THAT(std::string(parsed.status().message()), HasSubstr(c.message)) << c.body;
  }
}

TEST(Utf8Test, Validator) {
  EXPECT_TRUE(IsValidUtf8("hello 你好 €"));
  EXPECT_FALSE(IsValidUtf8("\xC0\xAF"));          // Overlong.
  EXPECT_FALSE(IsValidUtf8("\xED\xA0\x80"));      // Surrogate.
  EXPECT_FALSE(IsValidUtf8("\xF4\x90\x80\x80"));  // > U+10FFFF.
  EXPECT_FALSE(IsValidUtf8("\xE4\xBD"));          // Truncated.
}

}  // namespace
}  // namespace helpline::gateway
