// Helpers shared by the readers (not part of the public API).
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlu/data/readers.h"

namespace helpline::nlu::data::internal {

// "train", "dev", "test" for the names of ReadOptions::split ("" stays ""); INVALID_ARGUMENT
// otherwise.
absl::StatusOr<std::string> CanonicalSplit(absl::string_view split);

// The split a file or folder name stands for ("train.csv" -> "train", "valid" -> "dev",
// "dev_from_val.json.gz" -> "dev"): the name's leading word before '.', '_' or '-'; "" when
// it is none of train/dev/val/valid/validation/test.
std::string SplitOfName(absl::string_view name);

// Picks the split to read among `available` (canonical names): the requested one, or for
// "" test, else dev, else the only one. NOT_FOUND naming `where` and what is there.
absl::StatusOr<std::string> PickSplit(const std::vector<std::string>& available,
                                      const std::string& requested, const std::string& where);

// The entries of a folder, sorted by name. NOT_FOUND when it cannot be listed.
absl::StatusOr<std::vector<std::filesystem::path>> ListFolder(const std::filesystem::path& dir);

// The file name without a ".gz" suffix.
std::string NameWithoutGz(const std::filesystem::path& path);

// The last component of a path, ignoring a trailing slash ("a/train/" -> "train").
std::string LastComponent(const std::string& path);

// "<file>: <message>" as INVALID_ARGUMENT.
absl::Status FileError(const std::string& file, absl::string_view message);

// "<file>:<line>: <message>" as INVALID_ARGUMENT.
absl::Status LineError(const std::string& file, size_t line, absl::string_view message);

// Byte offset of the `chars`-th code point of UTF-8 `text` (Python string index); -1 when
// the text has fewer code points.
long CodePointToByte(absl::string_view text, size_t chars);

// A file or folder of one split, and that split's name ("" when unknown).
struct SplitFile {
  std::string path;
  std::string split;
};

// `path` itself when it is a file; in a folder, the file of the split to read among those
// named <split>*<extension>[.gz].
absl::StatusOr<SplitFile> ResolveSplitFile(const std::string& path, absl::string_view extension,
                                           const ReadOptions& options);

// `path` itself when it holds `marker` (e.g. "seq.in", "schema.json", maybe gzipped); else
// the subfolder of the split to read among those named <split>* that hold `marker`.
absl::StatusOr<SplitFile> ResolveSplitFolder(const std::string& path, const std::string& marker,
                                             const ReadOptions& options);

// "<dir>/<name>" or "<dir>/<name>.gz", whichever exists ("" when neither).
std::string FindMaybeGz(const std::filesystem::path& dir, const std::string& name);

}  // namespace helpline::nlu::data::internal
