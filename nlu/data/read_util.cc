#include "nlu/data/read_util.h"

#include <algorithm>
#include <map>
#include <system_error>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "common/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace helpline::nlu::data::internal {

absl::StatusOr<std::string> CanonicalSplit(absl::string_view split) {
  const std::string s = absl::AsciiStrToLower(split);
  if (s.empty() || s == "train" || s == "test") return s;
  if (s == "dev" || s == "val" || s == "valid" || s == "validation") return std::string("dev");
  return absl::InvalidArgumentError(
      absl::StrCat("unknown split '", split, "' (train, dev/val/valid, test)"));
}

std::string SplitOfName(absl::string_view name) {
  const size_t end = name.find_first_of("._-");
  const absl::StatusOr<std::string> split =
      CanonicalSplit(name.substr(0, end == absl::string_view::npos ? name.size() : end));
  return split.ok() ? *split : "";
}

absl::StatusOr<std::string> PickSplit(const std::vector<std::string>& available,
                                      const std::string& requested, const std::string& where) {
  auto has = [&](const std::string& s) {
    return std::find(available.begin(), available.end(), s) != available.end();
  };
  if (!requested.empty()) {
    if (has(requested)) return requested;
  } else {
    if (has("test")) return std::string("test");
    if (has("dev")) return std::string("dev");
    if (available.size() == 1) return available.front();
  }
  return absl::NotFoundError(absl::StrCat(where, ": no ",
                                          requested.empty() ? "test or dev" : requested,
                                          " split (found: ", absl::StrJoin(available, ", "),
                                          available.empty() ? "nothing" : "", ")"));
}

absl::StatusOr<std::vector<std::filesystem::path>> ListFolder(const std::filesystem::path& dir) {
  std::error_code ec;
  std::vector<std::filesystem::path> out;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    out.push_back(it->path());
  }
  if (ec) return absl::NotFoundError(absl::StrCat(dir.string(), ": ", ec.message()));
  std::sort(out.begin(), out.end());
  return out;
}

std::string NameWithoutGz(const std::filesystem::path& path) {
  std::string name = path.filename().string();
  if (name.size() > 3 && name.compare(name.size() - 3, 3, ".gz") == 0) name.resize(name.size() - 3);
  return name;
}

std::string LastComponent(const std::string& path) {
  std::filesystem::path p = std::filesystem::path(path).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  return p.filename().string();
}

absl::Status FileError(const std::string& file, absl::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat(file, ": ", message));
}

absl::Status LineError(const std::string& file, size_t line, absl::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat(file, ":", line, ": ", message));
}

long CodePointToByte(absl::string_view text, size_t chars) {
  size_t pos = 0;
  for (size_t i = 0; i < chars; ++i) {
    if (pos >= text.size()) return -1;
    const auto lead = static_cast<unsigned char>(text[pos]);
    size_t len = lead < 0x80 ? 1 : lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    pos = std::min(text.size(), pos + len);
  }
  return static_cast<long>(pos);
}

absl::StatusOr<SplitFile> ResolveSplitFile(const std::string& path, absl::string_view extension,
                                           const ReadOptions& options) {
  HELPLINE_ASSIGN_OR_RETURN(const std::string requested, CanonicalSplit(options.split));
  std::error_code ec;
  if (!std::filesystem::is_directory(path, ec)) {
    if (!std::filesystem::exists(path, ec)) return absl::NotFoundError(absl::StrCat(path, ": no such file"));
    return SplitFile{path, SplitOfName(std::filesystem::path(path).filename().string())};
  }
  HELPLINE_ASSIGN_OR_RETURN(const std::vector<std::filesystem::path> entries, ListFolder(path));
  std::map<std::string, std::string> by_split;
  for (const std::filesystem::path& entry : entries) {
    const std::string name = NameWithoutGz(entry);
    if (!absl::EndsWith(name, extension) || std::filesystem::is_directory(entry, ec)) continue;
    const std::string split = SplitOfName(name);
    if (!split.empty() && !by_split.count(split)) by_split[split] = entry.string();
  }
  std::vector<std::string> available;
  for (const auto& [split, file] : by_split) available.push_back(split);
  HELPLINE_ASSIGN_OR_RETURN(const std::string split,
                            PickSplit(available, requested, path));
  return SplitFile{by_split[split], split};
}

std::string FindMaybeGz(const std::filesystem::path& dir, const std::string& name) {
  std::error_code ec;
  if (std::filesystem::is_regular_file(dir / name, ec)) return (dir / name).string();
  if (std::filesystem::is_regular_file(dir / (name + ".gz"), ec)) return (dir / (name + ".gz")).string();
  return "";
}

absl::StatusOr<SplitFile> ResolveSplitFolder(const std::string& path, const std::string& marker,
                                             const ReadOptions& options) {
  HELPLINE_ASSIGN_OR_RETURN(const std::string requested, CanonicalSplit(options.split));
  std::error_code ec;
  if (!std::filesystem::is_directory(path, ec)) {
    return absl::NotFoundError(absl::StrCat(path, ": not a folder"));
  }
  if (!FindMaybeGz(path, marker).empty()) {
    return SplitFile{path, SplitOfName(LastComponent(path))};
  }
  HELPLINE_ASSIGN_OR_RETURN(const std::vector<std::filesystem::path> entries, ListFolder(path));
  std::map<std::string, std::string> by_split;
  for (const std::filesystem::path& entry : entries) {
    const std::string split = SplitOfName(entry.filename().string());
    if (split.empty() || by_split.count(split) || FindMaybeGz(entry, marker).empty()) continue;
    by_split[split] = entry.string();
  }
  std::vector<std::string> available;
  for (const auto& [split, dir] : by_split) available.push_back(split);
  HELPLINE_ASSIGN_OR_RETURN(const std::string split,
                            PickSplit(available, requested, path));
  return SplitFile{by_split[split], split};
}

}  // namespace helpline::nlu::data::internal
