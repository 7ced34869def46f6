#include "lm/serving/sampler.h"

#include <algorithm>
#include <cstring>
#include <functional>
#include <limits>
#include <cmath>
#include <numeric>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace helpline::lm {
namespace {

constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ull;

uint64_t SplitMix64(uint64_t x) {
  x += kGolden;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// exp(x) for x <= 0: x = (n + r) / log2(e) with n integral and |r| <= 0.5, 2^r by its
// degree-6 Taylor polynomial (relative error below 2e-7), 2^n put into the exponent bits.
// Inputs below -87 give exp(-87). Four lanes at a time with SSE2 (every x86-64 has it):
// the vocabulary-wide passes are most of the sampler's time.
#if defined(__SSE2__)
inline __m128 ExpNonPositive(__m128 x) {
  x = _mm_max_ps(x, _mm_set1_ps(-87.0f));
  const __m128 t = _mm_mul_ps(x, _mm_set1_ps(1.44269504088896341f));
  const __m128 magic = _mm_set1_ps(12582912.0f);
  const __m128 n = _mm_sub_ps(_mm_add_ps(t, magic), magic);  // round to nearest
  const __m128 r = _mm_mul_ps(_mm_sub_ps(t, n), _mm_set1_ps(0.693147180559945309f));
  __m128 p = _mm_set1_ps(1.0f / 720.0f);
  for (float c : {1.0f / 120.0f, 1.0f / 24.0f, 1.0f / 6.0f, 0.5f, 1.0f, 1.0f}) {
    p = _mm_add_ps(_mm_mul_ps(p, r), _mm_set1_ps(c));
  }
  const __m128i bits =
      _mm_slli_epi32(_mm_add_epi32(_mm_cvtps_epi32(n), _mm_set1_epi32(127)), 23);
  return _mm_mul_ps(p, _mm_castsi128_ps(bits));
}
#endif

inline float ExpNonPositive(float x) {
#if defined(__SSE2__)
  return _mm_cvtss_f32(ExpNonPositive(_mm_set1_ps(x)));
#else
  return std::exp(x);
#endif
}

float MaxOf(absl::Span<const float> v) {
  size_t i = 0;
  float max = v[0];
#if defined(__SSE2__)
  __m128 a = _mm_set1_ps(v[0]), b = a;
  for (; i + 8 <= v.size(); i += 8) {
    a = _mm_max_ps(a, _mm_loadu_ps(v.data() + i));
    b = _mm_max_ps(b, _mm_loadu_ps(v.data() + i + 4));
  }
  float lanes[4];
  _mm_storeu_ps(lanes, _mm_max_ps(a, b));
  for (float lane : lanes) max = std::max(max, lane);
#endif
  for (; i < v.size(); ++i) max = std::max(max, v[i]);
  return max;
}

// Sum of exp((v[i] - shift) * scale) (shift >= every v[i]); writes the terms to `out` when
// it is not null. Fixed summation order: the same inputs give the same sum.
double SumExp(absl::Span<const float> v, float shift, float scale, float* out) {
  size_t i = 0;
  double sum = 0.0;
#if defined(__SSE2__)
  const __m128 s = _mm_set1_ps(shift), k = _mm_set1_ps(scale);
  __m128 a = _mm_setzero_ps(), b = _mm_setzero_ps();
  for (; i + 8 <= v.size(); i += 8) {
    const __m128 x = ExpNonPositive(_mm_mul_ps(_mm_sub_ps(_mm_loadu_ps(v.data() + i), s), k));
    const __m128 y =
        ExpNonPositive(_mm_mul_ps(_mm_sub_ps(_mm_loadu_ps(v.data() + i + 4), s), k));
    if (out != nullptr) {
      _mm_storeu_ps(out + i, x);
      _mm_storeu_ps(out + i + 4, y);
    }
    a = _mm_add_ps(a, x);
    b = _mm_add_ps(b, y);
  }
  float lanes[4];
  _mm_storeu_ps(lanes, _mm_add_ps(a, b));
  for (float lane : lanes) sum += lane;
#endif
  for (; i < v.size(); ++i) {
    const float term = ExpNonPositive((v[i] - shift) * scale);
    if (out != nullptr) out[i] = term;
    sum += term;
  }
  return sum;
}

// Greedy: the largest value, ties to the lowest id.
int32_t ArgMax(absl::Span<const float> values) {
  const float max = MaxOf(values);
  int32_t i = 0;
  while (values[i] != max) ++i;
  return i;
}

float LogSoftmaxAt(absl::Span<const float> logits, int32_t id) {
  const float max = MaxOf(logits);
  const double sum = SumExp(logits, max, 1.0f, nullptr);
  return static_cast<float>(static_cast<double>(logits[id] - max) - std::log(sum));
}

}  // namespace

CandidateRng::CandidateRng(uint64_t seed, uint64_t index)
    : key_(SplitMix64(seed ^ SplitMix64(index * kGolden + 0x632BE59BD9B4E019ull))) {}

double CandidateRng::NextUniform() {
  const uint64_t bits = SplitMix64(key_ + kGolden * counter_++);
  return static_cast<double>(bits >> 11) * 0x1.0p-53;
}

void TokenHistory::AddPrompt(absl::Span<const int32_t> ids) {
  for (int32_t id : ids) entries_.try_emplace(id);
}

void TokenHistory::AddOutput(int32_t id) {
  ++entries_[id].output_count;
  output_.push_back(id);
}

bool UsesPenalties(const SamplingOptions& options) {
  return options.repetition_penalty != 1.0f || options.frequency_penalty != 0.0f ||
         options.presence_penalty != 0.0f || options.no_repeat_ngram > 0;
}

namespace {

// Ids that would complete an n-gram the output already has: for every earlier place where
// the output's last n-1 ids occur, the id that followed them.
void BannedByNgram(const std::vector<int32_t>& out, int n, std::vector<int32_t>& banned) {
  banned.clear();
  const size_t k = static_cast<size_t>(n - 1);  // prefix length
  if (n <= 0 || out.size() < k) return;
  if (k == 0) {
    banned = out;  // unigrams: every generated id
    return;
  }
  const size_t tail = out.size() - k;
  for (size_t i = 0; i + k < out.size(); ++i) {
    if (std::equal(out.begin() + i, out.begin() + i + k, out.begin() + tail)) banned.push_back(out[i + k]);
  }
}

}  // namespace

SampledToken Sampler::Sample(absl::Span<const float> logits, const SamplingOptions& options,
                             const TokenHistory* history, CandidateRng& rng) {
  const size_t vocab = logits.size();
  absl::Span<const float> scores = logits;
  if (history != nullptr && UsesPenalties(options)) {
    work_.assign(logits.begin(), logits.end());
    const float rep = options.repetition_penalty;
    const bool penalties = rep != 1.0f || options.frequency_penalty != 0.0f || options.presence_penalty != 0.0f;
    for (const auto& [id, entry] : history->entries()) {
      if (!penalties || id < 0 || static_cast<size_t>(id) >= vocab) continue;
      float& v = work_[id];
      if (rep != 1.0f) v = v > 0.0f ? v / rep : v * rep;
      if (entry.output_count > 0) {
        v -= options.frequency_penalty * static_cast<float>(entry.output_count) +
             options.presence_penalty;
      }
    }
    BannedByNgram(history->output(), options.no_repeat_ngram, banned_);
    for (int32_t id : banned_) {
      if (id >= 0 && static_cast<size_t>(id) < vocab) work_[id] = -std::numeric_limits<float>::infinity();
    }
    // Nothing left (the ban took the only ids the caller had left, or a tiny vocabulary):
    // the ban is lifted.
    if (!banned_.empty() &&
        std::none_of(work_.begin(), work_.end(), [](float v) { return v > -std::numeric_limits<float>::infinity(); })) {
      for (int32_t id : banned_) {
        if (id >= 0 && static_cast<size_t>(id) < vocab) work_[id] = logits[id];
      }
    }
    scores = work_;
  }

  SampledToken result;
  if (options.temperature <= 0.0f) {
    result.id = ArgMax(scores);
    result.logprob = LogSoftmaxAt(logits, result.id);
    return result;
  }

  // Probabilities are kept unnormalised, exp((s - max) / T) in (0, 1]; the max maps to 1.
  const float inv_t = 1.0f / options.temperature;
  const float max = MaxOf(scores);
  probs_.resize(vocab);
  const double all = SumExp(scores, max, inv_t, probs_.data());
  // Raw logits at temperature 1: the log-probability comes from the same sums.
  const bool raw = scores.data() == logits.data() && options.temperature == 1.0f;
  const auto logprob = [&](int32_t id) {
    return raw ? static_cast<float>(std::log(probs_[id] / all)) : LogSoftmaxAt(logits, id);
  };

  const bool top_k = options.top_k > 0 && static_cast<size_t>(options.top_k) < vocab;
  const bool top_p = options.top_p < 1.0f;
  if (!top_k && !top_p) {
    const double target = rng.NextUniform() * all;
    double cumulative = 0.0;
    result.id = static_cast<int32_t>(vocab - 1);
    for (size_t i = 0; i < vocab; ++i) {
      cumulative += probs_[i];
      if (cumulative > target) {
        result.id = static_cast<int32_t>(i);
        break;
      }
    }
    result.logprob = logprob(result.id);
    return result;
  }

  // Candidates sorted by probability, descending, ties to the lower id.
  const float* p = probs_.data();
  auto by_prob = [p](int32_t a, int32_t b) { return p[a] > p[b] || (p[a] == p[b] && a < b); };
  ids_.clear();
  double total = 0.0;  // mass of the candidates in ids_
  // Candidates: the ids above a falling probability threshold, until there are k of them
  // (top-k) or their mass reaches top_p of the whole (top-p alone). Both top-k and the
  // nucleus are prefixes of the sorted order, so they lie inside; the vocabulary itself is
  // never sorted.
  const size_t k = top_k ? static_cast<size_t>(options.top_k) : 0;
  const double needed = options.top_p * all;
  float threshold = 1.0f / 64.0f;
  for (;;) {
    ids_.clear();
    total = 0.0;
    for (size_t i = 0; i < vocab; ++i) {
      if (p[i] >= threshold) {
        ids_.push_back(static_cast<int32_t>(i));
        total += p[i];
      }
    }
    const bool enough = top_k ? ids_.size() >= k : total >= needed;
    if (enough || threshold == 0.0f) break;
    threshold = threshold < 1e-30f ? 0.0f : threshold / 8.0f;
  }
  if (top_k && ids_.size() > k) {
    std::partial_sort(ids_.begin(), ids_.begin() + k, ids_.end(), by_prob);
    ids_.resize(k);
    total = 0.0;
    for (int32_t id : ids_) total += p[id];
  } else {
    std::sort(ids_.begin(), ids_.end(), by_prob);
  }

  if (top_p) {
    // Smallest prefix whose mass reaches top_p of the candidates' mass.
    const double needed = options.top_p * total;
    double cumulative = 0.0;
    size_t keep = 0;
    while (keep < ids_.size()) {
      cumulative += p[ids_[keep]];
      ++keep;
      if (cumulative >= needed) break;
    }
    ids_.resize(std::max<size_t>(keep, 1));
    total = cumulative;
  }

  const double target = rng.NextUniform() * total;
  double cumulative = 0.0;
  result.id = ids_.back();
  for (int32_t id : ids_) {
    cumulative += p[id];
    if (cumulative > target) {
      result.id = id;
      break;
    }
  }
  result.logprob = logprob(result.id);
  return result;
}

}  // namespace helpline::lm
