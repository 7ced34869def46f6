// A bfloat16 linear layer y = x W^T + b for one utterance's transformer at inference, without
// libtorch: weights and activations rounded to bfloat16, products accumulated in float32. The
// build stays generic: the vector code is behind function target attributes, and one of four
// paths is chosen once per process from cpuid:
//   "avx512bf16"  AVX-512 BF16 (VDPBF16PS; needs AVX512F, AVX512BW, AVX512_BF16),
//   "avx512f"     AVX-512F float32 FMAs on the widened bfloat16 values,
//   "avx2"        AVX2 + FMA, the same with 256-bit vectors,
//   "scalar"      plain C++
// (one core of the development machine, AMD Zen 5, 25 x 512 -> 1536: ~215, ~107, ~45 and ~7
// GMAC/s; bench_bf16_linear).
// Unset, HELPLINE_GPT2_ISA picks the first of these the CPU supports; set, it caps the choice (as
// in lm/model/gpt2_kernels.cc, a cap never selects a path the CPU lacks): "avx512" is the same as
// unset, "avx512f" skips the BF16 path (tests of the AVX-512F path on a BF16 machine; only this
// kernel knows that value: gpt2_kernels runs its scalar code for it), "avx2" allows only AVX2 +
// FMA then plain C++, and any other value (e.g. "scalar") forces plain C++. IsaName() says which.
//
// Arithmetic (all paths give the same bits, denormals aside): each output element starts from
// 0.0f and, for the k-pairs j = 0, 1, ..., KPairs(k) - 1 in order, adds the product of elements
// 2j + 1 and then the product of elements 2j, each addition rounded to float32 (nearest even).
// That is VDPBF16PS's order (Intel's pseudocode; checked on the development machine: two sequential
// roundings, high half first). The product of two bfloat16 values is exact in float32 (outside the
// denormal range), so each addition is a float32 FMA on the widened values, which is what the
// AVX-512F and AVX2 paths do. Then the bias is added and the epilogue applied. VDPBF16PS treats
// denormal inputs as zero and flushes denormal results, and the BF16 path's PackRows
// (VCVTNEPS2BF16) flushes denormal inputs to zero; the other paths keep denormals (IEEE float32),
// and the plain C++ one rounds a product below float32's normal range before adding it: results may
// differ there.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <vector>

namespace helpline::nlu::model::bf16 {

inline constexpr int kPanel = 64;  // output columns per packed panel

// What Linear does with acc + bias (acc: the float32 dot product).
enum class Epilogue {
  kNone,        // y = acc + bias
  kRelu,        // y = max(0, acc + bias)
  kAddToOutput  // y += acc + bias (e.g. a residual connection)
};

// The number of bfloat16 pairs a row of k elements takes.
inline int KPairs(int k) { return (k + 1) / 2; }

// Storage aligned to 64 bytes: Linear reads the weights in 64-byte vectors, and a plain
// std::vector's storage usually starts 16 bytes past a 64-byte boundary, which makes each of
// them straddle two cache lines (~3% of the time at m = 25 rows, up to ~1.4x at m of 3 or 7;
// Zen 4, 512 x 1536 weights).
template <typename T>
struct Aligned64 {
  using value_type = T;
  Aligned64() = default;
  template <typename U>
  Aligned64(const Aligned64<U>&) {}
  T* allocate(size_t n) {
    return static_cast<T*>(::operator new (n * sizeof(T), std::align_val_t{64}));
  }
  void deallocate(T* p, size_t) { ::operator delete (p, std::align_val_t{64}); }
  bool operator==(const Aligned64&) const { return true; }
};
using PackedWeights = std::vector<uint16_t, Aligned64<uint16_t>>;

// PyTorch layout weight w [n][k] (row-major, out x in) -> packed bfloat16 (round to nearest
// even): panel p holds columns [64p, 64p + 64) as [KPairs(k)][64][2] uint16 pairs (the pair =
// w[c][2j], w[c][2j + 1]); columns >= n and the odd k's missing partner are 0. The result has
// PackedWeightsSize(n, k) = ceil(n / 64) * KPairs(k) * 128 elements.
PackedWeights PackWeights(const float* w, int n, int k);

// The same into caller storage of PackedWeightsSize(n, k) elements (best 64-byte aligned).
inline int64_t PackedWeightsSize(int n, int k) {
  return static_cast<int64_t>((n + kPanel - 1) / kPanel) * KPairs(k) * kPanel * 2;
}
void PackWeights(const float* w, int n, int k, uint16_t* out);

// Rows of x [m][k] (row stride ldx floats) rounded to bfloat16 (nearest even) as pairs:
// out[r * KPairs(k) + j] = bf16(x[r][2j]) | bf16(x[r][2j + 1]) << 16 (missing odd partner = 0).
// `out` holds m * KPairs(k) elements.
void PackRows(const float* x, int64_t ldx, int m, int k, uint32_t* out);

// y[r][c] = epilogue(sum over pairs + bias[c]) for r < m, c < n (row stride ldy floats; bias
// may be null). x: PackRows output for m rows of k; w: PackWeights(n, k). Accumulation in
// float32 (see the top of this file). Elements of y outside [m][n] are not touched. Thread-safe.
void Linear(const uint32_t* x, int m, int k, const uint16_t* w, const float* bias, int n, float* y,
            int64_t ldy, Epilogue epilogue);

// "avx512bf16", "avx512f", "avx2" or "scalar": the path Linear and PackRows take (chosen once per
// process; see the top of this file).
const char* IsaName();

}  // namespace helpline::nlu::model::bf16
