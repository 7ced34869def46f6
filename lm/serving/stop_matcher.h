// Matches stop sequences on streamed text, across token boundaries: text that could still
// be the start of a stop sequence is held back until it can no longer match.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace helpline::lm {

// One per candidate. Not thread-safe.
class StopMatcher {
 public:
  // Empty stop strings are ignored.
  explicit StopMatcher(std::vector<std::string> stops);

  // Appends a piece of decoded text and returns the text that is now safe to emit (may be
  // empty). After a match, returns the text before the stop sequence and stopped() is true;
  // later calls return "".
  std::string Push(absl::string_view piece);
  // The end of the stream: returns whatever is still held back (it did not match).
  std::string Flush();

  bool stopped() const { return stopped_; }
  // Byte offset, in the whole stream pushed so far, where the matched stop sequence starts
  // (valid once stopped()).
  size_t stop_offset() const { return stop_offset_; }
  // Bytes pushed so far.
  size_t pushed_bytes() const { return emitted_bytes_ + held_.size(); }

 private:
  std::vector<std::string> stops_;
  size_t longest_ = 0;
  std::string held_;           // pushed, not yet emitted
  size_t emitted_bytes_ = 0;   // bytes emitted (before held_)
  bool stopped_ = false;
  size_t stop_offset_ = 0;
};

}  // namespace helpline::lm
