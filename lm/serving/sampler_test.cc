#include "lm/serving/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <set>
#include <vector>

#include "gtest/gtest.h"

namespace helpline::lm {
namespace {

SamplingOptions Greedy() { return SamplingOptions{}; }

SamplingOptions WithTemperature(float t) {
  SamplingOptions o;
  o.temperature = t;
  return o;
}

TEST(SamplerTest, GreedyTakesArgmaxAndTiesGoToLowestId) {
  Sampler sampler;
  CandidateRng rng(1, 0);
  std::vector<float> logits = {0.5f, 3.0f, -1.0f, 3.0f, 2.9f};
  SampledToken t = sampler.Sample(logits, Greedy(), nullptr, rng);
  EXPECT_EQ(t.id, 1);
  double z = 0;
  for (float v : logits) z += std::exp(v);
  EXPECT_NEAR(t.logprob, 3.0 - std::log(z), 1e-5);
}

TEST(SamplerTest, GreedyDrawsNothingFromTheStream) {
  Sampler sampler;
  CandidateRng used(7, 0), fresh(7, 0);
  std::vector<float> logits = {1, 2, 3};
  sampler.Sample(logits, Greedy(), nullptr, used);
  EXPECT_EQ(used.NextUniform(), fresh.NextUniform());
}

TEST(SamplerTest, TemperatureFollowsTheSoftmax) {
  Sampler sampler;
  // Probabilities 1/7, 2/7, 4/7 at temperature 1; at temperature 2: 1, sqrt2, 2 normalised.
  std::vector<float> logits = {0.0f, std::log(2.0f), std::log(4.0f)};
  for (float t : {1.0f, 2.0f}) {
    std::vector<double> expect(3);
    double z = 0;
    for (int i = 0; i < 3; ++i) z += expect[i] = std::exp(logits[i] / t);
    std::vector<int> counts(3);
    CandidateRng rng(42, 3);
    const int kDraws = 20000;
    for (int i = 0; i < kDraws; ++i) ++counts[sampler.Sample(logits, WithTemperature(t), nullptr, rng).id];
    for (int i = 0; i < 3; ++i) {
      EXPECT_NEAR(static_cast<double>(counts[i]) / kDraws, expect[i] / z, 0.015) << "t=" << t;
    }
  }
}

TEST(SamplerTest, LogprobIsUnderTheRawDistributionWhateverTheTemperature) {
  Sampler sampler;
  std::vector<float> logits = {0.0f, 1.0f, 2.0f};
  CandidateRng rng(5, 0);
  SampledToken t = sampler.Sample(logits, WithTemperature(0.3f), nullptr, rng);
  double z = std::exp(0.0) + std::exp(1.0) + std::exp(2.0);
  EXPECT_NEAR(t.logprob, logits[t.id] - std::log(z), 1e-5);
}

TEST(SamplerTest, TopKKeepsOnlyTheKMostLikely) {
  Sampler sampler;
  std::vector<float> logits = {1.0f, 5.0f, 4.9f, 4.8f, 0.0f, 4.95f};
  SamplingOptions o = WithTemperature(5.0f);  // flat enough that all would show up
  o.top_k = 2;
  CandidateRng rng(9, 0);
  std::set<int> seen;
  for (int i = 0; i < 2000; ++i) seen.insert(sampler.Sample(logits, o, nullptr, rng).id);
  EXPECT_EQ(seen, (std::set<int>{1, 5}));
  o.top_k = 1;
  for (int i = 0; i < 50; ++i) EXPECT_EQ(sampler.Sample(logits, o, nullptr, rng).id, 1);
}

TEST(SamplerTest, TopPKeepsTheSmallestPrefixReachingTheMass) {
  Sampler sampler;
  // Probabilities 0.5, 0.3, 0.15, 0.05.
  std::vector<float> logits = {std::log(0.3f), std::log(0.05f), std::log(0.5f), std::log(0.15f)};
  SamplingOptions o = WithTemperature(1.0f);
  CandidateRng rng(11, 0);
  o.top_p = 0.75f;
  std::set<int> seen;
  for (int i = 0; i < 2000; ++i) seen.insert(sampler.Sample(logits, o, nullptr, rng).id);
  EXPECT_EQ(seen, (std::set<int>{2, 0}));
  o.top_p = 0.9f;
  seen.clear();
  for (int i = 0; i < 2000; ++i) seen.insert(sampler.Sample(logits, o, nullptr, rng).id);
  EXPECT_EQ(seen, (std::set<int>{2, 0, 3}));
}

TEST(SamplerTest, TopPOnAFullVocabularyMatchesABruteForceNucleus) {
  const int kVocab = 50257;
  std::mt19937 gen(123);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  std::vector<float> logits(kVocab);
  for (float& v : logits) v = normal(gen);
  SamplingOptions o = WithTemperature(0.7f);
  o.top_p = 0.6f;
  // The nucleus by a full sort.
  std::vector<int> order(kVocab);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int a, int b) { return logits[a] > logits[b]; });
  double z = 0;
  for (float v : logits) z += std::exp(v / o.temperature);
  std::set<int> nucleus;
  double mass = 0;
  for (int id : order) {
    nucleus.insert(id);
    mass += std::exp(logits[id] / o.temperature) / z;
    if (mass >= o.top_p) break;
  }
  ASSERT_GT(nucleus.size(), 5u);
  Sampler sampler;
  CandidateRng rng(3, 1);
  std::set<int> seen;
  for (int i = 0; i < 1000; ++i) {
    const int id = sampler.Sample(logits, o, nullptr, rng).id;
    EXPECT_TRUE(nucleus.contains(id)) << id;
    seen.insert(id);
  }
  EXPECT_GT(seen.size(), std::min<size_t>(nucleus.size() / 4, 200));
  EXPECT_LT(nucleus.size(), 20000u);
}

