// The pretrained sentence-piece transformer (transformer_checkpoint.h) as a libtorch module,
// fine-tuned inside the utterance model. Include only from libtorch translation units.
#pragma once

#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "nlu/model/transformer_checkpoint.h"
#include "nlu/model/transformer_inference.h"

namespace helpline::nlu::model {

// One pre-norm layer: x + Attention(Norm(x)), then x + FFN(Norm(x)). With in != out the
// attention maps `in` to `out` and the residual goes through a learned projection.
struct TransformerLayerImpl : torch::nn::Module {
  static constexpr int64_t kHeads = 4;

  TransformerLayerImpl(int64_t in, int64_t out_dim, int64_t ffn)
      : norm1(register_module("norm1",
                              torch::nn::LayerNorm(torch::nn::LayerNormOptions({in}).eps(1e-6)))),
        qkv(register_module("qkv", torch::nn::Linear(in, 3 * in))),
        out(register_module("out", torch::nn::Linear(in, out_dim))),
        norm2(register_module(
            "norm2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({out_dim}).eps(1e-6)))),
        ffn1(register_module("ffn1", torch::nn::Linear(out_dim, ffn))),
        ffn2(register_module("ffn2", torch::nn::Linear(ffn, out_dim))) {
    if (in != out_dim) residual = register_module("residual", torch::nn::Linear(in, out_dim));
  }

  // x [B, P, in], key_bias [B, 1, 1, P] (0 or -1e9 for padding); `drop` applies dropout to a
  // branch's output (identity in eval mode).
  template <typename Drop>
  torch::Tensor Forward(const torch::Tensor& x, const torch::Tensor& key_bias, Drop&& drop) {
    const int64_t b = x.size(0), p = x.size(1), in = x.size(2), head = in / kHeads;
    std::vector<torch::Tensor> parts = Map(qkv, norm1(x)).chunk(3, 2);
    auto heads = [&](const torch::Tensor& t) {
      return t.view({b, p, kHeads, head}).transpose(1, 2);  // [B, heads, P, head]
    };
    torch::Tensor q = heads(parts[0]) * (1.0 / std::sqrt(static_cast<double>(head)));
    torch::Tensor scores = torch::matmul(q, heads(parts[1]).transpose(2, 3)) + key_bias;
    torch::Tensor context = torch::matmul(torch::softmax(scores, 3), heads(parts[2]));
    context = context.transpose(1, 2).reshape({b, p, in});
    // Sums and norms in float32 (under bf16 autocast the linear maps return bfloat16).
    const auto f32 = [](const torch::Tensor& t) { return t.to(torch::kFloat32); };
    torch::Tensor h = (residual ? f32(Map(residual, x)) : x) + drop(f32(Map(out, context)));
    return h + drop(f32(Map(ffn2, torch::relu(Map(ffn1, norm2(h))))));
  }

  // From now on, inference (eval mode) runs the linear maps on bfloat16 copies of their
  // weights, returning float32; training and the parameters are untouched.
  void UseBf16ForInference() {
    torch::NoGradGuard no_grad;
    bf16_.clear();
    for (const torch::nn::Linear* lin : {&qkv, &out, &ffn1, &ffn2, &residual}) {
      if (!*lin) continue;
      bf16_[lin->get()] = {(*lin)->weight.to(torch::kBFloat16), (*lin)->bias.to(torch::kBFloat16)};
    }
  }

  // lin(x), in bfloat16 after UseBf16ForInference (eval mode only).
  torch::Tensor Map(torch::nn::Linear& lin, const torch::Tensor& x) {
    if (!is_training()) {
      auto it = bf16_.find(lin.get());
      if (it != bf16_.end()) {
        return torch::linear(x.to(torch::kBFloat16), it->second.first, it->second.second)
            .to(torch::kFloat32);
      }
    }
    return lin(x);
  }

  torch::nn::LayerNorm norm1;
  torch::nn::Linear qkv, out;
  torch::nn::LayerNorm norm2;
  torch::nn::Linear ffn1, ffn2;
  torch::nn::Linear residual{nullptr};
  // UseBf16ForInference: each map's (weight, bias) in bfloat16.
  std::map<const torch::nn::LinearImpl*, std::pair<torch::Tensor, torch::Tensor>> bf16_;
};
TORCH_MODULE(TransformerLayer);

struct PieceTransformerImpl : torch::nn::Module {
  PieceTransformerImpl(int64_t pieces, int64_t embedding_dim, int64_t hidden_dim, int64_t ffn_dim)
      : embedding(register_parameter("embedding", torch::zeros({pieces, embedding_dim}))),
        l0(register_module("l0", TransformerLayer(embedding_dim, hidden_dim, ffn_dim))),
        l1(register_module("l1", TransformerLayer(hidden_dim, hidden_dim, ffn_dim))),
        pool(register_module("pool", torch::nn::Linear(hidden_dim, hidden_dim))) {
    // Sinusoidal position signal: sin of the first half of the rates, cos of the second.
    const int64_t half = embedding_dim / 2;
    inv_timescales = torch::exp(torch::arange(half, torch::kFloat32) *
                                (-std::log(1e4) / std::max<int64_t>(half - 1, 1)));
  }

  // ids [B, P] (any id past a text's end), mask [B, P] bool -> piece states [B, P, H].
  template <typename Drop>
  torch::Tensor States(const torch::Tensor& ids, const torch::Tensor& mask, Drop&& drop) {
    const int64_t p = ids.size(1);
    torch::Tensor angles =
        torch::arange(p, torch::kFloat32).unsqueeze(1) * inv_timescales.unsqueeze(0);
    torch::Tensor signal = torch::cat({torch::sin(angles), torch::cos(angles)}, 1);  // [P, E]
    // The pretrained graph adds the embedding twice (the position signal is added to the
    // embedding, and the stack's input, the embedding again, to that): 2 * embedding + signal.
    torch::Tensor x =
        2.0 * embedding.index_select(0, ids.reshape({-1})).view({ids.size(0), p, -1}) +
        signal.unsqueeze(0);
    torch::Tensor key_bias =
        mask.logical_not().to(torch::kFloat32).mul(-1e9).view({ids.size(0), 1, 1, p});
    x = l0->Forward(x, key_bias, drop);
    return l1->Forward(x, key_bias, drop);
  }

  // The sentence vector: tanh(Linear(mean of the states of the unmasked pieces)) [B, H].
  torch::Tensor Pool(const torch::Tensor& states, const torch::Tensor& mask) {
    torch::Tensor m = mask.unsqueeze(2).to(torch::kFloat32);
    torch::Tensor mean = (states * m).sum(1) / m.sum(1).clamp_min(1.0);
    return torch::tanh(pool(mean));
  }

  void UseBf16ForInference() {
    l0->UseBf16ForInference();
    l1->UseBf16ForInference();
  }

  // Copies the checkpoint's weights (same names) into the parameters. INVALID_ARGUMENT naming
  // a weight that is missing or has another shape.
  absl::Status LoadFrom(const TransformerCheckpoint& checkpoint) {
    torch::NoGradGuard no_grad;
    for (auto& item : named_parameters()) {
      auto it = checkpoint.tensors.find(item.key());
      if (it == checkpoint.tensors.end()) {
        return absl::InvalidArgumentError(
            absl::StrCat("transformer weight '", item.key(), "' missing"));
      }
      torch::Tensor dst = item.value();
      if (it->second.shape != dst.sizes().vec()) {
        return absl::InvalidArgumentError(
            absl::StrCat("transformer weight '", item.key(), "' has the wrong shape"));
      }
      std::copy(it->second.values.begin(), it->second.values.end(), dst.data_ptr<float>());
    }
    return absl::OkStatus();
  }

  torch::Tensor embedding;
  TransformerLayer l0, l1;
  torch::nn::Linear pool;
  torch::Tensor inv_timescales;  // [E / 2], not a parameter
};
TORCH_MODULE(PieceTransformer);

// Copies the weights of `t` into `out` (call again after they change).
inline void CopyTransformerWeights(PieceTransformer& t, PieceTransformerInference& out) {
  torch::NoGradGuard no_grad;
  auto data = [](const torch::Tensor& v) { return v.data_ptr<float>(); };
  torch::Tensor table = t->embedding.contiguous();
  torch::Tensor inv = t->inv_timescales.contiguous();
  out.SetEmbedding(data(table), static_cast<int>(table.size(0)), static_cast<int>(table.size(1)),
                   data(inv));
  // Parameters are contiguous (they are created so and updated in place).
  TransformerLayer layers[] = {t->l0, t->l1};
  for (int i = 0; i < 2; ++i) {
    TransformerLayerImpl& l = *layers[i];
    PieceTransformerInference::LayerWeights w;
    w.in = static_cast<int>(l.qkv->weight.size(1));
    w.out = static_cast<int>(l.out->weight.size(0));
    w.ffn = static_cast<int>(l.ffn1->weight.size(0));
    w.norm1_gain = data(l.norm1->weight);
    w.norm1_bias = data(l.norm1->bias);
    w.qkv_w = data(l.qkv->weight);
    w.qkv_b = data(l.qkv->bias);
    w.out_w = data(l.out->weight);
    w.out_b = data(l.out->bias);
    if (l.residual) {
      w.residual_w = data(l.residual->weight);
      w.residual_b = data(l.residual->bias);
    }
    w.norm2_gain = data(l.norm2->weight);
    w.norm2_bias = data(l.norm2->bias);
    w.ffn1_w = data(l.ffn1->weight);
    w.ffn1_b = data(l.ffn1->bias);
    w.ffn2_w = data(l.ffn2->weight);
    w.ffn2_b = data(l.ffn2->bias);
    out.SetLayer(i, w);
  }
  out.SetPool(data(t->pool->weight), data(t->pool->bias),
              static_cast<int>(t->pool->weight.size(0)));
}

// ids [1, P] -> the piece states [1, P, H] and the sentence vector [1, H].
inline std::pair<torch::Tensor, torch::Tensor> RunTransformer(const PieceTransformerInference& t,
                                                              const torch::Tensor& ids) {
  torch::Tensor in = ids.to(torch::kInt64).contiguous();
  const int64_t p = in.size(1), h = t.hidden();
  torch::Tensor states = torch::empty({1, p, h});
  torch::Tensor sentence = torch::empty({1, h});
  t.Run(in.data_ptr<int64_t>(), static_cast<int>(p), states.data_ptr<float>(),
        sentence.data_ptr<float>());
  return {states, sentence};
}

}  // namespace helpline::nlu::model
