// A CSV parser for RFC-4180 files (comma separated; fields may be double-quoted, with ""
// for a quote and commas or line breaks inside; LF or CRLF line ends).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace helpline::nlu::data {

struct CsvRecord {
  // 1-based line of the file where the record starts.
  int line = 0;
  std::vector<std::string> fields;
};

// Every record of `content` (the header, when there is one, is records[0]). Blank lines
// are skipped. INVALID_ARGUMENT "<origin>:<line>: ..." for an unterminated quoted field or
// text between a closing quote and the next comma.
absl::StatusOr<std::vector<CsvRecord>> ParseCsv(absl::string_view content,
                                                absl::string_view origin);

}  // namespace helpline::nlu::data
