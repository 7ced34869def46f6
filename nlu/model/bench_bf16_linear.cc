// Time of one bf16::Linear call on one core: bench_bf16_linear [m k n [iterations]] (default
// 25 512 1536 2000: a feed-forward layer of the utterance transformer on a 25-piece sentence).
// Prints the instruction set, the median and p90 in microseconds and the median's GMAC/s, for
// the weights as PackWeights returns them (64-byte aligned) and for a copy 16 bytes past a
// 64-byte boundary (where a plain std::vector's storage usually starts). Pin it to a core
// (`taskset -c 1`). HELPLINE_GPT2_ISA=avx512f, avx2 or scalar times a lower path (bf16_linear.h).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "nlu/model/bf16_linear.h"

namespace {

namespace bf16 = helpline::nlu::model::bf16;

void Run(const char* label, int m, int k, int n, int iterations, const uint32_t* x,
         const uint16_t* w, const float* bias, float* y) {
  for (int i = 0; i < 50; ++i) bf16::Linear(x, m, k, w, bias, n, y, n, bf16::Epilogue::kNone);
  std::vector<double> us(iterations);
  for (int i = 0; i < iterations; ++i) {
    const auto start = std::chrono::steady_clock::now();
    bf16::Linear(x, m, k, w, bias, n, y, n, bf16::Epilogue::kNone);
    us[i] =
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count();
  }
  std::sort(us.begin(), us.end());
  const double median = us[us.size() / 2];
  const double p90 = us[us.size() * 9 / 10];
  const double macs = static_cast<double>(m) * k * n;
  std::printf("%-28s median %8.1f us  p90 %8.1f us  %6.1f GMAC/s  (y[0] = %g)\n", label, median,
              p90, macs / median * 1e-3, y[0]);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 1 && argc != 4 && argc != 5) {
    std::fprintf(stderr, "usage: %s [m k n [iterations]]\n", argv[0]);
    return 2;
  }
  const int m = argc > 1 ? std::atoi(argv[1]) : 25;
  const int k = argc > 1 ? std::atoi(argv[2]) : 512;
  const int n = argc > 1 ? std::atoi(argv[3]) : 1536;
  const int iterations = argc > 4 ? std::atoi(argv[4]) : 2000;
  if (m <= 0 || k <= 0 || n <= 0 || iterations <= 0) {
    std::fprintf(stderr, "m, k, n and iterations must be positive\n");
    return 2;
  }
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(m) * k), w(static_cast<size_t>(n) * k), bias(n);
  for (float& v : x) v = normal(rng);
  for (float& v : w) v = 0.05f * normal(rng);
  for (float& v : bias) v = normal(rng);
  const bf16::PackedWeights packed = bf16::PackWeights(w.data(), n, k);
  std::vector<uint32_t> rows(static_cast<size_t>(m) * bf16::KPairs(k));
  bf16::PackRows(x.data(), k, m, k, rows.data());
  std::vector<float> y(static_cast<size_t>(m) * n);

  // 8 elements (16 bytes) past a 64-byte boundary.
  bf16::PackedWeights storage(packed.size() + 32);
  uint16_t* misaligned = storage.data() + 8;
  std::copy(packed.begin(), packed.end(), misaligned);

  std::printf("isa %s, m %d, k %d, n %d, %d iterations, weights %.2f MB\n", bf16::IsaName(), m, k,
              n, iterations, packed.size() * sizeof(uint16_t) / 1e6);
  Run("weights 64-byte aligned", m, k, n, iterations, rows.data(), packed.data(), bias.data(),
      y.data());
  Run("weights 16 bytes past 64", m, k, n, iterations, rows.data(), misaligned, bias.data(),
      y.data());
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < iterations; ++i) bf16::PackRows(x.data(), k, m, k, rows.data());
  std::printf(
      "PackRows %d x %d: %.2f us\n", m, k,
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() /
          iterations);
  return 0;
}
