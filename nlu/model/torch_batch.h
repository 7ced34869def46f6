// Model inputs of a batch of featurized utterances as libtorch tensors (the utterance model
// and the encoder pretraining share it). Include only from libtorch translation units.
#pragma once

#include <torch/torch.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

#include "nlu/model/epoch_batches.h"
#include "nlu/model/featurizer.h"

namespace helpline::nlu::model {

struct Batch {
  torch::Tensor words, shapes;           // [B, T] int64
  torch::Tensor char_ids, char_offsets;  // flat ids, [B * T] offsets
  torch::Tensor sent_ids, sent_offsets;  // flat ids, [B] offsets
  torch::Tensor lengths;                 // [B] int64
  torch::Tensor mask;                    // [B, T] bool
  // With sentence pieces (Features::pieces) only: piece ids [B, P] (0 past a text's end),
  // their mask [B, P] bool, and each token's first piece [B, T] (0 past the end).
  torch::Tensor pieces, piece_mask, first_piece;
};

// Sets every parameter group's learning rate.
inline void SetLearningRate(torch::optim::Adam& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) {
    static_cast<torch::optim::AdamOptions&>(group.options()).lr(lr);
  }
}

// Every item has at least one token.
inline Batch MakeBatch(const std::vector<const Features*>& items) {
  const int64_t b = static_cast<int64_t>(items.size());
  int64_t t = 1;
  for (const Features* f : items) t = std::max<int64_t>(t, f->tokens.size());
  std::vector<int64_t> words(b * t, 0), shapes(b * t, 0), lengths(b), char_ids, char_offsets,
      sent_ids, sent_offsets;
  std::vector<uint8_t> mask(b * t, 0);
  char_offsets.reserve(b * t);
  for (int64_t i = 0; i < b; ++i) {
    const Features& f = *items[i];
    const int64_t n = static_cast<int64_t>(f.tokens.size());
    lengths[i] = n;
    for (int64_t j = 0; j < t; ++j) {
      char_offsets.push_back(static_cast<int64_t>(char_ids.size()));
      if (j >= n) continue;
      words[i * t + j] = f.word_ids[j];
      shapes[i * t + j] = f.shape_ids[j];
      mask[i * t + j] = 1;
      char_ids.insert(char_ids.end(), f.char_ngrams[j].begin(), f.char_ngrams[j].end());
    }
    sent_offsets.push_back(static_cast<int64_t>(sent_ids.size()));
    sent_ids.insert(sent_ids.end(), f.sentence_ngrams.begin(), f.sentence_ngrams.end());
  }
  auto longs = [](const std::vector<int64_t>& v, std::vector<int64_t> shape) {
    return torch::from_blob(const_cast<int64_t*>(v.data()), shape, torch::kInt64).clone();
  };
  Batch batch;
  batch.words = longs(words, {b, t});
  batch.shapes = longs(shapes, {b, t});
  batch.char_ids = longs(char_ids, {static_cast<int64_t>(char_ids.size())});
  batch.char_offsets = longs(char_offsets, {b * t});
  batch.sent_ids = longs(sent_ids, {static_cast<int64_t>(sent_ids.size())});
  batch.sent_offsets = longs(sent_offsets, {b});
  batch.lengths = longs(lengths, {b});
  batch.mask = torch::from_blob(mask.data(), {b, t}, torch::kUInt8).to(torch::kBool);
  if (!items[0]->pieces.empty()) {
    int64_t p = 1;
    for (const Features* f : items) p = std::max<int64_t>(p, f->pieces.size());
    std::vector<int64_t> pieces(b * p, 0), first(b * t, 0);
    std::vector<uint8_t> piece_mask(b * p, 0);
    for (int64_t i = 0; i < b; ++i) {
      const Features& f = *items[i];
      std::copy(f.pieces.begin(), f.pieces.end(), pieces.begin() + i * p);
      std::fill_n(piece_mask.begin() + i * p, f.pieces.size(), 1);
      std::copy(f.first_piece.begin(), f.first_piece.end(), first.begin() + i * t);
    }
    batch.pieces = longs(pieces, {b, p});
    batch.first_piece = longs(first, {b, t});
    batch.piece_mask = torch::from_blob(piece_mask.data(), {b, p}, torch::kUInt8).to(torch::kBool);
  }
  return batch;
}

}  // namespace helpline::nlu::model
