#include "nlu/model/utterance_inference.h"

#include <algorithm>
#include <cstddef>

#include "lm/model/gpt2_kernels.h"

namespace helpline::nlu::model {
namespace {

namespace kern = lm::gpt2_kernels;

int Panels(int n) { return (n + kern::kPanel - 1) / kern::kPanel; }

// y[r] (+)= x[r] W^T + b for rows [0, m): `w` packed by PackF32Panels ([n][k] before).
void Map(const float* x, int m, int k, const std::vector<float>& w, const std::vector<float>& b,
         int n, float* y, bool add) {
  kern::LinearPanels(x, k, m, k, w.data(), kern::WeightType::kF32, b.data(), n, 0, Panels(n), y, n,
                     add ? kern::Epilogue::kAddToOutput : kern::Epilogue::kNone);
}

// out[0, dim) += mean of table's rows `ids` (nothing added for no ids); `sum` is scratch of
// dim floats.
void AddMeanRows(const float* table, int dim, const int64_t* ids, size_t count, float* sum,
                 float* out) {
  if (count == 0) return;
  // The sum first, then one division: EmbeddingBag's mean.
  std::fill_n(sum, dim, 0.0f);
  for (size_t i = 0; i < count; ++i) {
    const float* row = table + static_cast<size_t>(ids[i]) * dim;
    for (int e = 0; e < dim; ++e) sum[e] += row[e];
  }
  const float n = static_cast<float>(count);
  for (int e = 0; e < dim; ++e) out[e] += sum[e] / n;
}

bool AllBelow(const std::vector<int64_t>& ids, int rows) {
  return std::all_of(ids.begin(), ids.end(), [rows](int64_t id) { return id >= 0 && id < rows; });
}

}  // namespace

void UtteranceInference::SetTokenTables(const float* word, int words, const float* chars,
                                        int char_rows, const float* shape, int shapes, int dim) {
  word_ = word;
  words_ = words;
  chars_ = chars;
  char_rows_ = char_rows;
  shape_ = shape;
  shapes_ = shapes;
  dim_ = dim;
}

void UtteranceInference::SetSentenceBag(const float* table, int rows, int dim) {
  sent_ = table;
  sent_rows_ = rows;
  sent_dim_ = dim;
}

void UtteranceInference::SetWordVectors(const float* table, int rows, int vector_dim,
                                        const float* proj_w, const float* proj_b) {
  vectors_ = table;
  vector_rows_ = rows;
  vector_dim_ = vector_dim;
  vectors_proj_w_ = PackF32Panels(proj_w, dim_, vector_dim);
  vectors_proj_b_.assign(proj_b, proj_b + dim_);
}

void UtteranceInference::SetTransformer(const PieceTransformerInference* transformer,
                                        const float* proj_w, const float* proj_b) {
  transformer_ = transformer;
  transformer_proj_w_ = PackF32Panels(proj_w, dim_, transformer->hidden());
  transformer_proj_b_.assign(proj_b, proj_b + dim_);
}

void UtteranceInference::SetGru(const BiGruInference* gru) { gru_ = gru; }

void UtteranceInference::SetHeads(const float* intent_w, const float* intent_b, int intents,
                                  const float* tag_w, const float* tag_b, int tags) {
  intents_ = intents;
  tags_ = tags;
  intent_w_ = PackF32Panels(intent_w, intents, encoding_dim());
  intent_b_.assign(intent_b, intent_b + intents);
  tag_w_ = PackF32Panels(tag_w, tags, 2 * gru_->hidden());
  tag_b_.assign(tag_b, tag_b + tags);
}

bool UtteranceInference::ready() const {
  return dim_ > 0 && sent_ != nullptr && gru_ != nullptr && gru_->ready() && gru_->in() == dim_ &&
         !intent_w_.empty() && !tag_w_.empty() &&
         (transformer_ == nullptr || transformer_->ready());
}

int UtteranceInference::encoding_dim() const {
  return 4 * gru_->hidden() + sent_dim_ + (transformer_ != nullptr ? transformer_->hidden() : 0);
}

bool UtteranceInference::Run(const Features& f, Output& out) const {
  const int t = static_cast<int>(f.tokens.size());
  if (t == 0 || f.word_ids.size() != static_cast<size_t>(t) ||
      f.shape_ids.size() != static_cast<size_t>(t) ||
      f.char_ngrams.size() != static_cast<size_t>(t) || !AllBelow(f.word_ids, words_) ||
      !AllBelow(f.shape_ids, shapes_) || !AllBelow(f.sentence_ngrams, sent_rows_) ||
      (vectors_ != nullptr && !AllBelow(f.word_ids, vector_rows_))) {
    return false;
  }
  for (const std::vector<int64_t>& grams : f.char_ngrams) {
    if (!AllBelow(grams, char_rows_)) return false;
  }
  const int p = static_cast<int>(f.pieces.size());
  if (transformer_ != nullptr &&
      (p == 0 || f.first_piece.size() != static_cast<size_t>(t) ||
       !AllBelow(f.pieces, transformer_->pieces()) || !AllBelow(f.first_piece, p))) {
    return false;
  }

  // Token inputs.
  std::vector<float> x(static_cast<size_t>(t) * dim_);
  std::vector<float> bag(dim_), scratch(std::max(dim_, sent_dim_));
  for (int j = 0; j < t; ++j) {
    float* row = x.data() + static_cast<size_t>(j) * dim_;
    const float* w = word_ + static_cast<size_t>(f.word_ids[j]) * dim_;
    const float* s = shape_ + static_cast<size_t>(f.shape_ids[j]) * dim_;
    // word + bag + shape, summed in that order as libtorch does.
    std::fill(bag.begin(), bag.end(), 0.0f);
    AddMeanRows(chars_, dim_, f.char_ngrams[j].data(), f.char_ngrams[j].size(), scratch.data(),
                bag.data());
    for (int e = 0; e < dim_; ++e) row[e] = w[e] + bag[e] + s[e];
  }
  if (vectors_ != nullptr) {
    std::vector<float> v(static_cast<size_t>(t) * vector_dim_);
    for (int j = 0; j < t; ++j) {
      std::copy_n(vectors_ + static_cast<size_t>(f.word_ids[j]) * vector_dim_, vector_dim_,
                  v.data() + static_cast<size_t>(j) * vector_dim_);
    }
    Map(v.data(), t, vector_dim_, vectors_proj_w_, vectors_proj_b_, dim_, x.data(), true);
  }
  const int th = transformer_ != nullptr ? transformer_->hidden() : 0;
  std::vector<float> sentence(th);
  if (transformer_ != nullptr) {
    std::vector<float> states(static_cast<size_t>(p) * th), first(static_cast<size_t>(t) * th);
    transformer_->Run(f.pieces.data(), p, states.data(), sentence.data());
    for (int j = 0; j < t; ++j) {
      std::copy_n(states.data() + static_cast<size_t>(f.first_piece[j]) * th, th,
                  first.data() + static_cast<size_t>(j) * th);
    }
    Map(first.data(), t, th, transformer_proj_w_, transformer_proj_b_, dim_, x.data(), true);
  }

  // The recurrent layer and the pools.
  const int h2 = 2 * gru_->hidden();
  std::vector<float> states(static_cast<size_t>(t) * h2);
  gru_->Run(x.data(), t, states.data());
  out.encoding.assign(encoding_dim(), 0.0f);
  float* max_pool = out.encoding.data();
  float* mean_pool = max_pool + h2;
  std::copy_n(states.data(), h2, max_pool);
  std::copy_n(states.data(), h2, mean_pool);
  for (int j = 1; j < t; ++j) {
    const float* row = states.data() + static_cast<size_t>(j) * h2;
    for (int e = 0; e < h2; ++e) {
      max_pool[e] = std::max(max_pool[e], row[e]);
      mean_pool[e] += row[e];
    }
  }
  for (int e = 0; e < h2; ++e) mean_pool[e] /= static_cast<float>(t);
  AddMeanRows(sent_, sent_dim_, f.sentence_ngrams.data(), f.sentence_ngrams.size(), scratch.data(),
              mean_pool + h2);
  std::copy(sentence.begin(), sentence.end(), mean_pool + h2 + sent_dim_);

  // The heads.
  out.intent_logits.resize(intents_);
  Map(out.encoding.data(), 1, encoding_dim(), intent_w_, intent_b_, intents_,
      out.intent_logits.data(), false);
  out.tag_logits.resize(static_cast<size_t>(t) * tags_);
  Map(states.data(), t, h2, tag_w_, tag_b_, tags_, out.tag_logits.data(), false);
  return true;
}

}  // namespace helpline::nlu::model
