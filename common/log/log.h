// Structured logging: one JSON object per line on stderr.
//
// Every line carries time, level, message, the service name, and the request id and
// session id of the current thread's LogContext. Callers must never pass raw message text
// or other personal data as a field at info level or above.
//
// Thread-safe: lines are written whole under a mutex.
#pragma once

#include <string>
#include "absl/strings/string_view.h"

#include "nlohmann/json.hpp"

namespace helpline::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

// Sets the process-wide service name (e.g. "helpline-dst") and minimum level.
void Init(absl::string_view service, Level min_level);
// Parses "debug", "info", "warn" or "error"; false for anything else.
bool ParseLevel(absl::string_view text, Level* level);
void SetLevel(Level level);
bool Enabled(Level level);

// Request-scoped ids attached to every line logged on this thread while the scope lives.
// Scopes nest; the previous ids come back when a scope ends.
class ScopedContext {
 public:
  ScopedContext(std::string request_id, std::string session_id);
  ~ScopedContext();
  ScopedContext(const ScopedContext&) = delete;
  ScopedContext& operator=(const ScopedContext&) = delete;

 private:
  std::string saved_request_id_;
  std::string saved_session_id_;
};

void Write(Level level, absl::string_view message, const nlohmann::json& fields);

inline void Debug(absl::string_view m, const nlohmann::json& f = nlohmann::json::object()) {
  if (Enabled(Level::kDebug)) Write(Level::kDebug, m, f);
}
inline void Info(absl::string_view m, const nlohmann::json& f = nlohmann::json::object()) {
  if (Enabled(Level::kInfo)) Write(Level::kInfo, m, f);
}
inline void Warn(absl::string_view m, const nlohmann::json& f = nlohmann::json::object()) {
  if (Enabled(Level::kWarn)) Write(Level::kWarn, m, f);
}
inline void Error(absl::string_view m, const nlohmann::json& f = nlohmann::json::object()) {
  Write(Level::kError, m, f);
}

}  // namespace helpline::log
