// The session prefix cache: per key (tenant + session, opaque), the token ids and KV caches
// of the sequences of the key's last finished request. A new request of the same key reuses
// the longest common token prefix, compared id by id; a key only ever sees its own entries.
// LRU over keys within a byte budget (KvCache::bytes()).
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/types/span.h"
#include "lm/model/gpt2.h"

namespace helpline::lm {

// Not thread-safe: the engine's owner thread uses it.
class PrefixCache {
 public:
  explicit PrefixCache(size_t budget_bytes) : budget_(budget_bytes) {}

  struct Match {
    std::unique_ptr<KvCache> cache;  // null on a miss
    int tokens = 0;                  // prompt tokens it holds
  };
  // The longest common prefix of `prompt` with any sequence stored under `key`, at most
  // `max_tokens` long: a copy of that sequence's cache truncated to it. A hit makes the key
  // the most recently used. An empty key always misses.
  Match Lookup(const std::string& key, absl::Span<const int32_t> prompt, int max_tokens);

  struct Sequence {
    std::vector<int32_t> tokens;     // the ids whose keys and values the cache holds
    std::unique_ptr<KvCache> cache;  // cache->length() == tokens.size()
  };
  // Replaces the key's entry with `sequences` (most wanted first). Sequences that do not
  // fit the budget are dropped (from the back); older keys are evicted to make room.
  void Insert(const std::string& key, std::vector<Sequence> sequences);

  size_t bytes() const { return bytes_; }
  size_t keys() const { return lru_.size(); }
  // Evicts everything.
  void Clear();

 private:
  struct Entry {
    std::string key;
    std::vector<Sequence> sequences;
    size_t bytes = 0;
  };
  void Erase(std::list<Entry>::iterator it);

  size_t budget_;
  size_t bytes_ = 0;
  std::list<Entry> lru_;  // most recently used first
  absl::flat_hash_map<std::string, std::list<Entry>::iterator> index_;
};

}  // namespace helpline::lm
