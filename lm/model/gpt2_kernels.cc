#include "lm/model/gpt2_kernels.h"

// GCC 12's AVX-512 intrinsics start from _mm512_undefined_ps(), which -Wmaybe-uninitialized
// (and _mm512_reduce_add_ps) report as uses of uninitialized values: false positives of the headers.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

// This file holds AVX-512 and AVX2 code behind target attributes (the build stays generic);
// which one runs is decided once, from cpuid.

namespace helpline::lm::gpt2_kernels {
namespace {

constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kGeluCubic = 0.044715f;

enum class Isa { kScalar, kAvx2, kAvx512 };

// HELPLINE_GPT2_ISA=avx2 or scalar selects a lower instruction set (tests of the other paths
// on an AVX-512 machine); it never selects one the CPU lacks.
Isa DetectIsa() {
  __builtin_cpu_init();
  const char* forced = std::getenv("HELPLINE_GPT2_ISA");
  const bool allow512 = forced == nullptr || std::strcmp(forced, "avx512") == 0;
  const bool allow2 = allow512 || std::strcmp(forced, "avx2") == 0;
  if (allow512 && __builtin_cpu_supports("avx512f")) return Isa::kAvx512;
  if (allow2 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c")) {
    return Isa::kAvx2;
  }
  return Isa::kScalar;
}

const Isa kIsa = DetectIsa();

// gelu_tanh(x) = 0.5 x (1 + tanh(u)) = x * sigmoid(2u) = x / (1 + exp(-2u)), which has no
// cancellation for negative x.
inline float GeluTanhScalar(float x) {
  const float u = kSqrt2OverPi * (x + kGeluCubic * x * x * x);
  return x / (1.0f + std::exp(-2.0f * u));
}

inline float GeluErfScalar(float x) { return 0.5f * x * (1.0f + std::erf(x * 0.70710678118654752f)); }

// Applies the epilogue to one row's accumulators acc[0..cols) in place of y[0..cols).
inline void EpilogueScalar(const float* acc, const float* bias, int cols, Epilogue epilogue, float* y) {
  for (int c = 0; c < cols; ++c) {
    float v = acc[c];
    if (bias != nullptr) v += bias[c];
    switch (epilogue) {
      case Epilogue::kNone:
        y[c] = v;
        break;
      case Epilogue::kGeluTanh:
        y[c] = GeluTanhScalar(v);
        break;
      case Epilogue::kGeluErf:
        y[c] = GeluErfScalar(v);
        break;
      case Epilogue::kAddToOutput:
        y[c] = y[c] + v;
        break;
    }
  }
}

// The element type a WeightType is stored as.
template <WeightType WT>
struct Stored {
  using T = uint16_t;
};
template <>
struct Stored<WeightType::kF32> {
  using T = float;
};

template <WeightType WT>
inline float WidenScalar(const typename Stored<WT>::T* p) {
  if constexpr (WT == WeightType::kF32) {
    return *p;
  } else if constexpr (WT == WeightType::kF16) {
    return HalfToFloat(*p);
  } else {
    return Bf16ToFloat(*p);
  }
}

// ---------------------------------------------------------------- scalar

template <WeightType WT>
void LinearScalar(const float* x, int64_t ldx, int m, int k, const void* w_any, const float* bias, int n, int p0,
                  int p1, float* y, int64_t ldy, Epilogue epilogue) {
  using T = typename Stored<WT>::T;
  const T* w = static_cast<const T*>(w_any);
  float acc[kPanel];
  float wf[kPanel];
  for (int p = p0; p < p1; ++p) {
    const T* wp = w + static_cast<int64_t>(p) * k * kPanel;
    const int c0 = p * kPanel;
    const int cols = std::min(kPanel, n - c0);
    for (int r = 0; r < m; ++r) {
      std::fill(acc, acc + kPanel, 0.0f);
      const float* xr = x + r * ldx;
      for (int kk = 0; kk < k; ++kk) {
        const float xv = xr[kk];
        const T* wk = wp + static_cast<int64_t>(kk) * kPanel;
        for (int c = 0; c < cols; ++c) wf[c] = WidenScalar<WT>(wk + c);
        for (int c = 0; c < cols; ++c) acc[c] = std::fma(xv, wf[c], acc[c]);
      }
      EpilogueScalar(acc, bias == nullptr ? nullptr : bias + c0, cols, epilogue, y + r * ldy + c0);
    }
  }
}

// ---------------------------------------------------------------- AVX2 (one row at a time)

#define HELPLINE_AVX2 __attribute__((target("avx2,fma,f16c")))

template <WeightType WT>
HELPLINE_AVX2 inline __m256 Load256(const typename Stored<WT>::T* p) {
  if constexpr (WT == WeightType::kF32) {
    return _mm256_loadu_ps(p);
  } else {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    if constexpr (WT == WeightType::kF16) {
      return _mm256_cvtph_ps(h);
    } else {
      return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    }
  }
}

template <WeightType WT>
HELPLINE_AVX2 void LinearAvx2(const float* x, int64_t ldx, int m, int k, const void* w_any, const float* bias,
                              int n, int p0, int p1, float* y, int64_t ldy, Epilogue epilogue) {
  using T = typename Stored<WT>::T;
  const T* w = static_cast<const T*>(w_any);
  alignas(32) float acc_out[kPanel];
  for (int p = p0; p < p1; ++p) {
    const T* wp = w + static_cast<int64_t>(p) * k * kPanel;
    const int c0 = p * kPanel;
    const int cols = std::min(kPanel, n - c0);
    for (int r = 0; r < m; ++r) {
      __m256 acc[8];
      for (int j = 0; j < 8; ++j) acc[j] = _mm256_setzero_ps();
      const float* xr = x + r * ldx;
      for (int kk = 0; kk < k; ++kk) {
        const __m256 xv = _mm256_broadcast_ss(xr + kk);
        const T* wk = wp + static_cast<int64_t>(kk) * kPanel;
        for (int j = 0; j < 8; ++j) acc[j] = _mm256_fmadd_ps(xv, Load256<WT>(wk + 8 * j), acc[j]);
      }
      for (int j = 0; j < 8; ++j) _mm256_store_ps(acc_out + 8 * j, acc[j]);
      EpilogueScalar(acc_out, bias == nullptr ? nullptr : bias + c0, cols, epilogue, y + r * ldy + c0);
    }
  }
}

// ---------------------------------------------------------------- AVX-512

#define HELPLINE_AVX512 __attribute__((target("avx512f,avx512dq")))

template <WeightType WT>
HELPLINE_AVX512 inline __m512 Load512(const typename Stored<WT>::T* p) {
  if constexpr (WT == WeightType::kF32) {
    return _mm512_loadu_ps(p);
  } else {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    if constexpr (WT == WeightType::kF16) {
      return _mm512_cvtph_ps(h);
    } else {
      return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
  }
}

HELPLINE_AVX512 inline __m512 Exp512(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.0f)), _mm512_set1_ps(88.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);
}

HELPLINE_AVX512 inline __m512 GeluTanh512(__m512 v) {
  const __m512 v3 = _mm512_mul_ps(_mm512_mul_ps(v, v), v);
  const __m512 u = _mm512_mul_ps(_mm512_set1_ps(kSqrt2OverPi), _mm512_fmadd_ps(_mm512_set1_ps(kGeluCubic), v3, v));
  const __m512 e = Exp512(_mm512_mul_ps(_mm512_set1_ps(-2.0f), u));
  return _mm512_div_ps(v, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

// MR rows x NP panels of 64 columns; the k loop is one FMA per (row, column), so the tile
// shape changes only how many independent chains run at once, never a sum's order. The
// weights are widened to f32 in registers (exactly), so the stored type changes only the
// bytes read.
template <int MR, int NP, WeightType WT>
HELPLINE_AVX512 inline void Tile512(const float* x, int64_t ldx, int k, const typename Stored<WT>::T* wp,
                                    int64_t panel_stride, const float* bias, int n_left, float* y, int64_t ldy,
                                    Epilogue epilogue) {
  constexpr int NV = 4 * NP;
  __m512 acc[MR][NV];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) acc[r][j] = _mm512_setzero_ps();
  for (int kk = 0; kk < k; ++kk) {
    __m512 wv[NV];
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) {
      wv[j] = Load512<WT>(wp + (j / 4) * panel_stride + static_cast<int64_t>(kk) * kPanel + 16 * (j % 4));
    }
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const __m512 xv = _mm512_set1_ps(x[r * ldx + kk]);
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) acc[r][j] = _mm512_fmadd_ps(xv, wv[j], acc[r][j]);
    }
  }
