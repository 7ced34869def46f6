// The order in which the trainers visit their examples, epoch by epoch. No libtorch.
#pragma once

#include <algorithm>
#include <cstddef>
#include <iterator>
#include <random>
#include <utility>
#include <vector>

namespace helpline::nlu::model {

// One epoch's batches, shared by the trainers: a fresh seeded shuffle of the examples
// 0..n-1 (the identity, then std::shuffle), cut into runs of batch_size (the last shorter);
// or the same grouped by length (ShuffleInLengthBuckets).
class EpochBatches {
 public:
  EpochBatches(size_t n, size_t batch_size)
      : order_(n), batch_size_(std::max<size_t>(1, batch_size)) {}
  size_t count() const { return (order_.size() + batch_size_ - 1) / batch_size_; }
  void Shuffle(std::mt19937_64& rng) {
    for (size_t i = 0; i < order_.size(); ++i) order_[i] = i;
    std::shuffle(order_.begin(), order_.end(), rng);
  }
  // Length buckets: a fresh shuffle, then each window of kBucketWindow batches sorted by
  // length (stable) and cut into batches, then the full batches in a shuffled order (a short
  // last batch stays last). Batches hold utterances of similar length, so padding to the
  // batch's longest wastes little work. `lengths[i]` is example i's length.
  static constexpr size_t kBucketWindow = 50;
  void ShuffleInLengthBuckets(std::mt19937_64& rng, const std::vector<size_t>& lengths) {
    Shuffle(rng);
    const size_t window = kBucketWindow * batch_size_;
    for (size_t lo = 0; lo < order_.size(); lo += window) {
      const auto first = order_.begin() + static_cast<std::ptrdiff_t>(lo);
      const auto last =
          order_.begin() + static_cast<std::ptrdiff_t>(std::min(order_.size(), lo + window));
      std::stable_sort(first, last, [&](size_t a, size_t b) { return lengths[a] < lengths[b]; });
    }
    const size_t full = order_.size() / batch_size_;
    std::vector<size_t> batch_order(full);
    for (size_t b = 0; b < full; ++b) batch_order[b] = b;
    std::shuffle(batch_order.begin(), batch_order.end(), rng);
    std::vector<size_t> reordered;
    reordered.reserve(order_.size());
    for (size_t b : batch_order) {
      reordered.insert(reordered.end(),
                       order_.begin() + static_cast<std::ptrdiff_t>(b * batch_size_),
                       order_.begin() + static_cast<std::ptrdiff_t>((b + 1) * batch_size_));
    }
    reordered.insert(reordered.end(),
                     order_.begin() + static_cast<std::ptrdiff_t>(full * batch_size_),
                     order_.end());
    order_ = std::move(reordered);
  }
  // Positions [begin(b), end(b)) of batch b; (*this)[i] is the example at position i.
  size_t begin(size_t b) const { return b * batch_size_; }
  size_t end(size_t b) const { return std::min(order_.size(), (b + 1) * batch_size_); }
  size_t operator[](size_t i) const { return order_[i]; }

 private:
  std::vector<size_t> order_;
  size_t batch_size_;
};

}  // namespace helpline::nlu::model
