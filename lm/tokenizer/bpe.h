// GPT-2's byte-level BPE: the same ids as GPT-2's own encoder for any text, and decoding
// that streams valid UTF-8. Loads vocab.json + merges.txt (and the added special tokens of
// tokenizer_config.json / added_tokens.json / special_tokens_map.json when present).
//
// Thread-safe after Load: every method is const; Encode keeps its scratch on the stack and
// a small cache of recently merged pieces per thread, so any number of threads may encode
// and decode with one tokenizer at once, without locks.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace helpline::lm {

namespace bpe_internal {
struct TokenizerData;  // Defined in bpe.cc.
}  // namespace bpe_internal

class BpeTokenizer {
 public:
  // Loads DIR/vocab.json (or GPT-2's original name, encoder.json) and DIR/merges.txt (or
  // vocab.bpe); the Hugging Face names win when both exist. Added tokens come from
  // tokenizer_config.json (added_tokens_decoder, eos_token, ...), added_tokens.json and
  // special_tokens_map.json when present; "<|endoftext|>" in the vocab is always special.
  // Errors: NOT_FOUND when a required file is missing; INVALID_ARGUMENT naming the file and
  // the line or entry for malformed content (bad JSON, a non-integer or duplicate id, a
  // token outside GPT-2's byte alphabet, a merges line that is not "left right", a merge
  // whose parts or result are not in the vocab, a duplicate merge). Never crashes on bad
  // files. Blocks on file I/O (~50 ms for GPT-2's files).
  static absl::StatusOr<std::unique_ptr<BpeTokenizer>> Load(const std::string& dir);

  ~BpeTokenizer();
  BpeTokenizer(const BpeTokenizer&) = delete;
  BpeTokenizer& operator=(const BpeTokenizer&) = delete;

  // Text to ids. Special-token text such as "<|endoftext|>" is encoded as plain text
  // (as GPT-2's encode() does). `text` should be UTF-8; a byte that is not part of a
  // well-formed UTF-8 sequence is treated as one punctuation-like character and encoded
  // as its byte token (as Python would after decoding with "surrogateescape").
  std::vector<int32_t> Encode(absl::string_view text) const;
  // Like Encode, but the added special tokens found in the text become their ids
  // (leftmost match first, the longest token when several start at the same byte).
  std::vector<int32_t> EncodeWithSpecialTokens(absl::string_view text) const;
  // Appends the ids of `text` to `ids` (Encode without the allocation of a new vector).
  void EncodeTo(absl::string_view text, std::vector<int32_t>& ids) const;

  // The bytes of one token ("" for an id without a token).
  const std::string& TokenBytes(int32_t id) const;
  // Concatenated bytes of the ids (may end inside a UTF-8 character).
  std::string Decode(absl::Span<const int32_t> ids) const;
  // Decode, then every ill-formed UTF-8 sequence replaced by U+FFFD (as Python's
  // bytes.decode("utf-8", errors="replace") does, which is what GPT-2's decode() uses).
  std::string DecodeText(absl::Span<const int32_t> ids) const;

  // Number of ids (largest id + 1).
  int vocab_size() const;
  // Id of a token by its vocab.json string, e.g. "<|endoftext|>" or "Ġthe", or by the
  // content of an added token.
  std::optional<int32_t> TokenId(absl::string_view token) const;
  // The end-of-text id ("<|endoftext|>" or tokenizer_config's eos_token), if any.
  std::optional<int32_t> eos_id() const;
  // Whether `id` is an added special token (e.g. <|endoftext|>).
  bool IsSpecial(int32_t id) const;

 private:
  explicit BpeTokenizer(std::unique_ptr<const bpe_internal::TokenizerData> data);
  std::unique_ptr<const bpe_internal::TokenizerData> data_;
};

// Turns a stream of ids into UTF-8 text pieces that never split a character: bytes of an
// incomplete character are held back until the next id completes it. Invalid sequences
// become U+FFFD. The concatenation of all pieces and Flush() equals
// tokenizer.DecodeText(all ids). Not thread-safe (one per stream); the tokenizer must
// outlive it. Copyable and movable.
class StreamDecoder {
 public:
  explicit StreamDecoder(const BpeTokenizer& tokenizer);
  // The complete text that `id` makes available (may be empty).
  std::string Push(int32_t id);
  // Whatever is held back, as U+FFFD for an incomplete character.
  std::string Flush();

 private:
  const BpeTokenizer* tokenizer_;
  std::string pending_;  // At most 3 bytes: the start of an incomplete character.
};

// Replaces every ill-formed UTF-8 sequence in `bytes` by U+FFFD, one per maximal subpart
// (the Unicode / WHATWG / Python convention), and appends the result to `out`. When
// `hold_incomplete` is true, a truncated but so far well-formed sequence at the end is not
// replaced: its length is returned and it is not appended (the caller keeps it).
size_t AppendValidUtf8(absl::string_view bytes, bool hold_incomplete, std::string& out);

// GPT-2's bytes_to_unicode(): the code point each byte is written as in vocab.json and
// merges.txt (printable bytes stand for themselves, the other 68 for U+0100.. in byte order).
// Shared with the BPE trainer, which must write the same alphabet.
const std::array<uint32_t, 256>& ByteToCodePoint();

// Appends the UTF-8 encoding of `cp` (a valid scalar value) to `out`.
void AppendUtf8(uint32_t cp, std::string& out);

}  // namespace helpline::lm