TEST(SamplerTest, RepetitionPenaltyDividesPositiveAndMultipliesNegativeLogits) {
  Sampler sampler;
  CandidateRng rng(1, 0);
  SamplingOptions o;
  o.repetition_penalty = 2.0f;
  TokenHistory history;
  std::vector<int32_t> prompt = {0, 2};
  history.AddPrompt(prompt);
  // 2.0 -> 1.0 loses to 1.9; -1.0 -> -2.0 loses to -1.1.
  EXPECT_EQ(sampler.Sample(std::vector<float>{2.0f, 1.9f}, o, &history, rng).id, 1);
  EXPECT_EQ(sampler.Sample(std::vector<float>{-5.0f, -5.0f, -1.0f, -1.1f}, o, &history, rng).id,
            3);
  o.repetition_penalty = 1.0f;
  EXPECT_EQ(sampler.Sample(std::vector<float>{2.0f, 1.9f}, o, &history, rng).id, 0);
}

TEST(SamplerTest, FrequencyAndPresencePenaltiesCountOnlyOutput) {
  Sampler sampler;
  CandidateRng rng(1, 0);
  TokenHistory history;
  std::vector<int32_t> prompt = {1};
  history.AddPrompt(prompt);
  SamplingOptions o;
  o.frequency_penalty = 0.4f;
  // Id 1 is only in the prompt: no frequency penalty.
  EXPECT_EQ(sampler.Sample(std::vector<float>{1.0f, 1.2f}, o, &history, rng).id, 1);
  history.AddOutput(0);
  history.AddOutput(0);
  // 2.0 - 2 * 0.4 = 1.2 ties 1.2? make it lose: 2.0 - 0.8 = 1.2 < 1.25.
  EXPECT_EQ(sampler.Sample(std::vector<float>{2.0f, 1.25f}, o, &history, rng).id, 1);
  EXPECT_EQ(sampler.Sample(std::vector<float>{2.0f, 1.15f}, o, &history, rng).id, 0);
  o.frequency_penalty = 0.0f;
  o.presence_penalty = 0.9f;  // once, whatever the count
  EXPECT_EQ(sampler.Sample(std::vector<float>{2.0f, 1.15f}, o, &history, rng).id, 1);
  EXPECT_EQ(sampler.Sample(std::vector<float>{2.0f, 1.05f}, o, &history, rng).id, 0);
}

