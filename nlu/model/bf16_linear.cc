#include "nlu/model/bf16_linear.h"

// GCC 12's AVX-512 intrinsics start from _mm512_undefined_ps(), which -Wmaybe-uninitialized
// reports as a use of an uninitialized value: a false positive of the headers.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>

// The AVX-512 and AVX2 code below sits behind target attributes (the build stays generic); which
// path runs is decided once, from cpuid and HELPLINE_GPT2_ISA (DetectIsa).

namespace helpline::nlu::model::bf16 {
namespace {

// The widest row tile of the AVX-512 BF16 kernel: 6 rows x 4 zmm accumulators = 24 registers,
// plus the 4 weight vectors of one k-pair of the panel and the broadcast row pair: 29 of 32.
constexpr int kMaxRows = 6;

enum class Isa { kScalar, kAvx2, kAvx512F, kAvx512Bf16 };

// The header's selection rules: HELPLINE_GPT2_ISA unset or "avx512" allows every path, "avx512f"
// all but the BF16 one, "avx2" AVX2 + FMA and the plain C++ one, anything else only the latter;
// of the allowed paths, the first the CPU supports.
Isa DetectIsa() {
  __builtin_cpu_init();
  const char* forced = std::getenv("HELPLINE_GPT2_ISA");
  const bool allow_bf16 = forced == nullptr || std::strcmp(forced, "avx512") == 0;
  const bool allow_512f = allow_bf16 || std::strcmp(forced, "avx512f") == 0;
  const bool allow_avx2 = allow_512f || std::strcmp(forced, "avx2") == 0;
  const bool avx512f = __builtin_cpu_supports("avx512f");
  if (allow_bf16 && avx512f && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512bf16")) {
    return Isa::kAvx512Bf16;
  }
  if (allow_512f && avx512f) return Isa::kAvx512F;
  if (allow_avx2 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    return Isa::kAvx2;
  }
  return Isa::kScalar;
}

Isa CurrentIsa() {
  static const Isa isa = DetectIsa();
  return isa;
}

// float32 -> bfloat16, round to nearest even (NaN stays a quiet NaN of the same sign).
inline uint16_t ToBf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

inline float FromBf16(uint32_t h) {
  const uint32_t u = h << 16;
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

// acc + bias through the epilogue, into y (scalar; the AVX-512 epilogue does the same
// operations in the same order).
inline void EpilogueScalar(const float* acc, const float* bias, int cols, Epilogue epilogue,
                           float* y) {
  for (int c = 0; c < cols; ++c) {
    float v = acc[c];
    if (bias != nullptr) v += bias[c];
    switch (epilogue) {
      case Epilogue::kNone:
        y[c] = v;
        break;
      case Epilogue::kRelu:
        y[c] = v > 0.0f ? v : 0.0f;
        break;
      case Epilogue::kAddToOutput:
        y[c] = y[c] + v;
        break;
    }
  }
}

void PackRowsScalar(const float* x, int64_t ldx, int m, int k, uint32_t* out) {
  const int kp = KPairs(k);
  for (int r = 0; r < m; ++r) {
    const float* xr = x + r * ldx;
    uint32_t* o = out + static_cast<int64_t>(r) * kp;
    for (int j = 0; j < kp; ++j) {
      const uint32_t lo = ToBf16(xr[2 * j]);
      const uint32_t hi = 2 * j + 1 < k ? ToBf16(xr[2 * j + 1]) : 0u;
      o[j] = lo | hi << 16;
    }
  }
}

// Per output element: acc += x_hi * w_hi, then acc += x_lo * w_lo, each rounded to float32:
// VDPBF16PS's order. Both products are exact in float32 (8-bit significands), so each step
// equals std::fma on the widened values; it is written as a multiply and an add so that the
// compiler vectorizes it without an FMA unit (contracting it into an FMA would not change it).
void LinearScalar(const uint32_t* x, int m, int k, const uint16_t* w, const float* bias, int n,
                  float* y, int64_t ldy, Epilogue epilogue) {
  const int kp = KPairs(k);
  const int panels = (n + kPanel - 1) / kPanel;
  float acc[kPanel];
  for (int p = 0; p < panels; ++p) {
    const uint16_t* wp = w + static_cast<int64_t>(p) * kp * kPanel * 2;
    const int c0 = p * kPanel;
    const int cols = std::min(kPanel, n - c0);
    for (int r = 0; r < m; ++r) {
      const uint32_t* xr = x + static_cast<int64_t>(r) * kp;
      std::fill(acc, acc + kPanel, 0.0f);
      for (int j = 0; j < kp; ++j) {
        const float x_lo = FromBf16(xr[j] & 0xffffu);
        const float x_hi = FromBf16(xr[j] >> 16);
        const uint16_t* wj = wp + j * kPanel * 2;
        for (int c = 0; c < kPanel; ++c) {
          float a = acc[c];
          a += x_hi * FromBf16(wj[2 * c + 1]);
          a += x_lo * FromBf16(wj[2 * c]);
          acc[c] = a;
        }
      }
      EpilogueScalar(acc, bias == nullptr ? nullptr : bias + c0, cols, epilogue, y + r * ldy + c0);
    }
  }
}

// y[r][0, cols) = epilogue(acc[r] + bias) for r < MR from MR rows x NV zmm accumulators of 16
// columns (cols may exceed 16 NV: the rest is not stored). The same operations in the same order
// as EpilogueScalar (without a bias, acc + 0.0f: acc itself, as an accumulator that starts from
// +0.0f is never -0.0f).
template <int MR, int NV>
__attribute__((target("avx512f"), always_inline)) inline void StoreTile512(
    const __m512 (&acc)[MR][NV], const float* bias, int cols, float* y, int64_t ldy,
    Epilogue epilogue) {
  __mmask16 mask[NV];
  __m512 b[NV];
#pragma GCC unroll 4
  for (int q = 0; q < NV; ++q) {
    const int valid = std::clamp(cols - 16 * q, 0, 16);
    mask[q] = static_cast<__mmask16>((1u << valid) - 1u);
    b[q] = bias == nullptr ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(mask[q], bias + 16 * q);
  }
  const __m512 zero = _mm512_setzero_ps();
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
    float* yr = y + r * ldy;
#pragma GCC unroll 4
    for (int q = 0; q < NV; ++q) {
      if (mask[q] == 0) continue;
      __m512 v = _mm512_add_ps(acc[r][q], b[q]);
      if (epilogue == Epilogue::kRelu) {
        v = _mm512_max_ps(v, zero);
      } else if (epilogue == Epilogue::kAddToOutput) {
        v = _mm512_add_ps(_mm512_maskz_loadu_ps(mask[q], yr + 16 * q), v);
      }
      _mm512_mask_storeu_ps(yr + 16 * q, mask[q], v);
    }
  }
}

#define HELPLINE_BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512bf16")))

HELPLINE_BF16_TARGET void PackRowsAvx512(const float* x, int64_t ldx, int m, int k, uint32_t* out) {
  const int kp = KPairs(k);
  for (int r = 0; r < m; ++r) {
    const float* xr = x + r * ldx;
    uint32_t* o = out + static_cast<int64_t>(r) * kp;
    int i = 0;
    // 16 floats -> 16 bfloat16 = 8 pairs, element order kept (pair j = elements 2j, 2j + 1).
    for (; i + 16 <= k; i += 16) {
      const __m256bh h = _mm512_cvtneps_pbh(_mm512_loadu_ps(xr + i));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + i / 2), reinterpret_cast<__m256i>(h));
    }
    for (int j = i / 2; j < kp; ++j) {
      const uint32_t lo = ToBf16(xr[2 * j]);
      const uint32_t hi = 2 * j + 1 < k ? ToBf16(xr[2 * j + 1]) : 0u;
      o[j] = lo | hi << 16;
    }
  }
}

