#include "nlu/model/transformer_inference.h"

#include <algorithm>
#include <cmath>

#include "lm/model/gpt2_kernels.h"
#include "nlu/model/gru_inference.h"

namespace helpline::nlu::model {
namespace {

namespace kern = lm::gpt2_kernels;

// y [m][n] (= or += with kAddToOutput) x [m][k] W^T + b, x and W in bfloat16.
void Map(const float* x, int m, int k, const bf16::PackedWeights& w, const std::vector<float>& b,
         int n, float* y, bf16::Epilogue epilogue, std::vector<uint32_t>& pairs) {
  pairs.resize(static_cast<size_t>(m) * bf16::KPairs(k));
  bf16::PackRows(x, k, m, k, pairs.data());
  bf16::Linear(pairs.data(), m, k, w.data(), b.data(), n, y, n, epilogue);
}

}  // namespace

void PieceTransformerInference::SetEmbedding(const float* table, int pieces, int dim,
                                             const float* inv_timescales) {
  pieces_ = pieces;
  embedding_dim_ = dim;
  embedding_.assign(table, table + static_cast<size_t>(pieces) * dim);
  inv_timescales_.assign(inv_timescales, inv_timescales + dim / 2);
}

void PieceTransformerInference::SetLayer(int index, const LayerWeights& w) {
  Layer& l = layers_[index];
  l.in = w.in;
  l.out = w.out;
  l.ffn = w.ffn;
  l.norm1_gain.assign(w.norm1_gain, w.norm1_gain + w.in);
  l.norm1_bias.assign(w.norm1_bias, w.norm1_bias + w.in);
  l.norm2_gain.assign(w.norm2_gain, w.norm2_gain + w.out);
  l.norm2_bias.assign(w.norm2_bias, w.norm2_bias + w.out);
  l.qkv = bf16::PackWeights(w.qkv_w, 3 * w.in, w.in);
  l.qkv_b.assign(w.qkv_b, w.qkv_b + 3 * w.in);
  l.out_map = bf16::PackWeights(w.out_w, w.out, w.in);
  l.out_b.assign(w.out_b, w.out_b + w.out);
  if (w.residual_w != nullptr) {
    l.residual = bf16::PackWeights(w.residual_w, w.out, w.in);
    l.residual_b.assign(w.residual_b, w.residual_b + w.out);
  } else {
    l.residual.clear();
    l.residual_b.clear();
  }
  l.ffn1 = bf16::PackWeights(w.ffn1_w, w.ffn, w.out);
  l.ffn1_b.assign(w.ffn1_b, w.ffn1_b + w.ffn);
  l.ffn2 = bf16::PackWeights(w.ffn2_w, w.out, w.ffn);
  l.ffn2_b.assign(w.ffn2_b, w.ffn2_b + w.out);
  l.set = true;
}

void PieceTransformerInference::SetPool(const float* w, const float* b, int hidden) {
  pool_w_ = PackF32Panels(w, hidden, hidden);
  pool_b_.assign(b, b + hidden);
  pool_set_ = true;
}

void PieceTransformerInference::RunLayer(const Layer& l, int p, float* x,
                                         std::vector<float>& scratch,
                                         std::vector<uint32_t>& pairs) const {
  const int in = l.in, out = l.out, hd = in / kHeads;
  const size_t rows = static_cast<size_t>(p);
  // Scratch: normed input [p][max(in, out)], qkv [p][3 in], context [p][in], h [p][out],
  // ffn [p][ffn], keys and values of one head [p][hd] each, scores [p].
  const size_t norm_size = rows * std::max(in, out), qkv_size = rows * 3 * in;
  const size_t total =
      norm_size + qkv_size + rows * in + rows * out + rows * l.ffn + 2 * rows * hd + rows;
  scratch.resize(total);
  float* norm = scratch.data();
  float* qkv = norm + norm_size;
  float* context = qkv + qkv_size;
  float* h = context + rows * in;
  float* ffn = h + rows * out;
  float* keys = ffn + rows * l.ffn;
  float* values = keys + rows * hd;
  float* scores = values + rows * hd;

  kern::LayerNormRows(x, in, p, in, l.norm1_gain.data(), l.norm1_bias.data(), kNormEps, norm, in);
  Map(norm, p, in, l.qkv, l.qkv_b, 3 * in, qkv, bf16::Epilogue::kNone, pairs);
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  for (int head = 0; head < kHeads; ++head) {
    for (int j = 0; j < p; ++j) {
      const float* row = qkv + static_cast<size_t>(j) * 3 * in + head * hd;
      std::copy(row + in, row + in + hd, keys + static_cast<size_t>(j) * hd);
      std::copy(row + 2 * in, row + 2 * in + hd, values + static_cast<size_t>(j) * hd);
    }
    for (int i = 0; i < p; ++i) {
      kern::AttendQuery(qkv + static_cast<size_t>(i) * 3 * in + head * hd, keys, values, p, hd,
                        scale, scores, context + static_cast<size_t>(i) * in + head * hd);
    }
  }
  // h = residual(x) + out(context)
  if (!l.residual.empty()) {
    Map(x, p, in, l.residual, l.residual_b, out, h, bf16::Epilogue::kNone, pairs);
  } else {
    std::copy(x, x + rows * in, h);
  }
  Map(context, p, in, l.out_map, l.out_b, out, h, bf16::Epilogue::kAddToOutput, pairs);
  // h += ffn2(relu(ffn1(norm2(h))))
  kern::LayerNormRows(h, out, p, out, l.norm2_gain.data(), l.norm2_bias.data(), kNormEps, norm,
                      out);
  Map(norm, p, out, l.ffn1, l.ffn1_b, l.ffn, ffn, bf16::Epilogue::kRelu, pairs);
  Map(ffn, p, l.ffn, l.ffn2, l.ffn2_b, out, h, bf16::Epilogue::kAddToOutput, pairs);
  std::copy(h, h + rows * out, x);
}

void PieceTransformerInference::Run(const int64_t* ids, int p, float* states,
                                    float* sentence) const {
  const int e = embedding_dim_, half = e / 2;
  const int width = std::max({e, layers_[0].out, layers_[1].out});
  // Per-thread buffers, kept between calls: freeing and allocating them anew (~0.2-1 MB) cost
  // page faults on every call.
  thread_local std::vector<float> x, scratch;
  thread_local std::vector<uint32_t> pairs;
  x.resize(static_cast<size_t>(p) * width);
  // 2 * embedding + the sinusoidal position signal (sin of the first half of the rates, cos
  // of the second), as PieceTransformerImpl::States.
  for (int j = 0; j < p; ++j) {
    const float* row = embedding_.data() + static_cast<size_t>(ids[j]) * e;
    float* xj = x.data() + static_cast<size_t>(j) * e;
    for (int c = 0; c < half; ++c) {
      const float angle = static_cast<float>(j) * inv_timescales_[c];
      xj[c] = 2.0f * row[c] + std::sin(angle);
      xj[half + c] = 2.0f * row[half + c] + std::cos(angle);
    }
  }
  RunLayer(layers_[0], p, x.data(), scratch, pairs);
  RunLayer(layers_[1], p, x.data(), scratch, pairs);
  const int hidden = layers_[1].out;
  std::copy(x.data(), x.data() + static_cast<size_t>(p) * hidden, states);
  if (sentence == nullptr) return;
  std::vector<float> mean(hidden, 0.0f);
  for (int j = 0; j < p; ++j) {
    for (int c = 0; c < hidden; ++c) mean[c] += states[static_cast<size_t>(j) * hidden + c];
  }
  for (float& v : mean) v /= static_cast<float>(p);
  kern::LinearPanels(mean.data(), hidden, 1, hidden, pool_w_.data(), kern::WeightType::kF32,
                     pool_b_.data(), hidden, 0, (hidden + kern::kPanel - 1) / kern::kPanel,
                     sentence, hidden, kern::Epilogue::kNone);
  for (int c = 0; c < hidden; ++c) sentence[c] = std::tanh(sentence[c]);
}

}  // namespace helpline::nlu::model
