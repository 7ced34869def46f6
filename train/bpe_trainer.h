// Learns GPT-2-style byte-level BPE merges from a text corpus, so that the result loads in
// lm::BpeTokenizer (vocab.json + merges.txt) and in llama.cpp (tokenizer.ggml.pre = gpt-2).
//
// The corpus is split at special-token text (e.g. "<|endoftext|>" between training
// examples), each stretch is cut into pieces by GPT-2's pre-tokenizer (lm/tokenizer's
// NextPieceEnd), and merges are learned over the distinct pieces weighted by their counts:
// repeatedly the most frequent adjacent pair is joined in every piece, left to right, as
// the tokenizer later applies it. Pair counts are kept incrementally (only the pieces that
// hold the chosen pair are revisited) with a lazily updated max-heap, so a 50 MB corpus
// trains in minutes on one core.
//
// Deterministic: ties between pairs of equal count go to the pair with the smaller left id,
// then the smaller right id (ids are themselves assigned deterministically).
//
// Thread-compatible: no shared state.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace helpline::train {

struct BpeTrainOptions {
  // Total ids: 256 byte tokens + merges + special tokens.
  int vocab_size = 8192;
  // Added after the learned tokens, in this order. The first is the end-of-text token.
  std::vector<std::string> special_tokens = {"<|endoftext|>"};
  // A pair seen fewer times than this is never merged (training stops early instead).
  int64_t min_pair_count = 2;
  // Progress on stderr every this many merges (0: quiet).
  int progress_every = 0;
};

struct BpeModel {
  // Bytes of each id: ids 0..255 are the single bytes in GPT-2's order (the order of
  // bytes_to_unicode), then one token per learned merge whose result is new, then the
  // special tokens.
  std::vector<std::string> tokens;
  // Merges in rank order, as pairs of ids.
  std::vector<std::pair<int32_t, int32_t>> merges;
  // Ids of special_tokens, in order.
  std::vector<int32_t> special_ids;
  // Statistics of the corpus.
  int64_t corpus_bytes = 0;
  int64_t pieces = 0;           // pre-tokenizer pieces (with repeats)
  int64_t distinct_pieces = 0;  // distinct pieces
};

// INVALID_ARGUMENT before reading anything when vocab_size < 256 + special tokens (or a
// special token is empty); NOT_FOUND naming the file that cannot be read; INVALID_ARGUMENT
// when the corpus holds no text besides special tokens.
absl::StatusOr<BpeModel> TrainBpe(const std::vector<std::string>& corpus_files,
                                  const BpeTrainOptions& options);
// The same on texts in memory (tests).
absl::StatusOr<BpeModel> TrainBpeOnTexts(const std::vector<std::string>& texts,
                                         const BpeTrainOptions& options);

// Writes DIR/vocab.json, DIR/merges.txt ("#version: 0.2" then one "left right" per line),
// DIR/special_tokens_map.json and DIR/tokenizer_config.json (eos/bos/unk = the first
// special token). Creates DIR. INTERNAL naming the file on a write error.
absl::Status WriteBpeModel(const BpeModel& model, const std::string& dir);

// The token's vocab.json string: its bytes in GPT-2's byte-to-unicode alphabet.
std::string ByteLevelString(absl::string_view bytes);

// Segments `text` by applying model.merges in rank order to every pre-tokenizer piece
// (the trainer's own view; special tokens are not recognised). For tests.
std::vector<int32_t> SegmentWithMerges(const BpeModel& model, absl::string_view text);

}  // namespace helpline::train
