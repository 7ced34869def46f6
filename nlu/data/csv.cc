#include "nlu/data/csv.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace helpline::nlu::data {

absl::StatusOr<std::vector<CsvRecord>> ParseCsv(absl::string_view content,
                                                absl::string_view origin) {
  std::vector<CsvRecord> records;
  size_t pos = 0;
  int line = 1;
  const size_t n = content.size();
  while (pos < n) {
    // Blank lines carry no record.
    if (content[pos] == '\n' || content[pos] == '\r') {
      if (content[pos] == '\n') ++line;
      ++pos;
      continue;
    }
    CsvRecord record;
    record.line = line;
    while (true) {
      std::string field;
      if (pos < n && content[pos] == '"') {
        const int quote_line = line;
        ++pos;
        bool closed = false;
        while (pos < n) {
          const char c = content[pos];
          if (c == '"') {
            if (pos + 1 < n && content[pos + 1] == '"') {
              field.push_back('"');
              pos += 2;
              continue;
            }
            ++pos;
            closed = true;
            break;
          }
          if (c == '\n') ++line;
          field.push_back(c);
          ++pos;
        }
        if (!closed) {
          return absl::InvalidArgumentError(
              absl::StrCat(origin, ":", quote_line, ": unterminated quoted field"));
        }
        if (pos < n && content[pos] != ',' && content[pos] != '\n' && content[pos] != '\r') {
          return absl::InvalidArgumentError(
              absl::StrCat(origin, ":", line, ": text after a closing quote"));
        }
      } else {
        while (pos < n && content[pos] != ',' && content[pos] != '\n' && content[pos] != '\r') {
          if (content[pos] == '"') {
            return absl::InvalidArgumentError(
                absl::StrCat(origin, ":", line, ": quote inside an unquoted field"));
          }
          field.push_back(content[pos++]);
        }
      }
      record.fields.push_back(std::move(field));
      if (pos < n && content[pos] == ',') {
        ++pos;
        continue;
      }
      // End of record: CRLF, LF, lone CR or end of input.
      if (pos < n && content[pos] == '\r') ++pos;
      if (pos < n && content[pos] == '\n') {
        ++pos;
        ++line;
      }
      break;
    }
    records.push_back(std::move(record));
  }
  return records;
}

}  // namespace helpline::nlu::data