// MR rows x one 64-column panel: y[r][0, cols) for r < MR. x: the rows' pairs (row stride kp);
// wp: the panel, [kp][64] pairs. (Software prefetches of the next panel measured slower: the
// hardware prefetchers follow the panel stream.)
template <int MR>
HELPLINE_BF16_TARGET void PanelTile(const uint32_t* x, int kp, const uint32_t* wp,
                                    const float* bias, int cols, float* y, int64_t ldy,
                                    Epilogue epilogue) {
  __m512 acc[MR][4];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 4
    for (int q = 0; q < 4; ++q) acc[r][q] = _mm512_setzero_ps();
  }
  for (int j = 0; j < kp; ++j) {
    const uint32_t* wj = wp + j * kPanel;
    const __m512bh w0 = reinterpret_cast<__m512bh>(_mm512_loadu_si512(wj));
    const __m512bh w1 = reinterpret_cast<__m512bh>(_mm512_loadu_si512(wj + 16));
    const __m512bh w2 = reinterpret_cast<__m512bh>(_mm512_loadu_si512(wj + 32));
    const __m512bh w3 = reinterpret_cast<__m512bh>(_mm512_loadu_si512(wj + 48));
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const __m512bh b =
          reinterpret_cast<__m512bh>(_mm512_set1_epi32(static_cast<int>(x[r * kp + j])));
      acc[r][0] = _mm512_dpbf16_ps(acc[r][0], b, w0);
      acc[r][1] = _mm512_dpbf16_ps(acc[r][1], b, w1);
      acc[r][2] = _mm512_dpbf16_ps(acc[r][2], b, w2);
      acc[r][3] = _mm512_dpbf16_ps(acc[r][3], b, w3);
    }
  }
  StoreTile512<MR, 4>(acc, bias, cols, y, ldy, epilogue);
}

