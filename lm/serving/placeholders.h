// Keeping decoding to {{name}} placeholders that can be filled. A reply model writes
// {{slot}} where the dialogue state's value goes; a placeholder for a slot the state does not
// have can never be filled, and the reply filter then throws the whole reply away. With the
// allowed names known, the ids that would start, continue or close any other placeholder
// (or close one that was never opened) are banned while decoding.
//
// No model code; the guard is immutable after construction and thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "lm/tokenizer/bpe.h"

namespace helpline::lm {

// True when every "{{name}}" completed in `text` has an allowed name, no "}}" closes a
// placeholder that was not opened, and an unfinished "{{..." at the end is the beginning of
// "name}}" for an allowed name.
bool PlaceholdersAllowed(absl::string_view text, absl::Span<const std::string> allowed);

class PlaceholderGuard {
 public:
  // Decodes every id below vocab_size once.
  PlaceholderGuard(const BpeTokenizer& tokenizer, int vocab_size);

  // The ids that must not come next after the generated text `so_far`, given the allowed
  // names (cleared first). Outside a placeholder only ids whose text has a brace are
  // checked; inside one, every id.
  void Banned(absl::string_view so_far, absl::Span<const std::string> allowed,
              std::vector<int32_t>& out) const;

  // The text of one id ("" for ids the tokenizer does not know).
  const std::string& TokenText(int32_t id) const { return texts_[static_cast<size_t>(id)]; }

 private:
  std::vector<std::string> texts_;
  std::vector<int32_t> braced_;  // ids whose text has '{' or '}'
};

}  // namespace helpline::lm
