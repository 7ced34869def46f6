#include "common/log/log.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace helpline::log {
namespace {

std::atomic<int> g_min_level{static_cast<int>(Level::kInfo)};
std::mutex g_mu;
std::string g_service = "helpline";  // Guarded by g_mu.
thread_local std::string t_request_id;
thread_local std::string t_session_id;

const char* LevelName(Level level) {
  switch (level) {
    case Level::kDebug: return "debug";
    case Level::kInfo: return "info";
    case Level::kWarn: return "warn";
    case Level::kError: return "error";
  }
  return "info";
}

std::string NowRfc3339() {
  auto now = std::chrono::system_clock::now();
  std::time_t secs = std::chrono::system_clock::to_time_t(now);
  int millis = static_cast<int>(
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
  return buf;
}

}  // namespace

void Init(absl::string_view service, Level min_level) {
  std::lock_guard lock(g_mu);
  g_service = std::string(service);
  g_min_level = static_cast<int>(min_level);
}

bool ParseLevel(absl::string_view text, Level* level) {
  if (text == "debug") *level = Level::kDebug;
  else if (text == "info" || text.empty()) *level = Level::kInfo;
  else if (text == "warn") *level = Level::kWarn;
  else if (text == "error") *level = Level::kError;
  else return false;
  return true;
}

void SetLevel(Level level) { g_min_level = static_cast<int>(level); }

bool Enabled(Level level) { return static_cast<int>(level) >= g_min_level.load(); }

ScopedContext::ScopedContext(std::string request_id, std::string session_id)
    : saved_request_id_(std::move(t_request_id)), saved_session_id_(std::move(t_session_id)) {
  t_request_id = std::move(request_id);
  t_session_id = std::move(session_id);
}

ScopedContext::~ScopedContext() {
  t_request_id = std::move(saved_request_id_);
  t_session_id = std::move(saved_session_id_);
}

void Write(Level level, absl::string_view message, const nlohmann::json& fields) {
  nlohmann::json line = nlohmann::json::object();
  line["ts"] = NowRfc3339();
  line["level"] = LevelName(level);
  line["msg"] = std::string(message);
  if (!t_request_id.empty()) line["request_id"] = t_request_id;
  if (!t_session_id.empty()) line["session_id"] = t_session_id;
  if (fields.is_object()) {
    for (auto it = fields.begin(); it != fields.end(); ++it) line[it.key()] = it.value();
  }
  std::lock_guard lock(g_mu);
  line["service"] = g_service;
  // Invalid UTF-8 in a field must not abort the process: replace it.
  std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  text.push_back('\n');
  std::fwrite(text.data(), 1, text.size(), stderr);
  std::fflush(stderr);
}

}  // namespace helpline::log