using TileFn = void (*)(const uint32_t*, int, const uint32_t*, const float*, int, float*, int64_t,
                        Epilogue);
constexpr TileFn kTiles[kMaxRows + 1] = {nullptr,      PanelTile<1>, PanelTile<2>, PanelTile<3>,
                                         PanelTile<4>, PanelTile<5>, PanelTile<6>};

// Panels outside, row tiles inside: a panel (kp * 256 bytes) comes from memory once and from the
// L1/L2 caches for the other row tiles. The m rows are split into ceil(m / 6) tiles of near-equal
// height (25 rows: 5 x 5 rather than 4 x 6 + 1: a 1-row tile is bound by its weight loads).
void LinearAvx512(const uint32_t* x, int m, int k, const uint16_t* w, const float* bias, int n,
                  float* y, int64_t ldy, Epilogue epilogue) {
  const int kp = KPairs(k);
  const int panels = (n + kPanel - 1) / kPanel;
  const int tiles = (m + kMaxRows - 1) / kMaxRows;
  const int base = m / tiles, extra = m % tiles;
  const uint32_t* w32 = reinterpret_cast<const uint32_t*>(w);
  for (int p = 0; p < panels; ++p) {
    const uint32_t* wp = w32 + static_cast<int64_t>(p) * kp * kPanel;
    const int c0 = p * kPanel;
    const int cols = std::min(kPanel, n - c0);
    const float* bp = bias == nullptr ? nullptr : bias + c0;
    int r0 = 0;
    for (int t = 0; t < tiles; ++t) {
      const int rows = base + (t < extra ? 1 : 0);
      kTiles[rows](x + static_cast<int64_t>(r0) * kp, kp, wp, bp, cols, y + r0 * ldy + c0, ldy,
                   epilogue);
      r0 += rows;
    }
  }
}

// ---- The float32 FMA paths (AVX-512F; AVX2 + FMA): no bfloat16 instructions ----
//
// A bfloat16 value widened to float32 is its bits << 16, and the product of two is exact in
// float32 (outside the denormal range), so acc = fma(x_odd, w_odd, acc) then acc = fma(x_even,
// w_even, acc) rounds exactly as VDPBF16PS's two additions (and as LinearScalar). Per k-pair, a
// weight vector of pairs splits into its even elements (pair << 16) and its odd ones (pair &
// 0xffff0000). The rows are widened once per call into two float32 planes, so that the kernels
// broadcast each value straight from memory (VBROADCASTSS: a load, no integer work per tile and
// k-pair).
//
// A zmm FMA does 16 products, VDPBF16PS 32: on the development machine (see the tile shapes
// below) the AVX-512F path runs at about half the BF16 path's speed, the AVX2 one at a fifth.

