#include "lm/tokenizer/bpe_merge.h"

#include <algorithm>
#include <array>
#include <functional>
#include <queue>
#include <vector>

namespace helpline::lm::bpe_internal {

size_t MergeSymbols(const MergeTable& merges, int32_t* symbols, size_t n) {
  if (n < 2) return n;
  if (n <= kLinearMergeMax) return MergeSymbolsLinear(merges, symbols, n);
  return MergeSymbolsHeap(merges, symbols, n);
}

size_t MergeSymbolsLinear(const MergeTable& merges, int32_t* s, size_t n) {
  if (n < 2) return n;
  // rank[i] / joined[i]: the merge of the pair (s[i], s[i + 1]).
  std::array<uint32_t, kLinearMergeMax> rank;
  std::array<int32_t, kLinearMergeMax> joined;
  for (size_t i = 0; i + 1 < n; ++i) {
    const MergeTable::Merge m = merges.Find(s[i], s[i + 1]);
    rank[i] = m.rank;
    joined[i] = m.id;
  }
  while (n > 1) {
    size_t i = 0;
    uint32_t best = MergeTable::kNoRank;
    for (size_t j = 0; j + 1 < n; ++j) {
      if (rank[j] < best) {
        best = rank[j];
        i = j;
      }
    }
    if (best == MergeTable::kNoRank) break;
    // Join every occurrence of that pair (the same rank is the same pair) from the
    // leftmost on; a joined token's new pairs never have this rank, so scanning on from
    // i + 1 skips overlapping occurrences exactly as GPT-2's loop does.
    while (i + 1 < n) {
      if (rank[i] != best) {
        ++i;
        continue;
      }
      s[i] = joined[i];
      // Remove symbol i + 1 and the pair that started at it.
      for (size_t j = i + 1; j + 1 < n; ++j) s[j] = s[j + 1];
      for (size_t j = i + 1; j + 2 < n; ++j) {
        rank[j] = rank[j + 1];
        joined[j] = joined[j + 1];
      }
      --n;
      if (i > 0) {
        const MergeTable::Merge m = merges.Find(s[i - 1], s[i]);
        rank[i - 1] = m.rank;
        joined[i - 1] = m.id;
      }
      if (i + 1 < n) {
        const MergeTable::Merge m = merges.Find(s[i], s[i + 1]);
        rank[i] = m.rank;
        joined[i] = m.id;
      }
      ++i;
    }
  }
  return n;
}

size_t MergeSymbolsHeap(const MergeTable& merges, int32_t* s, size_t n) {
  if (n < 2) return n;
  // A doubly linked list over the symbols; a symbol keeps its index when it absorbs its
  // right neighbour, so list order is index order and (rank, index) orders a heap entry
  // by rank, then left to right.
  std::vector<int32_t> prev(n), next(n);
  std::vector<bool> alive(n, true);
  for (size_t i = 0; i < n; ++i) {
    prev[i] = static_cast<int32_t>(i) - 1;
    next[i] = i + 1 < n ? static_cast<int32_t>(i + 1) : -1;
  }
  using Entry = uint64_t;  // rank << 32 | index of the left symbol.
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> heap;
  auto push = [&](int32_t left) {
    const MergeTable::Merge m = merges.Find(s[left], s[next[left]]);
    if (m.rank != MergeTable::kNoRank) {
      heap.push((static_cast<uint64_t>(m.rank) << 32) | static_cast<uint32_t>(left));
    }
  };
  for (size_t i = 0; i + 1 < n; ++i) push(static_cast<int32_t>(i));

  std::vector<int32_t> batch;
  while (!heap.empty()) {
    const uint32_t rank = static_cast<uint32_t>(heap.top() >> 32);
    batch.clear();
    while (!heap.empty() && static_cast<uint32_t>(heap.top() >> 32) == rank) {
      batch.push_back(static_cast<int32_t>(heap.top() & 0xFFFFFFFFu));
      heap.pop();
    }
    for (int32_t left : batch) {  // Increasing index: left to right.
      if (!alive[left] || next[left] < 0) continue;
      const int32_t right = next[left];
      const MergeTable::Merge m = merges.Find(s[left], s[right]);
      if (m.rank != rank) continue;  // Stale: a neighbour changed since it was queued.
      s[left] = m.id;
      alive[right] = false;
      next[left] = next[right];
      if (next[right] >= 0) prev[next[right]] = left;
      if (prev[left] >= 0) push(prev[left]);
      if (next[left] >= 0) push(left);
    }
  }
  size_t out = 0;
  for (int32_t i = 0; i >= 0; i = next[i]) s[out++] = s[i];
  return out;
}

}  // namespace helpline::lm::bpe_internal
