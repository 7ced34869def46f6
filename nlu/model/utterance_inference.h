// One member of the utterance model (nlu_model.cc's network) run on one utterance for
// inference, without libtorch. With BiGruInference and PieceTransformerInference taking the
// recurrent layer and the transformer, what libtorch still did per call — embedding lookups
// and bags, four small linear maps, pooling, concatenation, and the dispatch of the ~60
// operators around them — cost ~0.25 ms of a ~1.3 ms transformer-model call on one core; here
// it is a few loops and gpt2_kernels::LinearPanels.
//
// The arithmetic is the network's in eval mode (no dropout):
//   x[j]      = word[w_j] + mean(chars[n-grams of j]) + shape[s_j]
//               (+ vectors_proj(vectors[w_j]))  (+ transformer_proj(piece state of j's first
//               piece))
//   states    = BiGRU(x)                                   [T][2H]
//   encoding  = [max over j of states, mean over j of states, mean(sent[sentence n-grams]),
//                (the transformer's sentence vector)]
//   intent    = intent_out(encoding),  tags[j] = tag_out(states[j])
// in float32, the linear maps summed in another order than libtorch's: the logits agree with
// libtorch's to rounding only. An empty bag is zeros (EmbeddingBag's mean of nothing).
#pragma once

#include <cstdint>
#include <vector>

#include "nlu/model/featurizer.h"
#include "nlu/model/gru_inference.h"
#include "nlu/model/transformer_inference.h"

namespace helpline::nlu::model {

class UtteranceInference {
 public:
  // Row-major tables are read in place (not copied): they must outlive this object and stay
  // where they are (the model's parameters). Linear maps are given in PyTorch's layout
  // ([out][in]) and copied, packed.

  // The token embeddings: words [words][dim], character n-grams [chars][dim] (averaged per
  // token), word shapes [shapes][dim].
  void SetTokenTables(const float* word, int words, const float* chars, int char_rows,
                      const float* shape, int shapes, int dim);
  // The sentence n-gram bag [rows][dim] (averaged).
  void SetSentenceBag(const float* table, int rows, int dim);
  // Optional: frozen word vectors [rows][vector_dim] and their map to the token width.
  void SetWordVectors(const float* table, int rows, int vector_dim, const float* proj_w,
                      const float* proj_b);
  // Optional: the transformer (run here; must outlive this object) and the map of a token's
  // first piece state to the token width [dim][transformer->hidden()].
  void SetTransformer(const PieceTransformerInference* transformer, const float* proj_w,
                      const float* proj_b);
  // The recurrent layer (must outlive this object); its input width must be the token width.
  void SetGru(const BiGruInference* gru);
  // The intent head [intents][encoding width] and the tag head [tags][2H].
  void SetHeads(const float* intent_w, const float* intent_b, int intents, const float* tag_w,
                const float* tag_b, int tags);

  // True when the tables, the GRU and the heads are set (and the transformer, if it is set,
  // is ready).
  bool ready() const;
  int encoding_dim() const;
  int intents() const { return intents_; }
  int tags() const { return tags_; }

  struct Output {
    std::vector<float> intent_logits;  // [intents]
    std::vector<float> tag_logits;     // [tokens][tags]
    std::vector<float> encoding;       // [encoding_dim()]
  };
  // Runs the network on `f`. False (and `out` unspecified) when `f` does not fit: no token,
  // an id outside its table, or (with a transformer) no piece; the caller then takes the
  // libtorch path, which names the problem. Thread-safe.
  bool Run(const Features& f, Output& out) const;

 private:
  int dim_ = 0;
  const float *word_ = nullptr, *chars_ = nullptr, *shape_ = nullptr;
  int words_ = 0, char_rows_ = 0, shapes_ = 0;
  const float* sent_ = nullptr;
  int sent_rows_ = 0, sent_dim_ = 0;
  const float* vectors_ = nullptr;
  int vector_rows_ = 0, vector_dim_ = 0;
  std::vector<float> vectors_proj_w_, vectors_proj_b_;  // packed for gpt2_kernels
  const PieceTransformerInference* transformer_ = nullptr;
  std::vector<float> transformer_proj_w_, transformer_proj_b_;
  const BiGruInference* gru_ = nullptr;
  int intents_ = 0, tags_ = 0;
  std::vector<float> intent_w_, intent_b_, tag_w_, tag_b_;
};

}  // namespace helpline::nlu::model