// Rows of pairs [m][kp] as float32 planes [m][kp]: even = the low halves, odd = the high halves.
struct WideRows {
  const float* even;
  const float* odd;
};

// The per-thread storage the planes live in (reused across calls; Linear is thread-safe).
float* WideRowsBuffer(int64_t floats) {
  thread_local std::vector<float, Aligned64<float>> buffer;
  if (static_cast<int64_t>(buffer.size()) < floats) buffer.resize(floats);
  return buffer.data();
}

#define HELPLINE_F512_TARGET __attribute__((target("avx512f")))
#define HELPLINE_AVX2_TARGET __attribute__((target("avx2,fma")))

HELPLINE_F512_TARGET WideRows WidenRows512(const uint32_t* x, int64_t size) {
  float* even = WideRowsBuffer(2 * size);
  float* odd = even + size;
  const __m512i high = _mm512_set1_epi32(static_cast<int>(0xffff0000u));
  int64_t i = 0;
  for (; i + 16 <= size; i += 16) {
    const __m512i p = _mm512_loadu_si512(x + i);
    _mm512_storeu_si512(even + i, _mm512_slli_epi32(p, 16));
    _mm512_storeu_si512(odd + i, _mm512_and_si512(p, high));
  }
  for (; i < size; ++i) {
    even[i] = FromBf16(x[i] & 0xffffu);
    odd[i] = FromBf16(x[i] >> 16);
  }
  return {even, odd};
}

HELPLINE_AVX2_TARGET WideRows WidenRowsAvx2(const uint32_t* x, int64_t size) {
  float* even = WideRowsBuffer(2 * size);
  float* odd = even + size;
  const __m256i high = _mm256_set1_epi32(static_cast<int>(0xffff0000u));
  int64_t i = 0;
  for (; i + 8 <= size; i += 8) {
    const __m256i p = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(even + i), _mm256_slli_epi32(p, 16));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(odd + i), _mm256_and_si256(p, high));
  }
  for (; i < size; ++i) {
    even[i] = FromBf16(x[i] & 0xffffu);
    odd[i] = FromBf16(x[i] >> 16);
  }
  return {even, odd};
}

// ToBf16 on 16 floats at once (the same integer steps, NaN included), as 16 uint16 in order.
HELPLINE_F512_TARGET __m256i ToBf16x16(__m512 f) {
  const __m512i u = _mm512_castps_si512(f);
  const __m512i top = _mm512_srli_epi32(u, 16);
  const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
                                                _mm512_set1_epi32(0x7f800000));
  const __m512i odd = _mm512_and_si512(top, _mm512_set1_epi32(1));
  const __m512i rounded =
      _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), odd)), 16);
  const __m512i quiet = _mm512_or_si512(top, _mm512_set1_epi32(0x40));
  return _mm512_cvtepi32_epi16(_mm512_mask_blend_epi32(nan, rounded, quiet));
}

// ToBf16 on 8 floats at once, as 8 uint32 below 2^16.
HELPLINE_AVX2_TARGET __m256i ToBf16x8(__m256 f) {
  const __m256i u = _mm256_castps_si256(f);
  const __m256i top = _mm256_srli_epi32(u, 16);
  // |u| as a signed integer is at most 0x7fffffff: the signed comparison is the unsigned one.
  const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff)),
                                         _mm256_set1_epi32(0x7f800000));
  const __m256i odd = _mm256_and_si256(top, _mm256_set1_epi32(1));
  const __m256i rounded =
      _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(_mm256_set1_epi32(0x7fff), odd)), 16);
  const __m256i quiet = _mm256_or_si256(top, _mm256_set1_epi32(0x40));
  return _mm256_blendv_epi8(rounded, quiet, nan);
}

