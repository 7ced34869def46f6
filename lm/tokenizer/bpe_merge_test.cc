#include "lm/tokenizer/bpe_merge.h"

#include <map>
#include <random>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace helpline::lm::bpe_internal {
namespace {

// GPT-2's bpe() loop, written as plainly as encoder.py has it, on ids.
std::vector<int32_t> Reference(const std::map<std::pair<int32_t, int32_t>, MergeTable::Merge>& m,
                               std::vector<int32_t> word) {
  while (word.size() > 1) {
    uint32_t best = MergeTable::kNoRank;
    std::pair<int32_t, int32_t> pair;
    for (size_t i = 0; i + 1 < word.size(); ++i) {
      auto it = m.find({word[i], word[i + 1]});
      if (it != m.end() && it->second.rank < best) {
        best = it->second.rank;
        pair = it->first;
      }
    }
    if (best == MergeTable::kNoRank) break;
    std::vector<int32_t> next;
    for (size_t i = 0; i < word.size();) {
      if (i + 1 < word.size() && word[i] == pair.first && word[i + 1] == pair.second) {
        next.push_back(m.at(pair).id);
        i += 2;
      } else {
        next.push_back(word[i++]);
      }
    }
    word = std::move(next);
  }
  return word;
}

struct RandomMerges {
  MergeTable table;
  std::map<std::pair<int32_t, int32_t>, MergeTable::Merge> map;
};

// `alphabet` base symbols and `count` merges of existing symbols into new ones. Ranks are
// creation order, or a random permutation (merges whose result ranks below its parts).
RandomMerges MakeMerges(std::mt19937& rng, int alphabet, int count, bool shuffle_ranks) {
  RandomMerges r;
  std::vector<uint32_t> ranks(count);
  for (int i = 0; i < count; ++i) ranks[i] = static_cast<uint32_t>(i);
  if (shuffle_ranks) std::shuffle(ranks.begin(), ranks.end(), rng);
  int32_t next_id = alphabet;
  for (int i = 0; i < count;) {
    std::uniform_int_distribution<int32_t> pick(0, next_id - 1);
    const int32_t a = pick(rng), b = pick(rng);
    if (r.map.count({a, b})) continue;
    const MergeTable::Merge merge{ranks[i], next_id++};
    r.map[{a, b}] = merge;
    EXPECT_TRUE(r.table.Add(a, b, merge.rank, merge.id));
    ++i;
  }
  return r;
}

void CheckAgainstReference(bool shuffle_ranks) {
  std::mt19937 rng(shuffle_ranks ? 7 : 11);
  for (int trial = 0; trial < 20; ++trial) {
    RandomMerges merges = MakeMerges(rng, 3, 40, shuffle_ranks);
    for (int w = 0; w < 200; ++w) {
      const size_t n = std::uniform_int_distribution<size_t>(0, w % 4 == 0 ? 400 : 48)(rng);
      std::vector<int32_t> word(n);
      for (auto& s : word) s = std::uniform_int_distribution<int32_t>(0, 2)(rng);
      const std::vector<int32_t> want = Reference(merges.map, word);

      std::vector<int32_t> heap = word;
      heap.resize(MergeSymbolsHeap(merges.table, heap.data(), heap.size()));
      EXPECT_EQ(heap, want) << "heap, n=" << n;
      if (n <= kLinearMergeMax) {
        std::vector<int32_t> linear = word;
        linear.resize(MergeSymbolsLinear(merges.table, linear.data(), linear.size()));
        EXPECT_EQ(linear, want) << "linear, n=" << n;
      }
      std::vector<int32_t> both = word;
      both.resize(MergeSymbols(merges.table, both.data(), both.size()));
      EXPECT_EQ(both, want);
    }
  }
}

TEST(BpeMergeTest, LinearAndHeapEqualGpt2LoopForTrainedRanks) { CheckAgainstReference(false); }

TEST(BpeMergeTest, LinearAndHeapEqualGpt2LoopForAnyRanks) { CheckAgainstReference(true); }

TEST(BpeMergeTest, OverlappingPairsMergeLeftToRight) {
  MergeTable t;
  ASSERT_TRUE(t.Add(0, 0, 0, 1));   // a a -> A
  ASSERT_FALSE(t.Add(0, 0, 5, 9));  // The first rule of a pair stays.
  std::vector<int32_t> w = {0, 0, 0};
  w.resize(MergeSymbolsLinear(t, w.data(), w.size()));
  EXPECT_EQ(w, (std::vector<int32_t>{1, 0}));
  w = {0, 0, 0, 0, 0};
  w.resize(MergeSymbolsHeap(t, w.data(), w.size()));
  EXPECT_EQ(w, (std::vector<int32_t>{1, 1, 0}));
}

}  // namespace
}  // namespace helpline::lm::bpe_internal
