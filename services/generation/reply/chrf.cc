#include "services/generation/reply/chrf.h"

#include <algorithm>
#include <vector>

namespace helpline::generation::reply {
namespace {

// Unicode code points of `s`; an invalid byte is one code point of its own (0xDC00 + byte,
// as Python's surrogateescape would give).
std::vector<uint32_t> CodePoints(absl::string_view s) {
  std::vector<uint32_t> out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    int len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
    bool ok = len > 0 && i + static_cast<size_t>(len) <= s.size();
    for (int k = 1; ok && k < len; ++k) {
      const unsigned char cc = static_cast<unsigned char>(s[i + static_cast<size_t>(k)]);
      ok = (cc & 0xC0) == 0x80;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if (!ok) {
      out.push_back(0xDC00 + c);
      ++i;
      continue;
    }
    out.push_back(cp);
    i += static_cast<size_t>(len);
  }
  return out;
}

// Python's str.split() whitespace (what sacrebleu deletes before counting n-grams).
bool IsPythonWhitespace(uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
         c == 0x202F || c == 0x205F || c == 0x3000;
}

}  // namespace

ChrfProfile::ChrfProfile(absl::string_view text) {
  std::u32string chars;
  for (uint32_t c : CodePoints(text)) {
    if (!IsPythonWhitespace(c)) chars.push_back(static_cast<char32_t>(c));
  }
  for (size_t n = 1; n <= static_cast<size_t>(kOrder); ++n) {
    auto& counts = grams_[n - 1];
    for (size_t i = 0; i + n <= chars.size(); ++i) ++counts[chars.substr(i, n)];
    totals_[n - 1] = chars.size() >= n ? static_cast<int64_t>(chars.size() - n + 1) : 0;
  }
}

void ChrfAccumulator::Add(absl::string_view hypothesis, absl::string_view reference) {
  Add(ChrfProfile(hypothesis), ChrfProfile(reference));
}

void ChrfAccumulator::Add(const ChrfProfile& hypothesis, const ChrfProfile& reference) {
  for (int i = 0; i < kOrder; ++i) {
    const auto& ref_grams = reference.grams(i);
    int64_t match = 0;
    for (const auto& [gram, count] : hypothesis.grams(i)) {
      auto it = ref_grams.find(gram);
      if (it != ref_grams.end()) match += std::min(count, it->second);
    }
    const int64_t ref_count = reference.total(i);
    // sacrebleu counts no hypothesis n-grams of an order the reference has none of; this
    // matters once counts are summed over a corpus.
    const int64_t hyp_count = ref_count == 0 ? 0 : hypothesis.total(i);
    stats_[static_cast<size_t>(i)][0] += hyp_count;
    stats_[static_cast<size_t>(i)][1] += ref_count;
    stats_[static_cast<size_t>(i)][2] += match;
  }
  ++pairs_;
}

double ChrfAccumulator::Score() const {
  double precision = 0.0, recall = 0.0;
  int effective = 0;
  for (const auto& [hyp, ref, match] : stats_) {
    if (hyp <= 0 || ref <= 0) continue;
    precision += static_cast<double>(match) / static_cast<double>(hyp);
    recall += static_cast<double>(match) / static_cast<double>(ref);
    ++effective;
  }
  if (effective == 0) return 0.0;
  precision /= effective;
  recall /= effective;
  if (precision + recall == 0.0) return 0.0;
  const double b2 = kBeta * kBeta;
  return 100.0 * (1 + b2) * precision * recall / (b2 * precision + recall);
}

double SentenceChrf(absl::string_view hypothesis, absl::string_view reference) {
  return SentenceChrf(ChrfProfile(hypothesis), ChrfProfile(reference));
}

double SentenceChrf(const ChrfProfile& hypothesis, const ChrfProfile& reference) {
  ChrfAccumulator chrf;
  chrf.Add(hypothesis, reference);
  return chrf.Score();
}

}  // namespace helpline::generation::reply