#pragma GCC unroll 8
  for (int j = 0; j < NV; ++j) {
    const int left = n_left - 16 * j;
    if (left <= 0) break;
    const __mmask16 mask = left >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << left) - 1);
    const __m512 b = bias == nullptr ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(mask, bias + 16 * j);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      float* out = y + r * ldy + 16 * j;
      __m512 v = bias == nullptr ? acc[r][j] : _mm512_add_ps(acc[r][j], b);
      switch (epilogue) {
        case Epilogue::kNone:
          break;
        case Epilogue::kGeluTanh:
          v = GeluTanh512(v);
          break;
        case Epilogue::kGeluErf: {
          alignas(64) float tmp[16];
          _mm512_store_ps(tmp, v);
          for (float& t : tmp) t = GeluErfScalar(t);
          v = _mm512_load_ps(tmp);
          break;
        }
        case Epilogue::kAddToOutput:
          v = _mm512_add_ps(_mm512_maskz_loadu_ps(mask, out), v);
          break;
      }
      _mm512_mask_storeu_ps(out, mask, v);
    }
  }
}

// Rows in blocks of MR for panels [p0, p1), NP panels at a time (one at the end if odd).
template <int MR, int NP, WeightType WT>
HELPLINE_AVX512 void Rows512(const float* x, int64_t ldx, int k, const typename Stored<WT>::T* w, const float* bias,
                             int n, int p0, int p1, float* y, int64_t ldy, Epilogue epilogue) {
  const int64_t stride = static_cast<int64_t>(k) * kPanel;
  int p = p0;
  for (; p + NP <= p1; p += NP) {
    const int c0 = p * kPanel;
    Tile512<MR, NP, WT>(x, ldx, k, w + p * stride, stride, bias == nullptr ? nullptr : bias + c0, n - c0, y + c0,
                        ldy, epilogue);
  }
  for (; p < p1; ++p) {
    const int c0 = p * kPanel;
    Tile512<MR, 1, WT>(x, ldx, k, w + p * stride, stride, bias == nullptr ? nullptr : bias + c0, n - c0, y + c0,
                       ldy, epilogue);
  }
}