HELPLINE_F512_TARGET void PackRows512(const float* x, int64_t ldx, int m, int k, uint32_t* out) {
  const int kp = KPairs(k);
  for (int r = 0; r < m; ++r) {
    const float* xr = x + r * ldx;
    uint32_t* o = out + static_cast<int64_t>(r) * kp;
    int i = 0;
    for (; i + 16 <= k; i += 16) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + i / 2),
                          ToBf16x16(_mm512_loadu_ps(xr + i)));
    }
    for (int j = i / 2; j < kp; ++j) {
      const uint32_t lo = ToBf16(xr[2 * j]);
      const uint32_t hi = 2 * j + 1 < k ? ToBf16(xr[2 * j + 1]) : 0u;
      o[j] = lo | hi << 16;
    }
  }
}

HELPLINE_AVX2_TARGET void PackRowsAvx2(const float* x, int64_t ldx, int m, int k, uint32_t* out) {
  const int kp = KPairs(k);
  for (int r = 0; r < m; ++r) {
    const float* xr = x + r * ldx;
    uint32_t* o = out + static_cast<int64_t>(r) * kp;
    int i = 0;
    for (; i + 16 <= k; i += 16) {
      // packus interleaves the 128-bit lanes (a0-3, b0-3, a4-7, b4-7); the permute restores order.
      const __m256i packed = _mm256_packus_epi32(ToBf16x8(_mm256_loadu_ps(xr + i)),
                                                 ToBf16x8(_mm256_loadu_ps(xr + i + 8)));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + i / 2),
                          _mm256_permute4x64_epi64(packed, 0xd8));
    }
    for (int j = i / 2; j < kp; ++j) {
      const uint32_t lo = ToBf16(xr[2 * j]);
      const uint32_t hi = 2 * j + 1 < k ? ToBf16(xr[2 * j + 1]) : 0u;
      o[j] = lo | hi << 16;
    }
  }
}

// MR rows x NV vectors of the panel's columns (a strip): y[r][0, cols) for r < MR. x: the rows'
// planes from the tile's first row (row stride kp); wp: the strip's first pair in the panel
// ([kp][64] pairs); bias and y: from the strip's first column.
using FmaTileFn = void (*)(WideRows, int, const uint32_t*, const float*, int, float*, int64_t,
                           Epilogue);

template <int MR, int NV>
HELPLINE_F512_TARGET void StripTile512(WideRows x, int kp, const uint32_t* wp, const float* bias,
                                       int cols, float* y, int64_t ldy, Epilogue epilogue) {
  __m512 acc[MR][NV];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 4
    for (int q = 0; q < NV; ++q) acc[r][q] = _mm512_setzero_ps();
  }
  const __m512i high = _mm512_set1_epi32(static_cast<int>(0xffff0000u));
  for (int j = 0; j < kp; ++j) {
    const uint32_t* wj = wp + j * kPanel;
#pragma GCC unroll 4
    for (int q = 0; q < NV; ++q) {
      const __m512i w = _mm512_loadu_si512(wj + 16 * q);
      const __m512 w_even = _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
      const __m512 w_odd = _mm512_castsi512_ps(_mm512_and_si512(w, high));
#pragma GCC unroll 16
      for (int r = 0; r < MR; ++r) {
        acc[r][q] = _mm512_fmadd_ps(_mm512_set1_ps(x.odd[r * kp + j]), w_odd, acc[r][q]);
        acc[r][q] = _mm512_fmadd_ps(_mm512_set1_ps(x.even[r * kp + j]), w_even, acc[r][q]);
      }
    }
  }
  StoreTile512<MR, NV>(acc, bias, cols, y, ldy, epilogue);
}

template <int MR, int NV>
HELPLINE_AVX2_TARGET void StripTileAvx2(WideRows x, int kp, const uint32_t* wp, const float* bias,
                                        int cols, float* y, int64_t ldy, Epilogue epilogue) {
  __m256 acc[MR][NV];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 8
    for (int q = 0; q < NV; ++q) acc[r][q] = _mm256_setzero_ps();
  }
  const __m256i high = _mm256_set1_epi32(static_cast<int>(0xffff0000u));
  for (int j = 0; j < kp; ++j) {
    const uint32_t* wj = wp + j * kPanel;
    __m256 w_even[NV], w_odd[NV];
#pragma GCC unroll 8
    for (int q = 0; q < NV; ++q) {
      const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wj + 8 * q));
      w_even[q] = _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
      w_odd[q] = _mm256_castsi256_ps(_mm256_and_si256(w, high));
    }
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const __m256 x_odd = _mm256_broadcast_ss(x.odd + r * kp + j);
      const __m256 x_even = _mm256_broadcast_ss(x.even + r * kp + j);
