#include "nlu/model/bf16_linear.h"

// GCC 12's AVX-512 intrinsics start from _mm512_undefined_ps(), which -Wmaybe-uninitialized
// reports as a use of an uninitialized value: a false positive of the headers.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

// The AVX-512 code below sits behind target attributes (the build stays generic); which path
// runs is decided once, from cpuid and HELPLINE_GPT2_ISA.

namespace helpline::nlu::model::bf16 {
namespace {

// The widest row tile of the AVX-512 kernel: 6 rows x 4 zmm accumulators = 24 registers, plus
// the 4 weight vectors of one k-pair of the panel and the broadcast row pair: 29 of 32.
constexpr int kMaxRows = 6;

bool DetectAvx512Bf16() {
  __builtin_cpu_init();
  const char* forced = std::getenv("HELPLINE_GPT2_ISA");
  if (forced != nullptr && std::strcmp(forced, "avx512") != 0) return false;
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512bf16");
}

bool UseAvx512Bf16() {
  static const bool use = DetectAvx512Bf16();
  return use;
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
  __mmask16 mask[4];
  __m512 b[4];
#pragma GCC unroll 4
  for (int q = 0; q < 4; ++q) {
    const int valid = std::clamp(cols - 16 * q, 0, 16);
    mask[q] = static_cast<__mmask16>((1u << valid) - 1u);
    b[q] = bias == nullptr ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(mask[q], bias + 16 * q);
  }
  const __m512 zero = _mm512_setzero_ps();
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
    float* yr = y + r * ldy;
#pragma GCC unroll 4
    for (int q = 0; q < 4; ++q) {
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
  if (UseAvx512Bf16()) {
    PackRowsAvx512(x, ldx, m, k, out);
  } else {
    PackRowsScalar(x, ldx, m, k, out);
  }
}

void Linear(const uint32_t* x, int m, int k, const uint16_t* w, const float* bias, int n, float* y,
            int64_t ldy, Epilogue epilogue) {
  if (m <= 0 || n <= 0) return;
  if (UseAvx512Bf16()) {
    LinearAvx512(x, m, k, w, bias, n, y, ldy, epilogue);
  } else {
    LinearScalar(x, m, k, w, bias, n, y, ldy, epilogue);
  }
}

const char* IsaName() { return UseAvx512Bf16() ? "avx512bf16" : "scalar"; }

}  // namespace helpline::nlu::model::bf16