// Rows in tiles of up to 6 for panels [p0, p1). The panels are walked in blocks of ~256 KB of
// weights, and all rows go through one block before the next: the weights stream from memory
// once per call, not once per 6 rows (at M = 64 that was 11 passes over the LM head).
template <WeightType WT>
HELPLINE_AVX512 void LinearAvx512(const float* x, int64_t ldx, int m, int k, const void* w_any, const float* bias,
                                  int n, int p0, int p1, float* y, int64_t ldy, Epilogue epilogue) {
  const auto* w = static_cast<const typename Stored<WT>::T*>(w_any);
  const int64_t panel_bytes = static_cast<int64_t>(k) * kPanel * sizeof(typename Stored<WT>::T);
  const int block = m <= 6 ? p1 - p0 : static_cast<int>(std::max<int64_t>(2, (256 << 10) / panel_bytes));
  for (int b0 = p0; b0 < p1; b0 += block) {
    const int b1 = std::min(p1, b0 + block);
    int r = 0;
    for (; r + 6 <= m; r += 6) {
      Rows512<6, 1, WT>(x + r * ldx, ldx, k, w, bias, n, b0, b1, y + r * ldy, ldy, epilogue);
    }
    switch (m - r) {
      case 5: Rows512<5, 1, WT>(x + r * ldx, ldx, k, w, bias, n, b0, b1, y + r * ldy, ldy, epilogue); break;
      case 4: Rows512<4, 1, WT>(x + r * ldx, ldx, k, w, bias, n, b0, b1, y + r * ldy, ldy, epilogue); break;
      case 3: Rows512<3, 2, WT>(x + r * ldx, ldx, k, w, bias, n, b0, b1, y + r * ldy, ldy, epilogue); break;
      case 2: Rows512<2, 2, WT>(x + r * ldx, ldx, k, w, bias, n, b0, b1, y + r * ldy, ldy, epilogue); break;
      case 1: Rows512<1, 2, WT>(x + r * ldx, ldx, k, w, bias, n, b0, b1, y + r * ldy, ldy, epilogue); break;
      default: break;
    }
  }
}