TEST(SamplerTest, NoRepeatNgramBansTheIdThatWouldRepeatAnOutputNgram) {
  Sampler sampler;
  CandidateRng rng(1, 0);
  TokenHistory history;
  std::vector<int32_t> prompt = {3, 1, 3};  // the prompt's own n-grams do not count
  history.AddPrompt(prompt);
  SamplingOptions o;
  o.no_repeat_ngram = 3;
  const std::vector<float> prefers_one = {0.0f, 2.0f, 1.0f, 0.5f};
  for (int32_t id : {1, 2, 3, 1, 2}) history.AddOutput(id);
  // Output ends with (1, 2), which was followed by 3 before: 3 is banned, 1 (best) stays.
  EXPECT_EQ(sampler.Sample(prefers_one, o, &history, rng).id, 1);
  EXPECT_EQ(sampler.Sample(std::vector<float>{0.0f, 0.1f, 0.2f, 5.0f}, o, &history, rng).id, 2);
  o.no_repeat_ngram = 0;
  EXPECT_EQ(sampler.Sample(std::vector<float>{0.0f, 0.1f, 0.2f, 5.0f}, o, &history, rng).id, 3);
  // Sampling never draws a banned id either.
  o.no_repeat_ngram = 3;
  o.temperature = 1.0f;
  for (int i = 0; i < 200; ++i) {
    EXPECT_NE(sampler.Sample(std::vector<float>{0.0f, 0.1f, 0.2f, 3.0f}, o, &history, rng).id, 3);
  }
  // Every id banned (a two-id vocabulary, unigram ban): the ban is lifted, not an error.
  TokenHistory both;
  both.AddOutput(0);
  both.AddOutput(1);
  SamplingOptions unigram;
  unigram.no_repeat_ngram = 1;
  EXPECT_EQ(sampler.Sample(std::vector<float>{0.0f, 1.0f}, unigram, &both, rng).id, 1);
  // The caller already masked every id but the banned one: the ban gives way, not id 0.
  const float inf = std::numeric_limits<float>::infinity();
  TokenHistory one;
  one.AddOutput(2);
  EXPECT_EQ(sampler.Sample(std::vector<float>{-inf, -inf, 0.5f, -inf}, unigram, &one, rng).id, 2);
}

TEST(SamplerTest, StreamsArePureFunctionsOfSeedAndIndex) {
  CandidateRng a(17, 0), b(17, 0), c(17, 1), d(18, 0);
  int differ_index = 0, differ_seed = 0;
  for (int i = 0; i < 100; ++i) {
    const double x = a.NextUniform();
    EXPECT_EQ(x, b.NextUniform());
    EXPECT_GE(x, 0.0);
    EXPECT_LT(x, 1.0);
    differ_index += x != c.NextUniform();
    differ_seed += x != d.NextUniform();
  }
  EXPECT_EQ(differ_index, 100);
  EXPECT_EQ(differ_seed, 100);
}

TEST(SamplerTest, SameStreamSameTokensOnAFullVocabulary) {
  const int kVocab = 50257;
  std::mt19937 gen(5);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> logits(kVocab);
  for (float& v : logits) v = normal(gen);
  SamplingOptions o = WithTemperature(0.9f);
  o.top_k = 40;
  o.top_p = 0.95f;
  Sampler s1, s2;
  CandidateRng r1(99, 2), r2(99, 2);
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(s1.Sample(logits, o, nullptr, r1).id, s2.Sample(logits, o, nullptr, r2).id);
  }
}

}  // namespace
}  // namespace helpline::lm
