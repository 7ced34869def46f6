// The fine-tuned piece transformer (torch_transformer.h) run on one utterance for inference,
// without libtorch. libtorch's bfloat16 path (oneDNN) spends ~0.5-1 ms of a ~2-3 ms call on
// the overhead of ~1,000 small operators and builds new primitives when the length changes;
// this runs the same network with its matrix products on bf16_linear.h (VDPBF16PS where the
// processor has it) and the rest in float32 on the GPT-2 kernels (lm/model/gpt2_kernels.h).
//
// The arithmetic is PieceTransformerImpl's in eval mode, with bfloat16 inputs and weights for
// the linear maps of the two layers (as --transformer-bf16-inference): products accumulate in
// float32 and their outputs stay float32 (libtorch rounds them to bfloat16), the attention runs
// in float32 (libtorch: bfloat16), the layer norms, residual sums and the pooling in float32.
// So the states agree with libtorch's to bfloat16 rounding only.
#pragma once

#include <cstdint>
#include <vector>

#include "nlu/model/bf16_linear.h"

namespace helpline::nlu::model {

class PieceTransformerInference {
 public:
  // One layer's weights in PyTorch's layout (row-major [out][in]); `residual_w` / `residual_b`
  // are null when in == out (the residual is then the input itself).
  struct LayerWeights {
    int in = 0, out = 0, ffn = 0;
    const float *norm1_gain = nullptr, *norm1_bias = nullptr;
    const float *qkv_w = nullptr, *qkv_b = nullptr;            // [3 in][in]: queries, keys, values
    const float *out_w = nullptr, *out_b = nullptr;            // [out][in]
    const float *residual_w = nullptr, *residual_b = nullptr;  // [out][in]
    const float *norm2_gain = nullptr, *norm2_bias = nullptr;
    const float *ffn1_w = nullptr, *ffn1_b = nullptr;  // [ffn][out]
    const float *ffn2_w = nullptr, *ffn2_b = nullptr;  // [out][ffn]
  };

  static constexpr int kHeads = 4;
  static constexpr float kNormEps = 1e-6f;

  // The piece embedding [pieces][dim] and the position signal's inverse timescales [dim / 2].
  void SetEmbedding(const float* table, int pieces, int dim, const float* inv_timescales);
  // Layer 0 or 1; layer 1's `in` must be layer 0's `out`.
  void SetLayer(int index, const LayerWeights& w);
  // The sentence vector's map [hidden][hidden] and bias.
  void SetPool(const float* w, const float* b, int hidden);

  // True after the embedding, both layers and the pool are set.
  bool ready() const { return embedding_dim_ > 0 && layers_[0].set && layers_[1].set && pool_set_; }
  int hidden() const { return layers_[1].out; }
  int pieces() const { return pieces_; }

  // ids [p] (each < pieces()) -> the piece states [p][hidden()] and, when `sentence` is not
  // null, the sentence vector tanh(pool(mean of the states)) [hidden()]. Thread-safe.
  void Run(const int64_t* ids, int p, float* states, float* sentence) const;

 private:
  struct Layer {
    bool set = false;
    int in = 0, out = 0, ffn = 0;
    std::vector<float> norm1_gain, norm1_bias, norm2_gain, norm2_bias;
    // bf16::PackWeights of each map; residual empty when in == out.
    bf16::PackedWeights qkv, out_map, residual, ffn1, ffn2;
    std::vector<float> qkv_b, out_b, residual_b, ffn1_b, ffn2_b;
  };
  // x [p][in] -> [p][out] in place in `x` (capacity p x max width); `scratch` and `pairs` are
  // the caller's buffers.
  void RunLayer(const Layer& l, int p, float* x, std::vector<float>& scratch,
                std::vector<uint32_t>& pairs) const;

  int pieces_ = 0, embedding_dim_ = 0;
  std::vector<float> embedding_;  // [pieces][dim]
  std::vector<float> inv_timescales_;
  Layer layers_[2];
  std::vector<float> pool_w_;  // gpt2_kernels packed float32
  std::vector<float> pool_b_;
  bool pool_set_ = false;
};

}  // namespace helpline::nlu::model
