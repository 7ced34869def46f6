#include "lm/serving/stop_matcher.h"

#include <algorithm>
#include <utility>

namespace helpline::lm {

StopMatcher::StopMatcher(std::vector<std::string> stops) {
  for (std::string& stop : stops) {
    if (stop.empty()) continue;
    longest_ = std::max(longest_, stop.size());
    stops_.push_back(std::move(stop));
  }
}

std::string StopMatcher::Push(absl::string_view piece) {
  if (stopped_) return "";
  held_.append(piece.data(), piece.size());
  if (stops_.empty()) {
    std::string out = std::move(held_);
    held_.clear();
    emitted_bytes_ += out.size();
    return out;
  }
  // Any match starts inside held_: whatever was emitted before could no longer begin one.
  // The earliest match wins; at one position, the stop listed first.
  size_t match = std::string::npos;
  for (const std::string& stop : stops_) {
    const size_t at = held_.find(stop);
    if (at < match) match = at;
  }
  if (match != std::string::npos) {
    stopped_ = true;
    stop_offset_ = emitted_bytes_ + match;
    std::string out = held_.substr(0, match);
    emitted_bytes_ += out.size();
    held_.clear();
    return out;
  }
  // Hold back the longest suffix that is a proper prefix of some stop sequence.
  size_t hold = 0;
  const size_t max_hold = std::min(held_.size(), longest_ - 1);
  for (size_t len = max_hold; len > 0 && hold == 0; --len) {
    const absl::string_view suffix(held_.data() + held_.size() - len, len);
    for (const std::string& stop : stops_) {
      if (stop.size() > len && absl::string_view(stop).substr(0, len) == suffix) {
        hold = len;
        break;
      }
    }
  }
  std::string out = held_.substr(0, held_.size() - hold);
  held_.erase(0, out.size());
  emitted_bytes_ += out.size();
  return out;
}

std::string StopMatcher::Flush() {
  if (stopped_) return "";
  std::string out = std::move(held_);
  held_.clear();
  emitted_bytes_ += out.size();
  return out;
}

}  // namespace helpline::lm
