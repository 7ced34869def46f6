// A pretrained sentence transformer read from disk, without libtorch: its sentence-piece
// vocabulary and weights, which the utterance model (nlu_model.h, TrainOptions::transformer)
// fine-tunes inside every ensemble member.
//
// The network (torch_transformer.h) is a two-layer pre-norm transformer encoder over sentence
// pieces: twice the piece embedding (E) + a sinusoidal position signal; layer 0 maps E to H
// (its residual through a learned projection), layer 1 keeps H; 4 attention heads, ReLU
// feed-forward of 3H; the sentence vector is tanh(Linear(mean of the piece states)).
//
// The layout on disk is a TensorFlow.js graph-model folder (model.json with a weights
// manifest, its binary shards, and vocab.json: [piece, score] pairs), as
// scripts/fetch-sentence-encoder unpacks it from the npm registry.
#pragma once

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "nlu/model/pretrain.h"
#include "nlu/model/sentence_pieces.h"

namespace helpline::nlu::model {

struct TransformerCheckpoint {
  // Reads `dir`/model.json, its shards and `dir`/vocab.json. NOT_FOUND when a file is
  // missing; INVALID_ARGUMENT naming the file and tensor for a malformed manifest, a missing
  // weight or a shape that does not fit the network above.
  static absl::StatusOr<TransformerCheckpoint> Read(const std::string& dir);

  SentencePieces pieces;
  // By the network's parameter names (torch_transformer.h), in libtorch layout ([out, in]
  // for linear maps).
  std::map<std::string, EncoderTensor> tensors;
  int64_t embedding_dim = 0;  // E
  int64_t hidden_dim = 0;     // H
  int64_t ffn_dim = 0;        // feed-forward width
};

}  // namespace helpline::nlu::model