#pragma GCC unroll 8
      for (int q = 0; q < NV; ++q) {
        acc[r][q] = _mm256_fmadd_ps(x_odd, w_odd[q], acc[r][q]);
        acc[r][q] = _mm256_fmadd_ps(x_even, w_even[q], acc[r][q]);
      }
    }
  }
  // The epilogue as StoreTile512's, with 8-column vectors.
  __m256i mask[NV];
  __m256 b[NV];
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
#pragma GCC unroll 8
  for (int q = 0; q < NV; ++q) {
    mask[q] = _mm256_cmpgt_epi32(_mm256_set1_epi32(cols - 8 * q), lane);
    b[q] = bias == nullptr ? _mm256_setzero_ps() : _mm256_maskload_ps(bias + 8 * q, mask[q]);
  }
  const __m256 zero = _mm256_setzero_ps();
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
    float* yr = y + r * ldy;
#pragma GCC unroll 8
    for (int q = 0; q < NV; ++q) {
      if (cols <= 8 * q) continue;
      __m256 v = _mm256_add_ps(acc[r][q], b[q]);
      if (epilogue == Epilogue::kRelu) {
        v = _mm256_max_ps(v, zero);
      } else if (epilogue == Epilogue::kAddToOutput) {
        v = _mm256_add_ps(_mm256_maskload_ps(yr + 8 * q, mask[q]), v);
      }
      _mm256_maskstore_ps(yr + 8 * q, mask[q], v);
    }
  }
}

template <int kRows, int NV, size_t... I>
constexpr std::array<FmaTileFn, kRows + 1> Tiles512(std::index_sequence<I...>) {
  return {nullptr, &StripTile512<static_cast<int>(I) + 1, NV>...};
}

template <int kRows, int NV, size_t... I>
constexpr std::array<FmaTileFn, kRows + 1> TilesAvx2(std::index_sequence<I...>) {
  return {nullptr, &StripTileAvx2<static_cast<int>(I) + 1, NV>...};
}

// Tile shapes, measured with bench_bf16_linear on one core of the development machine (AMD EPYC,
// cpuid family 26 = Zen 5, whose FMA units are 512 bits wide) for 25 x 512 -> 1536, 7 x 512 ->
// 1536 and 25 x 1536 -> 512. AVX-512F: 4 rows x 64 columns, ~105-113 GMAC/s (about the FMA units'
// peak): 16 accumulators, the rows' 8 broadcasts and the weight halves fit the 32 registers; 5 or 6
// rows x 64 are as fast but spill (GCC keeps the rows' broadcasts in registers), 8 or 12 rows x 32
// are slower (100-110). AVX2: 5 rows x 16 columns, ~45-50 GMAC/s: each accumulator takes two
// dependent FMAs per k-pair, so fewer than ~10 of them leave the FMA units waiting (4 x 16: ~40;
// 6 x 16 spills: ~45; 2 or 3 x 32, 6, 10 or 12 x 8: 25-40).
constexpr int kFma512Rows = 4, kFma512Vectors = 4;
constexpr int kAvx2Rows = 5, kAvx2Vectors = 2;
constexpr auto kTiles512 =
    Tiles512<kFma512Rows, kFma512Vectors>(std::make_index_sequence<kFma512Rows>());
constexpr auto kTilesAvx2 =
    TilesAvx2<kAvx2Rows, kAvx2Vectors>(std::make_index_sequence<kAvx2Rows>());

