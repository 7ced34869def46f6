// The BPE merge loop on token ids. Internal to lm_tokenizer; in a header for tests.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>

#include "absl/container/flat_hash_map.h"

namespace helpline::lm::bpe_internal {

// Merge rules by the pair of ids they join: rank (line order in merges.txt, lower merges
// first) and the id of the joined token.
class MergeTable {
 public:
  static constexpr uint32_t kNoRank = std::numeric_limits<uint32_t>::max();
  struct Merge {
    uint32_t rank = kNoRank;
    int32_t id = -1;
  };

  // False when the pair is already present (the table keeps the first).
  bool Add(int32_t left, int32_t right, uint32_t rank, int32_t id) {
    return map_.try_emplace(Key(left, right), Merge{rank, id}).second;
  }
  // The merge of (left, right), or {kNoRank, -1}.
  Merge Find(int32_t left, int32_t right) const {
    auto it = map_.find(Key(left, right));
    return it == map_.end() ? Merge{} : it->second;
  }
  size_t size() const { return map_.size(); }

 private:
  static uint64_t Key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) |
           static_cast<uint32_t>(right);
  }
  absl::flat_hash_map<uint64_t, Merge> map_;
};

// Applies the merges to symbols[0..n) in place and returns the new length, in GPT-2's
// order: take the lowest-ranked adjacent pair, join every non-overlapping occurrence of
// it from left to right, repeat until no adjacent pair has a merge. (Merging only the
// leftmost occurrence each time, as tiktoken does, is the same for merge lists where a
// joined token never ranks below its parts; this order is exact for any list.)
// Picks a linear scan for short words and a heap for long ones.
size_t MergeSymbols(const MergeTable& merges, int32_t* symbols, size_t n);

// The two strategies, exposed so that tests can check they agree.
inline constexpr size_t kLinearMergeMax = 48;
size_t MergeSymbolsLinear(const MergeTable& merges, int32_t* symbols,
                          size_t n);  // n <= kLinearMergeMax
size_t MergeSymbolsHeap(const MergeTable& merges, int32_t* symbols, size_t n);

}  // namespace helpline::lm::bpe_internal