template <int NV>
HELPLINE_AVX512 void Attend512(const float* q, const float* keys, const float* values, int n, float scale,
                               float* scores, float* out) {
  constexpr int hd = 16 * NV;
  __m512 qv[NV];
  for (int c = 0; c < NV; ++c) qv[c] = _mm512_loadu_ps(q + 16 * c);
  float max_score = -INFINITY;
  for (int j = 0; j < n; ++j) {
    const float* kj = keys + static_cast<int64_t>(j) * hd;
    __m512 acc = _mm512_mul_ps(qv[0], _mm512_loadu_ps(kj));
    for (int c = 1; c < NV; ++c) acc = _mm512_fmadd_ps(qv[c], _mm512_loadu_ps(kj + 16 * c), acc);
    const float s = _mm512_reduce_add_ps(acc) * scale;
    scores[j] = s;
    max_score = std::max(max_score, s);
  }
  const __m512 mx = _mm512_set1_ps(max_score);
  __m512 sum = _mm512_setzero_ps();
  for (int j = 0; j < n; j += 16) {
    const int left = n - j;
    const __mmask16 mask = left >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << left) - 1);
    const __m512 e = _mm512_maskz_mov_ps(mask, Exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(mask, scores + j), mx)));
    _mm512_mask_storeu_ps(scores + j, mask, e);
    sum = _mm512_add_ps(sum, e);
  }
  const float inv = 1.0f / _mm512_reduce_add_ps(sum);
  __m512 acc[NV];
  for (int c = 0; c < NV; ++c) acc[c] = _mm512_setzero_ps();
  for (int j = 0; j < n; ++j) {
    const __m512 pj = _mm512_set1_ps(scores[j]);
    const float* vj = values + static_cast<int64_t>(j) * hd;
    for (int c = 0; c < NV; ++c) acc[c] = _mm512_fmadd_ps(pj, _mm512_loadu_ps(vj + 16 * c), acc[c]);
  }
  const __m512 iv = _mm512_set1_ps(inv);
  for (int c = 0; c < NV; ++c) _mm512_storeu_ps(out + 16 * c, _mm512_mul_ps(acc[c], iv));
}

void AttendScalar(const float* q, const float* keys, const float* values, int n, int hd, float scale,
                  float* scores, float* out) {
  float max_score = -INFINITY;
  for (int j = 0; j < n; ++j) {
    const float* kj = keys + static_cast<int64_t>(j) * hd;
    float s = 0.0f;
    for (int c = 0; c < hd; ++c) s = std::fma(q[c], kj[c], s);
    scores[j] = s * scale;
    max_score = std::max(max_score, scores[j]);
  }
  float sum = 0.0f;
  for (int j = 0; j < n; ++j) {
    scores[j] = std::exp(scores[j] - max_score);
    sum += scores[j];
  }
  const float inv = 1.0f / sum;
  std::fill(out, out + hd, 0.0f);
  for (int j = 0; j < n; ++j) {
    const float* vj = values + static_cast<int64_t>(j) * hd;
    for (int c = 0; c < hd; ++c) out[c] = std::fma(scores[j], vj[c], out[c]);
  }
  for (int c = 0; c < hd; ++c) out[c] *= inv;
}

}  // namespace

