#include "lm/serving/placeholders.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace helpline::lm {

bool PlaceholdersAllowed(absl::string_view text, absl::Span<const std::string> allowed) {
  size_t pos = 0;
  while (true) {
    const size_t open = text.find("{{", pos);
    const size_t stray = text.find("}}", pos);
    if (stray != absl::string_view::npos && (open == absl::string_view::npos || stray < open)) {
      return false;  // closes nothing
    }
    if (open == absl::string_view::npos) return true;
    const size_t close = text.find("}}", open + 2);
    if (close == absl::string_view::npos) {
      const absl::string_view rest = text.substr(open + 2);
      return std::any_of(allowed.begin(), allowed.end(), [&](const std::string& name) {
        return absl::StartsWith(absl::StrCat(name, "}}"), rest);
      });
    }
    const absl::string_view name = text.substr(open + 2, close - open - 2);
    if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) return false;
    pos = close + 2;
  }
}

PlaceholderGuard::PlaceholderGuard(const BpeTokenizer& tokenizer, int vocab_size) {
  texts_.resize(static_cast<size_t>(std::max(0, vocab_size)));
  for (int32_t id = 0; id < vocab_size; ++id) {
    if (id >= tokenizer.vocab_size()) continue;
    texts_[static_cast<size_t>(id)] = tokenizer.Decode(absl::MakeConstSpan(&id, 1));
    const std::string& t = texts_[static_cast<size_t>(id)];
    if (t.find_first_of("{}") != std::string::npos) braced_.push_back(id);
  }
}

void PlaceholderGuard::Banned(absl::string_view so_far, absl::Span<const std::string> allowed,
                              std::vector<int32_t>& out) const {
  out.clear();
  // What a new piece is checked with: the open placeholder, or a last '{' or '}' that a
  // piece starting with the same brace would make an opening or a closing.
  absl::string_view context;
  const size_t open = so_far.rfind("{{");
  if (open != absl::string_view::npos && so_far.find("}}", open + 2) == absl::string_view::npos) {
    context = so_far.substr(open);
  } else if (absl::EndsWith(so_far, "{") || absl::EndsWith(so_far, "}")) {
    context = so_far.substr(so_far.size() - 1);
  }
  std::string probe(context);
  auto check = [&](int32_t id) {
    probe.resize(context.size());
    probe += texts_[static_cast<size_t>(id)];
    if (!PlaceholdersAllowed(probe, allowed)) out.push_back(id);
  };
  if (context.empty()) {
    for (int32_t id : braced_) check(id);
  } else {
    for (size_t id = 0; id < texts_.size(); ++id) check(static_cast<int32_t>(id));
  }
}

}  // namespace helpline::lm
