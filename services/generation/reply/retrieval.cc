#include "services/generation/reply/retrieval.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace helpline::generation::reply {
namespace {

bool IsWordByte(unsigned char c) { return absl::ascii_isalnum(c) || c >= 0x80; }

std::vector<std::string> Keys(const std::vector<ExemplarIndex::Entry>& entries) {
  std::vector<std::string> keys;
  keys.reserve(entries.size());
  for (const ExemplarIndex::Entry& e : entries) keys.push_back(e.key);
  return keys;
}

}  // namespace

std::vector<std::string> RetrievalWords(absl::string_view text) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && !IsWordByte(static_cast<unsigned char>(text[i]))) ++i;
    size_t j = i;
    while (j < text.size() && IsWordByte(static_cast<unsigned char>(text[j]))) ++j;
    if (j > i) out.push_back(absl::AsciiStrToLower(text.substr(i, j - i)));
    i = j;
  }
  return out;
}

std::string RetrievalKey(const v1::GenerationContext& context) {
  std::string out;
  if (!context.history().empty()) {
    absl::StrAppend(&out, context.history(context.history_size() - 1).reply(), "\n");
  }
  const common::v1::DialogueState& state = context.state();
  absl::StrAppend(&out, state.active_intent(), "\n");
  std::vector<std::string> slots;
  for (const auto& [name, value] : state.slots()) slots.push_back(absl::StrCat(name, " ", value.value()));
  std::sort(slots.begin(), slots.end());
  absl::StrAppend(&out, absl::StrJoin(slots, " "), "\n",
                  absl::StrJoin(state.missing_slots(), " "), "\n", context.user_text());
  return out;
}

TfidfIndex::TfidfIndex(const std::vector<std::string>& documents) : documents_(documents.size()) {
  std::vector<std::vector<std::pair<uint32_t, uint32_t>>> counts(documents.size());  // (term, tf)
  std::vector<uint32_t> df;
  for (size_t d = 0; d < documents.size(); ++d) {
    std::map<uint32_t, uint32_t> tf;
    for (std::string& w : RetrievalWords(documents[d])) {
      auto [it, added] = term_ids_.emplace(std::move(w), static_cast<uint32_t>(df.size()));
      if (added) df.push_back(0);
      ++tf[it->second];
    }
    for (const auto& [term, n] : tf) {
      ++df[term];
      counts[d].emplace_back(term, n);
    }
  }
  idf_.resize(df.size());
  const double n = static_cast<double>(documents.size());
  for (size_t t = 0; t < df.size(); ++t) idf_[t] = std::log((1 + n) / (1 + df[t])) + 1;
  postings_.resize(df.size());
  for (size_t d = 0; d < counts.size(); ++d) {
    double norm = 0.0;
    for (const auto& [term, tf] : counts[d]) norm += std::pow(tf * idf_[term], 2);
    norm = std::sqrt(norm);
    for (const auto& [term, tf] : counts[d]) {
      postings_[term].push_back({static_cast<uint32_t>(d), static_cast<float>(tf * idf_[term] / norm)});
    }
  }
}

TfidfIndex::Match TfidfIndex::Best(absl::string_view query,
                                   const std::function<bool(size_t)>& skip) const {
  Match best;
  if (documents_ == 0) return best;
  std::map<uint32_t, uint32_t> tf;
  for (const std::string& w : RetrievalWords(query)) {
    auto it = term_ids_.find(w);
    if (it != term_ids_.end()) ++tf[it->second];
  }
  // The query's norm is the same for every document: it does not change the order.
  std::vector<double> score(documents_, 0.0);
  double norm2 = 0.0;
  for (const auto& [term, n] : tf) {
    const double q = n * idf_[term];
    norm2 += q * q;
    for (const Posting& p : postings_[term]) score[p.document] += q * p.weight;
  }
  bool found = false;
  for (size_t d = 0; d < documents_; ++d) {
    if (skip && skip(d)) continue;
    if (!found || score[d] > best.score) {
      best = {d, score[d], 0.0};
      found = true;
    }
  }
  if (!found) return Match{};
  if (norm2 > 0.0) best.cosine = std::min(1.0, best.score / std::sqrt(norm2));
  return best;
}

ExemplarIndex::ExemplarIndex(std::vector<Entry> entries)
    : entries_(std::move(entries)), index_(Keys(entries_)) {}

const std::string* ExemplarIndex::Find(const v1::GenerationContext& context,
                                       absl::string_view skip_group) const {
  std::function<bool(size_t)> skip;
  if (!skip_group.empty()) {
    skip = [this, skip_group](size_t d) { return entries_[d].group == skip_group; };
  }
  const TfidfIndex::Match m = index_.Best(RetrievalKey(context), skip);
  if (m.score <= 0.0) return nullptr;
  return &entries_[m.document].reply;
}

}  // namespace helpline::generation::reply
