// BiGruInference (gru_inference.h) fed from and to libtorch. Include only from libtorch
// translation units.
#pragma once

#include <torch/torch.h>

#include <string>

#include "nlu/model/gru_inference.h"

namespace helpline::nlu::model {

// Copies the weights of a one-layer bidirectional torch::nn::GRU into `out` (call again after
// they change).
inline void CopyGruWeights(torch::nn::GRU& gru, BiGruInference& out) {
  torch::NoGradGuard no_grad;
  auto params = gru->named_parameters();
  const auto& options = gru->options;
  for (int d = 0; d < 2; ++d) {
    const std::string suffix = d == 0 ? "_l0" : "_l0_reverse";
    auto w = [&](const char* name) { return params[name + suffix].contiguous(); };
    out.SetDirection(d, static_cast<int>(options.input_size()),
                     static_cast<int>(options.hidden_size()), w("weight_ih").data_ptr<float>(),
                     w("weight_hh").data_ptr<float>(), w("bias_ih").data_ptr<float>(),
                     w("bias_hh").data_ptr<float>());
  }
}

// x [1, T, in] -> the states [1, T, 2H] (as the GRU's output with batch_first).
inline torch::Tensor RunGru(const BiGruInference& gru, const torch::Tensor& x) {
  torch::Tensor in = x.contiguous();
  const int64_t t = in.size(1);
  torch::Tensor out = torch::empty({1, t, 2 * static_cast<int64_t>(gru.hidden())});
  gru.Run(in.data_ptr<float>(), static_cast<int>(t), out.data_ptr<float>());
  return out;
}

}  // namespace helpline::nlu::model
