// A bidirectional GRU layer run on one sequence for inference, without libtorch: libtorch's
// torch::nn::GRU spends ~0.9 ms on 20 tokens at batch 1 (one core), nearly all of it in the
// overhead of its ~20 small operators per step; this runs the same layer in ~0.05 ms on the
// GPT-2 kernels (lm/model/gpt2_kernels.h: AVX-512, AVX2 or plain C++, chosen from cpuid).
//
// The arithmetic is PyTorch's GRU (gates r, z, n stacked in that order):
//   r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
//   z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
//   n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
//   h' = (1 - z) * n + z * h,        h_0 = 0
// in float32, summed in another order than libtorch's, so states agree to rounding only.
#pragma once

#include <cstdint>
#include <vector>

namespace helpline::nlu::model {

// A row-major weight [n][k] (PyTorch's [out][in]) packed for gpt2_kernels::LinearPanels in
// float32: panel p holds columns [64p, 64p + 64) of its transpose as a [k][64] block.
std::vector<float> PackF32Panels(const float* w, int n, int k);

class BiGruInference {
 public:
  // The weights of direction `d` (0 forward, 1 backward) in PyTorch's layout, row-major:
  // w_ih [3H][in], w_hh [3H][H], b_ih and b_hh [3H]. Both directions must have the same sizes.
  void SetDirection(int d, int in, int hidden, const float* w_ih, const float* w_hh,
                    const float* b_ih, const float* b_hh);

  // True after both directions are set.
  bool ready() const { return set_[0] && set_[1]; }
  int in() const { return in_; }
  int hidden() const { return hidden_; }

  // x [t][in] -> out [t][2H]: the forward direction's state after step i in out[i][0, H), the
  // backward one's (which read the sequence from its end) in out[i][H, 2H). Thread-safe.
  void Run(const float* x, int t, float* out) const;

 private:
  struct Direction {
    std::vector<float> w_ih, w_hh;  // packed for gpt2_kernels::LinearPanels: [in][3H], [H][3H]
    std::vector<float> b_ih, b_hh;
  };
  int in_ = 0, hidden_ = 0;
  Direction dir_[2];
  bool set_[2] = {false, false};
};

}  // namespace helpline::nlu::model
