// Banking77, CLINC150, SNIPS and Bitext readers.
#include <algorithm>
#include <filesystem>
#include <map>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status/status.h"
#include "nlohmann/json.hpp"
#include "nlu/data/csv.h"
#include "nlu/data/read_util.h"
#include "nlu/data/readers.h"

namespace helpline::nlu::data {
namespace {

namespace fs = std::filesystem;
using internal::FileError;
using internal::LineError;
using internal::FindMaybeGz;
using internal::ResolveSplitFile;
using internal::ResolveSplitFolder;
using internal::SplitFile;

// Column name -> index of a CSV header; INVALID_ARGUMENT naming the missing required ones.
absl::StatusOr<std::map<std::string, size_t>> HeaderColumns(
    const std::vector<CsvRecord>& records, const std::vector<std::string>& required,
    const std::string& file) {
  if (records.empty()) return FileError(file, "empty file (no header)");
  std::map<std::string, size_t> columns;
  for (size_t i = 0; i < records[0].fields.size(); ++i) columns[records[0].fields[i]] = i;
  for (const std::string& name : required) {
    if (!columns.count(name)) {
      return LineError(file, 1, absl::StrCat("header has no '", name, "' column"));
    }
  }
  return columns;
}

absl::Status CheckFieldCount(const CsvRecord& record, size_t expected, const std::string& file) {
  if (record.fields.size() == expected) return absl::OkStatus();
  return LineError(file, record.line, absl::StrCat("expected ", expected, " fields, got ",
                                      record.fields.size()));
}

absl::StatusOr<UtteranceDataset> ReadBanking77(const std::string& path,
                                               const ReadOptions& options) {
  HELPLINE_ASSIGN_OR_RETURN(const SplitFile file, ResolveSplitFile(path, ".csv", options));
  HELPLINE_ASSIGN_OR_RETURN(const std::string content, ReadFileContent(file.path));
  HELPLINE_ASSIGN_OR_RETURN(const std::vector<CsvRecord> records, ParseCsv(content, file.path));
  HELPLINE_ASSIGN_OR_RETURN(auto columns, HeaderColumns(records, {"text", "category"}, file.path));
  UtteranceDataset data;
  data.format = "banking77";
  data.origin = file.path;
  data.split = file.split;
  for (size_t r = 1; r < records.size(); ++r) {
    const CsvRecord& record = records[r];
    HELPLINE_RETURN_IF_ERROR(CheckFieldCount(record, records[0].fields.size(), file.path));
    UtteranceExample example;
    example.origin = absl::StrCat(file.path, ":", record.line);
    example.text = record.fields[columns["text"]];
    example.intent = record.fields[columns["category"]];
    if (example.intent.empty()) return LineError(file.path, record.line, "empty category");
    data.examples.push_back(std::move(example));
  }
  return data;
}

absl::StatusOr<UtteranceDataset> ReadBitext(const std::string& path, const ReadOptions& options) {
  HELPLINE_ASSIGN_OR_RETURN(const SplitFile file, ResolveSplitFile(path, ".csv", options));
  HELPLINE_ASSIGN_OR_RETURN(const std::string content, ReadFileContent(file.path));
  HELPLINE_ASSIGN_OR_RETURN(const std::vector<CsvRecord> records, ParseCsv(content, file.path));
  HELPLINE_ASSIGN_OR_RETURN(auto columns,
                            HeaderColumns(records,
                                          {"utterance", "intent", "entity_type", "entity_value",
                                           "start_offset", "end_offset"},
                                          file.path));
  UtteranceDataset data;
  data.format = "bitext";
  data.origin = file.path;
  data.split = file.split;
  data.has_slots = true;
  for (size_t r = 1; r < records.size(); ++r) {
    const CsvRecord& record = records[r];
    HELPLINE_RETURN_IF_ERROR(CheckFieldCount(record, records[0].fields.size(), file.path));
    auto field = [&](const char* name) -> const std::string& {
      return record.fields[columns[name]];
    };
    auto error = [&](absl::string_view message) {
      return LineError(file.path, record.line, absl::StrCat(message));
    };
    UtteranceExample example;
    example.origin = absl::StrCat(file.path, ":", record.line);
    example.text = field("utterance");
    example.intent = field("intent");
    if (example.intent.empty()) return error("empty intent");
    const std::string& type = field("entity_type");
    if (!type.empty()) {
      size_t start = 0;
      size_t end = 0;
      if (!absl::SimpleAtoi(field("start_offset"), &start) ||
          !absl::SimpleAtoi(field("end_offset"), &end)) {
        return error(absl::StrCat("entity '", type, "' without numeric start_offset/end_offset"));
      }
      // Offsets count code points (Python string indices); ours are bytes.
      const long begin_byte = internal::CodePointToByte(example.text, start);
      const long end_byte = internal::CodePointToByte(example.text, end);
      if (start >= end || begin_byte < 0 || end_byte < 0) {
        return error(absl::StrCat("entity span [", start, ", ", end,
                                  ") outside the utterance or empty"));
      }
      example.spans.push_back({type, static_cast<size_t>(begin_byte),
                               static_cast<size_t>(end_byte), field("entity_value")});
    }
    data.examples.push_back(std::move(example));
  }
  return data;
}

// CLINC150: JSON objects {"train": [[text, label], ...], "oos_train": [...], "val": ...}.
absl::StatusOr<UtteranceDataset> ReadClinc150(const std::string& path,
                                              const ReadOptions& options) {
  HELPLINE_ASSIGN_OR_RETURN(const std::string requested, internal::CanonicalSplit(options.split));
  std::vector<std::string> files;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    HELPLINE_ASSIGN_OR_RETURN(const std::vector<fs::path> entries, internal::ListFolder(path));
    std::vector<std::string> data_files;
    std::vector<std::string> other_files;
    for (const fs::path& entry : entries) {
      const std::string name = internal::NameWithoutGz(entry);
      if (!absl::EndsWith(name, ".json") || name == "domains.json") continue;
      (absl::StartsWith(name, "data") ? data_files : other_files).push_back(entry.string());
    }
    // data_full_*.json are the splits; other JSON files (oos_plus_oos_train.json) are
    // variants, read only when there is nothing else.
    files = data_files.empty() ? other_files : data_files;
    if (files.empty()) return absl::NotFoundError(absl::StrCat(path, ": no CLINC150 JSON files"));
  } else {
    if (!fs::exists(path, ec)) return absl::NotFoundError(absl::StrCat(path, ": no such file"));
    files.push_back(path);
  }
  // Split -> the (file, key) lists that hold it, in-scope key first.
  struct Part {
    std::string file;
    std::string key;
    nlohmann::json items;
  };
  std::map<std::string, std::vector<Part>> parts;
  for (const std::string& file : files) {
    HELPLINE_ASSIGN_OR_RETURN(const std::string content, ReadFileContent(file));
    nlohmann::json doc;
    try {
      doc = nlohmann::json::parse(content);
    } catch (const nlohmann::json::exception& e) {
      return FileError(file, e.what());
    }
    if (!doc.is_object()) return FileError(file, "expected a JSON object of splits");
    for (auto& [key, items] : doc.items()) {
      const bool oos = absl::StartsWith(key, "oos_");
      absl::StatusOr<std::string> split =
          internal::CanonicalSplit(oos ? absl::string_view(key).substr(4) : key);
      if (!split.ok() || split->empty()) continue;  // Keys of other variants.
      if (!items.is_array()) return FileError(file, absl::StrCat(key, ": expected a list"));
      parts[*split].push_back({file, key, std::move(items)});
    }
  }
  std::vector<std::string> available;
  for (const auto& [split, list] : parts) available.push_back(split);
  HELPLINE_ASSIGN_OR_RETURN(const std::string split,
                            internal::PickSplit(available, requested, path));
  UtteranceDataset data;
  data.format = "clinc150";
  data.origin = path;
  data.split = split;
  data.oos_label = "oos";
  std::stable_sort(parts[split].begin(), parts[split].end(), [](const Part& a, const Part& b) {
    return !absl::StartsWith(a.key, "oos_") && absl::StartsWith(b.key, "oos_");
  });
  for (const Part& part : parts[split]) {
    for (size_t i = 0; i < part.items.size(); ++i) {
      const nlohmann::json& item = part.items[i];
      const std::string where = absl::StrCat(part.key, "[", i, "]");
      if (!item.is_array() || item.size() != 2 || !item[0].is_string() || !item[1].is_string()) {
        return FileError(part.file, absl::StrCat(where, ": expected [text, label]"));
      }
      UtteranceExample example;
      example.origin = absl::StrCat(part.file, ": ", where);
      example.text = item[0].get<std::string>();
      example.intent = item[1].get<std::string>();
      if (example.intent.empty()) return FileError(part.file, absl::StrCat(where, ": empty label"));
      example.in_scope = example.intent != data.oos_label;
      data.examples.push_back(std::move(example));
    }
  }
  return data;
}

// The lines of a file (without line ends); a final line end adds no empty line.
std::vector<std::string> Lines(const std::string& content) {
  std::vector<std::string> lines = absl::StrSplit(content, '\n');
  if (!lines.empty() && lines.back().empty()) lines.pop_back();
  for (std::string& line : lines) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
  }
  return lines;
}