// Panels, then strips of strip_cols columns, then row tiles of at most max_rows rows (near-equal
// heights, as in LinearAvx512): a strip's weights come from memory once and from the caches for
// the other row tiles.
void LinearFma(WideRows x, int m, int k, const uint16_t* w, const float* bias, int n, float* y,
               int64_t ldy, Epilogue epilogue, const FmaTileFn* tiles, int max_rows,
               int strip_cols) {
  const int kp = KPairs(k);
  const int panels = (n + kPanel - 1) / kPanel;
  const int row_tiles = (m + max_rows - 1) / max_rows;
  const int base = m / row_tiles, extra = m % row_tiles;
  const uint32_t* w32 = reinterpret_cast<const uint32_t*>(w);
  for (int p = 0; p < panels; ++p) {
    const int c0 = p * kPanel;
    const int cols = std::min(kPanel, n - c0);
    for (int s0 = 0; s0 < cols; s0 += strip_cols) {
      const uint32_t* ws = w32 + static_cast<int64_t>(p) * kp * kPanel + s0;
      const float* bs = bias == nullptr ? nullptr : bias + c0 + s0;
      int r0 = 0;
      for (int t = 0; t < row_tiles; ++t) {
        const int rows = base + (t < extra ? 1 : 0);
        const WideRows xt{x.even + static_cast<int64_t>(r0) * kp,
                          x.odd + static_cast<int64_t>(r0) * kp};
        tiles[rows](xt, kp, ws, bs, cols - s0, y + r0 * ldy + c0 + s0, ldy, epilogue);
        r0 += rows;
      }
    }
  }
}

}  // namespace

void PackWeights(const float* w, int n, int k, uint16_t* out) {
  const int kp = KPairs(k);
  std::fill(out, out + PackedWeightsSize(n, k), uint16_t{0});
  for (int c = 0; c < n; ++c) {
    uint16_t* panel = out + static_cast<int64_t>(c / kPanel) * kp * kPanel * 2;
    const int col = c % kPanel;
    const float* wc = w + static_cast<int64_t>(c) * k;
    for (int e = 0; e < k; ++e) {
      panel[(static_cast<int64_t>(e / 2) * kPanel + col) * 2 + e % 2] = ToBf16(wc[e]);
    }
  }
}

PackedWeights PackWeights(const float* w, int n, int k) {
  PackedWeights out(PackedWeightsSize(n, k));
  PackWeights(w, n, k, out.data());
  return out;
}

void PackRows(const float* x, int64_t ldx, int m, int k, uint32_t* out) {
  switch (CurrentIsa()) {
    case Isa::kAvx512Bf16:
      return PackRowsAvx512(x, ldx, m, k, out);
    case Isa::kAvx512F:
      return PackRows512(x, ldx, m, k, out);
    case Isa::kAvx2:
      return PackRowsAvx2(x, ldx, m, k, out);
    case Isa::kScalar:
      break;
  }
  PackRowsScalar(x, ldx, m, k, out);
}

void Linear(const uint32_t* x, int m, int k, const uint16_t* w, const float* bias, int n, float* y,
            int64_t ldy, Epilogue epilogue) {
  if (m <= 0 || n <= 0) return;
  const int64_t size = static_cast<int64_t>(m) * KPairs(k);
  switch (CurrentIsa()) {
    case Isa::kAvx512Bf16:
      return LinearAvx512(x, m, k, w, bias, n, y, ldy, epilogue);
    case Isa::kAvx512F:
      return LinearFma(WidenRows512(x, size), m, k, w, bias, n, y, ldy, epilogue, kTiles512.data(),
                       kFma512Rows, 16 * kFma512Vectors);
    case Isa::kAvx2:
      return LinearFma(WidenRowsAvx2(x, size), m, k, w, bias, n, y, ldy, epilogue,
                       kTilesAvx2.data(), kAvx2Rows, 8 * kAvx2Vectors);
    case Isa::kScalar:
      break;
  }
  LinearScalar(x, m, k, w, bias, n, y, ldy, epilogue);
}

const char* IsaName() {
  switch (CurrentIsa()) {
    case Isa::kAvx512Bf16:
      return "avx512bf16";
    case Isa::kAvx512F:
      return "avx512f";
    case Isa::kAvx2:
      return "avx2";
    case Isa::kScalar:
      break;
  }
  return "scalar";
}

}  // namespace helpline::nlu::model::bf16
