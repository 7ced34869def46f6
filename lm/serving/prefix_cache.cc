#include "lm/serving/prefix_cache.h"

#include <algorithm>

namespace helpline::lm {

PrefixCache::Match PrefixCache::Lookup(const std::string& key, absl::Span<const int32_t> prompt,
                                       int max_tokens) {
  Match match;
  if (key.empty() || max_tokens <= 0) return match;
  auto found = index_.find(key);
  if (found == index_.end()) return match;
  const Sequence* best = nullptr;
  int best_len = 0;
  for (const Sequence& seq : found->second->sequences) {
    const size_t limit =
        std::min({seq.tokens.size(), prompt.size(), static_cast<size_t>(max_tokens)});
    size_t len = 0;
    while (len < limit && seq.tokens[len] == prompt[len]) ++len;
    if (static_cast<int>(len) > best_len) {
      best_len = static_cast<int>(len);
      best = &seq;
    }
  }
  if (best == nullptr) return match;
  lru_.splice(lru_.begin(), lru_, found->second);
  match.cache = best->cache->Clone();
  match.cache->Truncate(best_len);
  match.tokens = best_len;
  return match;
}

void PrefixCache::Insert(const std::string& key, std::vector<Sequence> sequences) {
  if (key.empty()) return;
  if (auto found = index_.find(key); found != index_.end()) Erase(found->second);
  Entry entry;
  entry.key = key;
  for (Sequence& seq : sequences) {
    if (seq.cache == nullptr || seq.tokens.empty()) continue;
    const size_t size = seq.cache->bytes();
    if (entry.bytes + size > budget_) break;
    entry.bytes += size;
    entry.sequences.push_back(std::move(seq));
  }
  if (entry.sequences.empty()) return;
  while (bytes_ + entry.bytes > budget_ && !lru_.empty()) Erase(std::prev(lru_.end()));
  bytes_ += entry.bytes;
  lru_.push_front(std::move(entry));
  index_[key] = lru_.begin();
}

void PrefixCache::Erase(std::list<Entry>::iterator it) {
  bytes_ -= it->bytes;
  index_.erase(it->key);
  lru_.erase(it);
}

void PrefixCache::Clear() {
  lru_.clear();
  index_.clear();
  bytes_ = 0;
}

}  // namespace helpline::lm
