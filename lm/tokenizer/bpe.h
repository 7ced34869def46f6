// GPT-2's byte-level BPE: the same ids as GPT-2's own encoder for any text, and decoding
// that streams valid UTF-8. Loads vocab.json + merges.txt (and the added special tokens of
// tokenizer_config.json / added_tokens.json / special_tokens_map.json when present).
//
// Thread-safe after Load (Encode may keep a per-call scratch; no shared mutable state, or a
// thread-safe cache).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace helpline::lm {

class BpeTokenizer {
 public:
  // Loads DIR/vocab.json and DIR/merges.txt. A missing or malformed file: an error naming
  // the file (and line or entry).
  static absl::StatusOr<std::unique_ptr<BpeTokenizer>> Load(const std::string& dir);

  // Text to ids. Special-token text such as "<|endoftext|>" is encoded as plain text
  // (as GPT-2's encode() does).
  std::vector<int32_t> Encode(absl::string_view text) const;
  // Like Encode, but the added special tokens found in the text become their ids.
  std::vector<int32_t> EncodeWithSpecialTokens(absl::string_view text) const;

  // The bytes of one token ("" for an id without a token).
  const std::string& TokenBytes(int32_t id) const;
  // Concatenated bytes of the ids (may end inside a UTF-8 character).
  std::string Decode(absl::Span<const int32_t> ids) const;

  // Number of ids (largest id + 1).
  int vocab_size() const;
  // Id of a token by its vocab.json string, e.g. "<|endoftext|>".
  std::optional<int32_t> TokenId(absl::string_view token) const;
  // The end-of-text id ("<|endoftext|>" or tokenizer_config's eos_token), if any.
  std::optional<int32_t> eos_id() const;
};

// Turns a stream of ids into UTF-8 text pieces that never split a character: bytes of an
// incomplete character are held back until the next id completes it. Invalid sequences
// become U+FFFD.
class StreamDecoder {
 public:
  explicit StreamDecoder(const BpeTokenizer& tokenizer);
  // The complete text that `id` makes available (may be empty).
  std::string Push(int32_t id);
  // Whatever is held back, as U+FFFD for an incomplete character.
  std::string Flush();
};

}  // namespace helpline::lm
