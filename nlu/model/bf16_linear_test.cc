#include "nlu/model/bf16_linear.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

// The ctest runs nlu_bf16_linear_test_avx512f, _avx2 and _scalar repeat all of this with
// HELPLINE_GPT2_ISA=avx512f, avx2 and scalar: every path through the same bit-exact checks (on a
// CPU without a path's instructions, the run falls back to a lower path; IsaName says which).

namespace helpline::nlu::model::bf16 {
namespace {

uint32_t Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  return u;
}

float Widen(uint32_t h) {
  const uint32_t u = h << 16;
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

// Round to nearest even, written differently from the library's: the two bfloat16 neighbours
// of f (its truncation and the next one away from zero) compared by distance in double.
uint16_t RoundBf16(float f) {
  const uint16_t down = static_cast<uint16_t>(Bits(f) >> 16);
  const uint16_t up = static_cast<uint16_t>(down + 1);
  const double to_down = std::abs(static_cast<double>(f) - Widen(down));
  // Past the largest finite bfloat16, rounding goes as if to 2^128 (then infinity).
  const double up_value =
      (up & 0x7fff) == 0x7f80 ? std::copysign(std::ldexp(1.0, 128), f) : Widen(up);
  const double to_up = std::abs(up_value - f);
  if (to_down < to_up) return down;
  if (to_up < to_down) return up;
  return (down & 1) == 0 ? down : up;
}

float Rounded(float f) { return Widen(RoundBf16(f)); }

TEST(Bf16RoundingTest, NearestEvenWithTiesToEven) {
  // Exactly representable: unchanged.
  for (float f : {1.0f, -1.0f, 0.0f, 3.140625f, -0.0078125f, 65536.0f}) {
    const uint32_t pair = [&] {
      uint32_t out;
      PackRows(&f, 1, 1, 1, &out);
      return out;
    }();
    EXPECT_EQ(pair, Bits(f) >> 16) << f;
  }
  struct Case {
    float in;
    uint16_t want;
  };
  const Case cases[] = {
      {1.00390625f, 0x3f80},  // 1 + 2^-8: halfway between 1 and 1 + 2^-7 -> even (1)
      {1.01171875f, 0x3f82},  // 1 + 3 * 2^-8: halfway, the even one is the upper one
      {std::nextafter(1.00390625f, 2.0f), 0x3f81},  // just above halfway -> up
      {std::nextafter(1.00390625f, 0.0f), 0x3f80},  // just below halfway -> down
      {-1.01171875f, 0xbf82},                       // a negative tie
      {3.14159265f, 0x4049},                        // pi -> 3.140625
      {65535.0f, 0x4780},                           // carries into the exponent: 65536
      {3.4028235e38f, 0x7f80},                      // FLT_MAX: past halfway to 2^128 -> infinity
      {-2.5e-5f, RoundBf16(-2.5e-5f)}               // an ordinary small value
  };
  for (const Case& c : cases) {
    EXPECT_EQ(RoundBf16(c.in), c.want) << c.in;  // the test's own rounding agrees
    // Both halves of a pair, and more than 16 values (PackRows' vector loop and its tail).
    std::vector<float> row(40, c.in);
    std::vector<uint32_t> pairs(KPairs(40));
    PackRows(row.data(), 40, 1, 40, pairs.data());
    for (uint32_t p : pairs) EXPECT_EQ(p, c.want | static_cast<uint32_t>(c.want) << 16) << c.in;
    const PackedWeights w = PackWeights(&c.in, 1, 1);
    ASSERT_EQ(w.size(), 128u);
    EXPECT_EQ(w[0], c.want) << c.in;
  }
}

// NaN stays NaN, made quiet (bit 6 of the bfloat16 set), with its sign and top payload bits;
// infinities stay infinite. (The test's RoundBf16 does not handle these.)
TEST(Bf16RoundingTest, NanAndInfinity) {
  struct Case {
    uint32_t in;
    uint16_t want;
  };
  const Case cases[] = {
      {0x7f800000u, 0x7f80},  // +infinity
      {0xff800000u, 0xff80},  // -infinity
      {0x7fc00000u, 0x7fc0},  // the default quiet NaN
      {0x7f800001u, 0x7fc0},  // a signalling NaN, payload in the low half only: made quiet
      {0xffa12345u, 0xffe1},  // a negative signalling NaN with a payload in the top half
      {0x7fffffffu, 0x7fff},  // all ones: rounding up would carry into the sign
  };
  for (const Case& c : cases) {
    float f;
    std::memcpy(&f, &c.in, sizeof(f));
    std::vector<float> row(40, f);
    std::vector<uint32_t> pairs(KPairs(40));
    PackRows(row.data(), 40, 1, 40, pairs.data());
    for (uint32_t p : pairs) {
      EXPECT_EQ(p, c.want | static_cast<uint32_t>(c.want) << 16) << std::hex << c.in;
    }
    const PackedWeights w = PackWeights(&f, 1, 1);
    EXPECT_EQ(w[0], c.want) << std::hex << c.in;
  }
}

TEST(Bf16PackTest, PackRowsLayoutWithStrideAndOddK) {
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int k : {1, 16, 37, 64}) {
    const int m = 3, ldx = k + 5, kp = KPairs(k);
    std::vector<float> x(static_cast<size_t>(m) * ldx);
    for (float& f : x) f = normal(rng);
    std::vector<uint32_t> out(static_cast<size_t>(m) * kp + 1, 0xdeadbeef);
    PackRows(x.data(), ldx, m, k, out.data());
    for (int r = 0; r < m; ++r) {
      for (int j = 0; j < kp; ++j) {
        const uint32_t lo = RoundBf16(x[r * ldx + 2 * j]);
        const uint32_t hi = 2 * j + 1 < k ? RoundBf16(x[r * ldx + 2 * j + 1]) : 0;
        EXPECT_EQ(out[r * kp + j], lo | hi << 16) << "k " << k << " r " << r << " j " << j;
      }
    }
    EXPECT_EQ(out.back(), 0xdeadbeef) << "k " << k;  // nothing written past m * kp
  }
}

TEST(Bf16PackTest, PackWeightsLayout) {
  const int n = 70, k = 5, kp = KPairs(k);
  std::vector<float> w(n * k);
  for (int c = 0; c < n; ++c) {
    for (int e = 0; e < k; ++e) w[c * k + e] = 0.1f * (c + 1) - 0.37f * e;
  }
  const PackedWeights packed = PackWeights(w.data(), n, k);
  ASSERT_EQ(packed.size(), static_cast<size_t>(2 * kp * kPanel * 2));
  for (int p = 0; p < 2; ++p) {
    for (int j = 0; j < kp; ++j) {
      for (int col = 0; col < kPanel; ++col) {
        const int c = p * kPanel + col;
        for (int half = 0; half < 2; ++half) {
          const int e = 2 * j + half;
          const uint16_t want = c < n && e < k ? RoundBf16(w[c * k + e]) : 0;
          EXPECT_EQ(packed[((p * kp + j) * kPanel + col) * 2 + half], want)
              << "c " << c << " e " << e;
        }
      }
    }
  }
}

TEST(Bf16PackTest, PackWeightsIntoCallerStorageIsTheSame) {
  const int n = 130, k = 37;
  std::vector<float> w(n * k);
  for (int i = 0; i < n * k; ++i) w[i] = std::sin(0.37f * i);
  const PackedWeights packed = PackWeights(w.data(), n, k);
  ASSERT_EQ(static_cast<int64_t>(packed.size()), PackedWeightsSize(n, k));
  std::vector<uint16_t> into(packed.size() + 1, 0xabcd);  // dirty storage, one element extra
  PackWeights(w.data(), n, k, into.data());
  EXPECT_EQ(into.back(), 0xabcd);
  into.pop_back();
  EXPECT_TRUE(std::equal(into.begin(), into.end(), packed.begin(), packed.end()));
}

// x = (1, 2^12, 2^12, 1), three columns whose sums tell the accumulation orders apart:
// column 0: pair 0 gives 1; pair 1 adds 1 (odd element) and 2^24 (even element).
//   Odd element first: 1 + 1 = 2, 2 + 2^24 exact = 2^24 + 2. Even first: 2^24 + 1 -> 2^24 (tie to
//   even), + 1 -> 2^24. Fused: 2^24 + 2.
// column 1: pair 0 gives 2^24; pair 1 adds 1 and 1. Two roundings: 2^24 (twice a tie to even);
//   fused (one rounding of 2^24 + 2): 2^24 + 2.
// column 2: column 0 with the halves of pair 1 swapped: 2^24 when the odd element goes first.
TEST(Bf16LinearTest, AccumulationOrderIsVdpbf16ps) {
  const float x[4] = {1.0f, 4096.0f, 4096.0f, 1.0f};
  const float w[3][4] = {{1.0f, 0.0f, 4096.0f, 1.0f},
                         {0.0f, 4096.0f, 1.0f / 4096.0f, 1.0f},
                         {1.0f, 0.0f, 1.0f / 4096.0f, 16777216.0f}};
  uint32_t pairs[2];
  PackRows(x, 4, 1, 4, pairs);
  const PackedWeights packed = PackWeights(&w[0][0], 3, 4);
  float y[3];
  Linear(pairs, 1, 4, packed.data(), nullptr, 3, y, 3, Epilogue::kNone);
  EXPECT_EQ(y[0], 16777218.0f);
  EXPECT_EQ(y[1], 16777216.0f);
  EXPECT_EQ(y[2], 16777216.0f);
}

// The three columns above in every row and column position of the kernels' tiles and strips (m up
// to 13 and 25: row tiles of every height of every path; n = 130: all vector positions of two
// full panels and a partial one), once at the start of k = 4 and once in the middle of k = 37
// (zeros elsewhere in x; the weights there are not zero). Row r's x is scaled by 2^(r % 7) and
// column c's weights by 2^-(c % 5): exact, so the results scale the same way, and a mix-up of
// rows or columns shows.
TEST(Bf16LinearTest, AccumulationOrderInEveryTilePosition) {
  const float pattern_x[4] = {1.0f, 4096.0f, 4096.0f, 1.0f};
  const float pattern_w[3][4] = {{1.0f, 0.0f, 4096.0f, 1.0f},
                                 {0.0f, 4096.0f, 1.0f / 4096.0f, 1.0f},
                                 {1.0f, 0.0f, 1.0f / 4096.0f, 16777216.0f}};
  const float want[3] = {16777218.0f, 16777216.0f, 16777216.0f};
  const int n = 130;
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (const auto& [k, offset] : {std::pair{4, 0}, std::pair{37, 14}}) {
    std::vector<float> w(static_cast<size_t>(n) * k);
    for (float& f : w) f = normal(rng);
    for (int c = 0; c < n; ++c) {
      for (int e = 0; e < 4; ++e) {
        w[c * k + offset + e] = std::ldexp(pattern_w[c % 3][e], -(c % 5));
      }
    }
    const PackedWeights packed = PackWeights(w.data(), n, k);
    for (int m : {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 25}) {
      std::vector<float> x(static_cast<size_t>(m) * k, 0.0f);
      for (int r = 0; r < m; ++r) {
        for (int e = 0; e < 4; ++e) x[r * k + offset + e] = std::ldexp(pattern_x[e], r % 7);
      }
      std::vector<uint32_t> rows(static_cast<size_t>(m) * KPairs(k));
      PackRows(x.data(), k, m, k, rows.data());
      std::vector<float> y(static_cast<size_t>(m) * n);
      Linear(rows.data(), m, k, packed.data(), nullptr, n, y.data(), n, Epilogue::kNone);
      int mismatches = 0;
      for (int r = 0; r < m; ++r) {
        for (int c = 0; c < n; ++c) {
          const float expected = std::ldexp(want[c % 3], r % 7 - c % 5);
          if (y[r * n + c] != expected) {
            if (++mismatches <= 5) {
              ADD_FAILURE() << "k " << k << " m " << m << " r " << r << " c " << c << ": "
                            << y[r * n + c] << " != " << expected;
            }
          }
        }
      }
      EXPECT_EQ(mismatches, 0) << "k " << k << " m " << m;
    }
  }
}

// Shapes (m, k, n): m below, at and above the row tiles (6 rows for the BF16 path, 4 for
// AVX-512F, 5 for AVX2) and not a multiple of them; n a multiple of 64 or not (a partial last
// panel, partial AVX2 strips); odd k; the transformer's shapes (a 25- and a 7-piece utterance
// through 512 -> 1536, 512 -> 512 and 1536 -> 512).
using Shape = std::tuple<int, int, int>;

class Bf16LinearShapeTest : public ::testing::TestWithParam<Shape> {};

TEST_P(Bf16LinearShapeTest, MatchesDoublePrecisionAndTheDocumentedOrder) {
  const auto [m, k, n] = GetParam();
  const int kp = KPairs(k);
  std::mt19937 rng(m * 7919 + k * 31 + n);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int ldx = k + 3, ldy = n + 5;
  std::vector<float> x(static_cast<size_t>(m) * ldx), w(static_cast<size_t>(n) * k), bias(n);
  for (float& f : x) f = normal(rng);
  for (float& f : w) f = normal(rng) / std::sqrt(static_cast<float>(k));
  for (float& f : bias) f = 0.5f * normal(rng);
  std::vector<uint32_t> rows(static_cast<size_t>(m) * kp);
  PackRows(x.data(), ldx, m, k, rows.data());
  const PackedWeights packed = PackWeights(w.data(), n, k);

  // From the bfloat16-rounded inputs (zero-padded to 2 kp): the exact sum (double), its scale
  // (sum of |products|), and the documented float32 order (std::fma, odd element first, pair by
  // pair): the plain C++ model every path must match bit for bit.
  std::vector<float> x_rounded(static_cast<size_t>(m) * 2 * kp, 0.0f);
  std::vector<float> w_rounded(static_cast<size_t>(n) * 2 * kp, 0.0f);
  for (int r = 0; r < m; ++r) {
    for (int e = 0; e < k; ++e) x_rounded[r * 2 * kp + e] = Rounded(x[r * ldx + e]);
  }
  for (int c = 0; c < n; ++c) {
    for (int e = 0; e < k; ++e) {
      w_rounded[static_cast<size_t>(c) * 2 * kp + e] = Rounded(w[static_cast<size_t>(c) * k + e]);
    }
  }
  std::vector<double> exact(static_cast<size_t>(m) * n), scale(exact.size());
  std::vector<float> ordered(exact.size());
  for (int r = 0; r < m; ++r) {
    for (int c = 0; c < n; ++c) {
      double sum = 0, abs_sum = 0;
      float acc = 0.0f;
      for (int j = 0; j < kp; ++j) {
        float xv[2], wv[2];
        for (int h = 0; h < 2; ++h) {
          xv[h] = x_rounded[r * 2 * kp + 2 * j + h];
          wv[h] = w_rounded[static_cast<size_t>(c) * 2 * kp + 2 * j + h];
          sum += static_cast<double>(xv[h]) * wv[h];
          abs_sum += std::abs(static_cast<double>(xv[h]) * wv[h]);
        }
        acc = std::fma(xv[0], wv[0], std::fma(xv[1], wv[1], acc));
      }
      exact[r * n + c] = sum;
      scale[r * n + c] = abs_sum;
      ordered[r * n + c] = acc;
    }
  }

  constexpr float kSentinel = -12345.0f;
  for (Epilogue epilogue : {Epilogue::kNone, Epilogue::kRelu, Epilogue::kAddToOutput}) {
    for (bool with_bias : {true, false}) {
      SCOPED_TRACE(testing::Message()
                   << "epilogue " << static_cast<int>(epilogue) << " bias " << with_bias);
      // One extra row and ldy - n extra columns that must stay untouched.
      std::vector<float> y(static_cast<size_t>(m + 1) * ldy, kSentinel);
      std::vector<float> before(y.size());
      for (int r = 0; r < m; ++r) {
        for (int c = 0; c < n; ++c) y[r * ldy + c] = normal(rng);
      }
      before = y;
      Linear(rows.data(), m, k, packed.data(), with_bias ? bias.data() : nullptr, n, y.data(), ldy,
             epilogue);
      int negatives = 0, mismatches = 0;
      double max_rel = 0;
      for (int r = 0; r <= m; ++r) {
        for (int c = 0; c < ldy; ++c) {
          const float got = y[r * ldy + c];
          if (r == m || c >= n) {
            if (got != kSentinel) ++mismatches;
            continue;
          }
          const float b = with_bias ? bias[c] : 0.0f;
          const double sum = exact[r * n + c];
          double want = sum + b;
          float want_ordered = ordered[r * n + c] + b;
          if (want < 0) ++negatives;
          if (epilogue == Epilogue::kRelu) {
            want = std::max(want, 0.0);
            want_ordered = std::max(want_ordered, 0.0f);
          } else if (epilogue == Epilogue::kAddToOutput) {
            want += before[r * ldy + c];
            want_ordered = before[r * ldy + c] + want_ordered;
          }
          const double tolerance =
              1e-4 * (scale[r * n + c] + std::abs(b) + std::abs(before[r * ldy + c])) + 1e-30;
          max_rel = std::max(max_rel, std::abs(got - want) / tolerance);
          // Both paths follow the documented order: the same float32 bits.
          if (got != want_ordered) ++mismatches;
        }
      }
      EXPECT_LE(max_rel, 1.0) << "m " << m << " k " << k << " n " << n;
      EXPECT_EQ(mismatches, 0) << "m " << m << " k " << k << " n " << n;
      // The inputs are not degenerate: both signs, so that relu means something.
      if (m * n >= 20) {
        EXPECT_GT(negatives, 0);
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, Bf16LinearShapeTest,
    ::testing::Values(Shape{1, 37, 100}, Shape{5, 37, 100}, Shape{7, 64, 64}, Shape{25, 256, 768},
                      Shape{25, 512, 100}, Shape{1, 512, 1536}, Shape{13, 1536, 512},
                      Shape{64, 256, 130}, Shape{6, 1, 65}, Shape{12, 2, 1}, Shape{4, 33, 127},
                      Shape{25, 512, 1536}, Shape{7, 512, 1536}, Shape{25, 512, 512},
                      Shape{25, 1536, 512}, Shape{7, 1536, 512}, Shape{11, 24, 200}));

TEST(Bf16LinearTest, ZeroRowsOrColumnsDoNothing) {
  const PackedWeights packed = PackWeights(nullptr, 0, 8);
  EXPECT_TRUE(packed.empty());
  float y = 5.0f;
  const uint32_t x[4] = {0, 0, 0, 0};
  Linear(x, 1, 8, packed.data(), nullptr, 0, &y, 1, Epilogue::kNone);
  Linear(x, 0, 8, packed.data(), nullptr, 0, &y, 1, Epilogue::kNone);
  EXPECT_EQ(y, 5.0f);
}

// The header's rules, written out: the variable caps the choice, the CPU decides within it.
TEST(Bf16LinearTest, IsaNameFollowsTheEnvironment) {
  __builtin_cpu_init();
  const bool bf16 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                    __builtin_cpu_supports("avx512bf16");
  const bool f512 = __builtin_cpu_supports("avx512f");
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  const char* forced = std::getenv("HELPLINE_GPT2_ISA");
  const std::string cap = forced == nullptr ? "avx512" : forced;
  const char* want = "scalar";
  if (cap == "avx512") {
    want = bf16 ? "avx512bf16" : f512 ? "avx512f" : avx2 ? "avx2" : "scalar";
  } else if (cap == "avx512f") {
    want = f512 ? "avx512f" : avx2 ? "avx2" : "scalar";
  } else if (cap == "avx2") {
    want = avx2 ? "avx2" : "scalar";
  }
  EXPECT_STREQ(IsaName(), want) << "HELPLINE_GPT2_ISA=" << (forced == nullptr ? "(unset)" : forced);
}

// Linear keeps per-thread scratch storage on some paths: threads at once get the same results as
// one at a time.
TEST(Bf16LinearTest, ConcurrentCallsAgree) {
  constexpr int kThreads = 4;
  const int k = 96, n = 200;
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> w(static_cast<size_t>(n) * k);
  for (float& f : w) f = normal(rng);
  const PackedWeights packed = PackWeights(w.data(), n, k);
  std::vector<std::vector<uint32_t>> rows(kThreads);
  std::vector<std::vector<float>> alone(kThreads), together(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    const int m = 3 + 7 * t;  // different sizes: the scratch storage grows differently
    std::vector<float> x(static_cast<size_t>(m) * k);
    for (float& f : x) f = normal(rng);
    rows[t].resize(static_cast<size_t>(m) * KPairs(k));
    PackRows(x.data(), k, m, k, rows[t].data());
    alone[t].resize(static_cast<size_t>(m) * n);
    together[t].resize(alone[t].size());
    Linear(rows[t].data(), m, k, packed.data(), nullptr, n, alone[t].data(), n, Epilogue::kNone);
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const int m = static_cast<int>(together[t].size()) / n;
      for (int i = 0; i < 50; ++i) {
        Linear(rows[t].data(), m, k, packed.data(), nullptr, n, together[t].data(), n,
               Epilogue::kNone);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(together[t], alone[t]) << "thread " << t;
}

}  // namespace
}  // namespace helpline::nlu::model::bf16
