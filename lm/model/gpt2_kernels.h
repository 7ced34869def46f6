// The arithmetic of the GPT-2 forward pass, written so that every result is batch-invariant
// by construction: a value depends only on its own row's inputs, never on how many rows are
// computed together, where the row sits in the batch, or how work is split across threads.
//
// - Linear layers: each output element is ONE fused multiply-add chain over k = 0..K-1 in
//   order, started from 0, then the bias (and the epilogue) is applied. Vector lanes hold
//   different output columns, never parts of one sum, so the AVX-512 kernel, the AVX2 kernel
//   and the scalar kernel (std::fma) all give the same bits for any M.
// - Layer norm, attention and softmax work on one row / one query at a time in a fixed order.
//
// No libtorch here: the caller (gpt2.cc) owns the threads and hands each call a range.
// The instruction set (AVX-512, AVX2+FMA or plain C++) is picked once per process.
#pragma once

#include <cstddef>
#include <cstdint>

#include "lm/model/safetensors.h"

namespace helpline::lm::gpt2_kernels {

// Output columns per packed weight panel.
inline constexpr int kPanel = 64;

// How packed weights are stored. 16-bit weights are widened to f32 in registers inside the
// kernel; f16 -> f32 and bf16 -> f32 are exact, so a layer gives the same bits as with the
// same weights widened to f32 beforehand (only the bytes read from memory halve).
enum class WeightType { kF32, kF16, kBF16 };

// Bytes per stored weight.
size_t WeightTypeSize(WeightType type);
// "f32", "f16", "bf16".
const char* WeightTypeName(WeightType type);

// Exact widening of IEEE half and bfloat16 (lm/model/safetensors.h).
using lm::Bf16ToFloat;
using lm::HalfToFloat;

enum class Epilogue {
  kNone,          // y = acc (+ bias when not null)
  kGeluTanh,      // y = gelu_tanh(acc + bias)
  kGeluErf,       // y = gelu_erf(acc + bias)
  kAddToOutput,   // y = y + (acc + bias): the residual connection, in place
};

// Y[r][c] for rows r in [0, m) and the columns of panels [p0, p1):
//   acc = fma chain over k of x[r][k] * W[k][c];  y[r][c] = epilogue(acc + bias[c]).
// `w` is packed (elements of type `wtype`): panel p holds columns [64p, 64p + 64) as a [k][64]
// block (columns past n are zero); `bias` has n entries or is null. Columns >= n are not written.
void LinearPanels(const float* x, int64_t ldx, int m, int k, const void* w, WeightType wtype, const float* bias,
                  int n, int p0, int p1, float* y, int64_t ldy, Epilogue epilogue);

// out[e] = W[e][col] (widened to f32) for e in [0, k): one column of a packed matrix (the
// token embedding is read from the packed head this way).
void ReadPackedColumn(const void* w, WeightType wtype, int k, int col, float* out);

// y[r] = (x[r] - mean) / sqrt(var + eps) * gain + bias for rows [0, m) of width d
// (mean and variance accumulated in double, in index order).
void LayerNormRows(const float* x, int64_t ldx, int m, int d, const float* gain, const float* bias,
                   float eps, float* y, int64_t ldy);

// Causal attention of one query over n cached positions of one head:
//   out = softmax(scale * q . K[j], j < n) @ V,   K and V are [n][hd] row-major.
// `scores` is scratch of at least n floats.
void AttendQuery(const float* q, const float* keys, const float* values, int n, int hd, float scale,
                 float* scores, float* out);

// Name of the instruction set in use: "avx512", "avx2" or "scalar".
const char* IsaName();

}  // namespace helpline::lm::gpt2_kernels
