// Pretrained word vectors in a libtorch network (the utterance model and the dialogue state
// tracker share these). Include only from libtorch translation units.
#pragma once

#include <torch/torch.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "nlu/model/featurizer.h"
#include "nlu/model/word_vectors.h"

namespace helpline::nlu::model {

// Registers on `module` the frozen vector table `vectors` ([num_words, dim], zeros until
// FillWordVectors) and its learned projection `projection` (dim -> out).
inline void RegisterWordVectors(torch::nn::Module& module, int64_t num_words, int64_t dim,
                                int64_t out, torch::nn::Embedding& vectors,
                                torch::nn::Linear& projection) {
  vectors = module.register_module(
      "vectors", torch::nn::Embedding(torch::nn::EmbeddingOptions(num_words, dim).padding_idx(0)));
  vectors->weight.set_requires_grad(false);
  {
    torch::NoGradGuard no_grad;
    vectors->weight.zero_();
  }
  projection = module.register_module("vectors_proj", torch::nn::Linear(dim, out));
}

// Row i of `table` ([featurizer.num_words(), vectors.dim()], float, contiguous) = the vector
// of word i; rows of words without one are left as they are.
inline void FillWordVectors(const WordVectors& vectors, const Featurizer& featurizer,
                            torch::Tensor table) {
  torch::NoGradGuard no_grad;
  const int64_t dim = vectors.dim();
  float* out = table.data_ptr<float>();
  const std::vector<std::string>& words = featurizer.words();
  for (size_t i = 2; i < words.size(); ++i) {
    if (const float* v = vectors.Find(words[i])) std::copy_n(v, dim, out + i * dim);
  }
}

// The ids of `extended`'s words that `trained` does not have (words the vectors added).
inline std::vector<int64_t> WordsOnlyIn(const Featurizer& extended, const Featurizer& trained) {
  std::vector<int64_t> ids;
  const std::vector<std::string>& words = extended.words();
  for (size_t i = 2; i < words.size(); ++i) {
    if (trained.FindWord(words[i]) < 0) ids.push_back(static_cast<int64_t>(i));
  }
  return ids;
}

// Gives the rows `ids` of a trained word embedding <unk>'s row: those words never occurred in
// training, and word dropout taught <unk> to stand for a word known by its vector only.
inline void ShareUnknownRow(torch::Tensor embedding, const std::vector<int64_t>& ids) {
  if (ids.empty()) return;
  torch::NoGradGuard no_grad;
  const torch::Tensor index = torch::tensor(ids, torch::kInt64);
  embedding.index_copy_(
      0, index,
      embedding[Featurizer::kUnknown].clone().unsqueeze(0).expand({index.size(0), -1}));
}

}  // namespace helpline::nlu::model