absl::StatusOr<UtteranceDataset> ReadSnips(const std::string& path, const ReadOptions& options) {
  HELPLINE_ASSIGN_OR_RETURN(const SplitFile folder, ResolveSplitFolder(path, "seq.in", options));
  std::vector<std::string> files;
  std::vector<std::vector<std::string>> lines;
  for (const char* name : {"seq.in", "seq.out", "label"}) {
    const std::string file = FindMaybeGz(folder.path, name);
    if (file.empty()) {
      return absl::NotFoundError(absl::StrCat(folder.path, ": no ", name, " file"));
    }
    HELPLINE_ASSIGN_OR_RETURN(const std::string content, ReadFileContent(file));
    files.push_back(file);
    lines.push_back(Lines(content));
  }
  for (size_t f = 1; f < 3; ++f) {
    if (lines[f].size() != lines[0].size()) {
      return FileError(files[f], absl::StrCat(lines[f].size(), " lines, but ", files[0], " has ",
                                              lines[0].size()));
    }
  }
  UtteranceDataset data;
  data.format = "snips";
  data.origin = folder.path;
  data.split = folder.split;
  data.has_slots = true;
  for (size_t i = 0; i < lines[0].size(); ++i) {
    const size_t line = i + 1;
    UtteranceExample example;
    example.origin = absl::StrCat(files[0], ":", line);
    example.tokens = absl::StrSplit(lines[0][i], ' ', absl::SkipEmpty());
    example.tags = absl::StrSplit(lines[1][i], ' ', absl::SkipEmpty());
    example.intent = std::string(absl::StripAsciiWhitespace(lines[2][i]));
    if (example.tokens.empty()) return LineError(files[0], line, "empty utterance");
    if (example.intent.empty()) return LineError(files[2], line, "empty label");
    absl::StatusOr<std::vector<SlotSpan>> spans = SpansFromIob(example.tokens, example.tags);
    if (!spans.ok()) {
      return LineError(files[1], line, absl::StrCat(spans.status().message()));
    }
    example.spans = *std::move(spans);
    example.text = absl::StrJoin(example.tokens, " ");
    data.examples.push_back(std::move(example));
  }
  return data;
}

}  // namespace

absl::StatusOr<UtteranceDataset> ReadUtterances(const std::string& path, Format format,
                                                const ReadOptions& options) {
  switch (format) {
    case Format::kBanking77:
      return ReadBanking77(path, options);
    case Format::kClinc150:
      return ReadClinc150(path, options);
    case Format::kSnips:
      return ReadSnips(path, options);
    case Format::kBitext:
      return ReadBitext(path, options);
    case Format::kSgd:
    case Format::kMultiwoz21:
      break;
  }
  return absl::InvalidArgumentError(
      absl::StrCat(FormatName(format), " is a dialogue format, not an utterance format"));
}

}  // namespace helpline::nlu::data
