#include "nlu/model/gru_inference.h"

#include <cmath>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace helpline::nlu::model {
namespace {

// PyTorch's GRU equations, written out in double precision: the reference.
std::vector<double> ReferenceBiGru(const std::vector<float>& x, int t, int in, int h,
                                   const std::vector<float> (&w_ih)[2],
                                   const std::vector<float> (&w_hh)[2],
                                   const std::vector<float> (&b_ih)[2],
                                   const std::vector<float> (&b_hh)[2]) {
  std::vector<double> out(static_cast<size_t>(t) * 2 * h);
  auto sigmoid = [](double v) { return 1.0 / (1.0 + std::exp(-v)); };
  for (int d = 0; d < 2; ++d) {
    std::vector<double> state(h, 0.0);
    for (int s = 0; s < t; ++s) {
      const int step = d == 0 ? s : t - 1 - s;
      std::vector<double> gi(3 * h), gh(3 * h);
      for (int row = 0; row < 3 * h; ++row) {
        gi[row] = b_ih[d][row];
        for (int e = 0; e < in; ++e) gi[row] += w_ih[d][row * in + e] * x[step * in + e];
        gh[row] = b_hh[d][row];
        for (int e = 0; e < h; ++e) gh[row] += w_hh[d][row * h + e] * state[e];
      }
      std::vector<double> next(h);
      for (int j = 0; j < h; ++j) {
        const double r = sigmoid(gi[j] + gh[j]);
        const double z = sigmoid(gi[h + j] + gh[h + j]);
        const double n = std::tanh(gi[2 * h + j] + r * gh[2 * h + j]);
        next[j] = (1 - z) * n + z * state[j];
        out[(static_cast<size_t>(step) * 2 + d) * h + j] = next[j];
      }
      state = next;
    }
  }
  return out;
}

class BiGruInferenceTest : public ::testing::TestWithParam<std::pair<int, int>> {};

TEST_P(BiGruInferenceTest, MatchesTheGruEquationsInDoublePrecision) {
  const auto [in, h] = GetParam();
  std::mt19937 rng(7);
  // PyTorch's initialisation range, widened so that the gates leave their linear region.
  std::uniform_real_distribution<float> weight(-2.0f / std::sqrt(h), 2.0f / std::sqrt(h));
  std::normal_distribution<float> input(0.0f, 1.0f);
  std::vector<float> w_ih[2], w_hh[2], b_ih[2], b_hh[2];
  BiGruInference gru;
  EXPECT_FALSE(gru.ready());
  for (int d = 0; d < 2; ++d) {
    for (auto [v, n] : {std::pair{&w_ih[d], 3 * h * in}, std::pair{&w_hh[d], 3 * h * h},
                        std::pair{&b_ih[d], 3 * h}, std::pair{&b_hh[d], 3 * h}}) {
      v->resize(n);
      for (float& f : *v) f = weight(rng);
    }
    gru.SetDirection(d, in, h, w_ih[d].data(), w_hh[d].data(), b_ih[d].data(), b_hh[d].data());
  }
  ASSERT_TRUE(gru.ready());
  for (int t : {1, 2, 23}) {
    std::vector<float> x(static_cast<size_t>(t) * in);
    for (float& f : x) f = input(rng);
    std::vector<float> out(static_cast<size_t>(t) * 2 * h, -7.0f);
    gru.Run(x.data(), t, out.data());
    const std::vector<double> want = ReferenceBiGru(x, t, in, h, w_ih, w_hh, b_ih, b_hh);
    double max_diff = 0, max_abs = 0;
    for (size_t i = 0; i < want.size(); ++i) {
      max_diff = std::max(max_diff, std::abs(out[i] - want[i]));
      max_abs = std::max(max_abs, std::abs(want[i]));
    }
    EXPECT_LT(max_diff, 2e-5) << "t " << t;
    // The states are not trivially small (the comparison means something).
    EXPECT_GT(max_abs, 0.3) << "t " << t;
  }
}

// The model's size (128 -> 128) and sizes that are not multiples of the kernels' 64-column panels.
INSTANTIATE_TEST_SUITE_P(Sizes, BiGruInferenceTest,
                         ::testing::Values(std::pair{128, 128}, std::pair{20, 70},
                                           std::pair{3, 5}));

}  // namespace
}  // namespace helpline::nlu::model
