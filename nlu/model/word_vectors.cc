#include "nlu/model/word_vectors.h"

#include <cerrno>
#include <cstdlib>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "nlu/model/featurizer.h"

namespace helpline::nlu::model {

absl::StatusOr<WordVectors> WordVectors::Read(const std::string& path, size_t max_words) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open word vectors"));
  WordVectors out;
  out.origin_ = path;
  std::string line;
  size_t line_no = 0;
  std::vector<float> row;
  while (std::getline(in, line)) {
    ++line_no;
    if (max_words > 0 && out.words_.size() >= max_words) break;
    if (line.empty()) continue;
    const size_t space = line.find(' ');
    if (space == std::string::npos || space == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", line_no, ": expected a word followed by its values"));
    }
    row.clear();
    const char* p = line.c_str() + space;
    const char* end = line.c_str() + line.size();
    while (p < end) {
      while (p < end && *p == ' ') ++p;
      if (p >= end) break;
      char* next = nullptr;
      errno = 0;
      const float v = std::strtof(p, &next);
      if (next == p || errno == ERANGE || (next < end && *next != ' ')) {
        return absl::InvalidArgumentError(absl::StrCat(
            path, ":", line_no, ": value ", row.size() + 1, " is not a number"));
      }
      row.push_back(v);
      p = next;
    }
    if (out.dim_ == 0) {
      if (row.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(path, ":", line_no, ": no values"));
      }
      out.dim_ = static_cast<int64_t>(row.size());
    } else if (static_cast<int64_t>(row.size()) != out.dim_) {
      return absl::InvalidArgumentError(absl::StrCat(path, ":", line_no, ": ", row.size(),
                                                     " values, the first line has ", out.dim_));
    }
    const std::vector<Token> tokens = Tokenize(absl::string_view(line).substr(0, space));
    if (tokens.size() != 1) continue;
    if (!out.index_.try_emplace(tokens[0].norm, out.words_.size()).second) continue;
    out.words_.push_back(tokens[0].norm);
    out.values_.insert(out.values_.end(), row.begin(), row.end());
  }
  if (out.words_.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": no word vectors"));
  }
  return out;
}

const float* WordVectors::Find(absl::string_view norm) const {
  auto it = index_.find(norm);
  return it == index_.end() ? nullptr : values_.data() + it->second * dim_;
}

}  // namespace helpline::nlu::model