void LinearPanels(const float* x, int64_t ldx, int m, int k, const void* w, WeightType wtype, const float* bias,
                  int n, int p0, int p1, float* y, int64_t ldy, Epilogue epilogue) {
#define HELPLINE_LINEAR(fn)                                                                 \
  switch (wtype) {                                                                          \
    case WeightType::kF32:                                                                  \
      return fn<WeightType::kF32>(x, ldx, m, k, w, bias, n, p0, p1, y, ldy, epilogue);      \
    case WeightType::kF16:                                                                  \
      return fn<WeightType::kF16>(x, ldx, m, k, w, bias, n, p0, p1, y, ldy, epilogue);      \
    case WeightType::kBF16:                                                                 \
      return fn<WeightType::kBF16>(x, ldx, m, k, w, bias, n, p0, p1, y, ldy, epilogue);     \
  }                                                                                         \
  return
  switch (kIsa) {
    case Isa::kAvx512:
      HELPLINE_LINEAR(LinearAvx512);
    case Isa::kAvx2:
      HELPLINE_LINEAR(LinearAvx2);
    case Isa::kScalar:
      HELPLINE_LINEAR(LinearScalar);
  }
#undef HELPLINE_LINEAR
}

void ReadPackedColumn(const void* w, WeightType wtype, int k, int col, float* out) {
  const int64_t base = static_cast<int64_t>(col / kPanel) * k * kPanel + col % kPanel;
  for (int e = 0; e < k; ++e) {
    const int64_t i = base + static_cast<int64_t>(e) * kPanel;
    switch (wtype) {
      case WeightType::kF32:
        out[e] = static_cast<const float*>(w)[i];
        break;
      case WeightType::kF16:
        out[e] = HalfToFloat(static_cast<const uint16_t*>(w)[i]);
        break;
      case WeightType::kBF16:
        out[e] = Bf16ToFloat(static_cast<const uint16_t*>(w)[i]);
        break;
    }
  }
}

size_t WeightTypeSize(WeightType type) { return type == WeightType::kF32 ? 4 : 2; }

const char* WeightTypeName(WeightType type) {
  switch (type) {
    case WeightType::kF32: return "f32";
    case WeightType::kF16: return "f16";
    case WeightType::kBF16: return "bf16";
  }
  return "?";
}

void LayerNormRows(const float* x, int64_t ldx, int m, int d, const float* gain, const float* bias, float eps,
                   float* y, int64_t ldy) {
  for (int r = 0; r < m; ++r) {
    const float* xr = x + r * ldx;
    float* yr = y + r * ldy;
    double sum = 0.0;
    for (int c = 0; c < d; ++c) sum += xr[c];
    const double mean = sum / d;
    double var = 0.0;
    for (int c = 0; c < d; ++c) {
      const double t = xr[c] - mean;
      var += t * t;
    }
    var /= d;
    const float rstd = static_cast<float>(1.0 / std::sqrt(var + eps));
    const float meanf = static_cast<float>(mean);
    for (int c = 0; c < d; ++c) yr[c] = (xr[c] - meanf) * rstd * gain[c] + bias[c];
  }
}

void AttendQuery(const float* q, const float* keys, const float* values, int n, int hd, float scale, float* scores,
                 float* out) {
  if (kIsa == Isa::kAvx512) {
    switch (hd) {
      case 32: return Attend512<2>(q, keys, values, n, scale, scores, out);
      case 64: return Attend512<4>(q, keys, values, n, scale, scores, out);
      case 80: return Attend512<5>(q, keys, values, n, scale, scores, out);
      case 96: return Attend512<6>(q, keys, values, n, scale, scores, out);
      case 128: return Attend512<8>(q, keys, values, n, scale, scores, out);
      default: break;
    }
  }
  AttendScalar(q, keys, values, n, hd, scale, scores, out);
}

const char* IsaName() {
  switch (kIsa) {
    case Isa::kAvx512: return "avx512";
    case Isa::kAvx2: return "avx2";
    case Isa::kScalar: return "scalar";
  }
  return "?";
}

}  // namespace helpline::lm::gpt2_kernels
