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

std::string RetrievalKey(const v1::GenerationContext& context, bool with_previous_reply) {
  std::string out;
  if (with_previous_reply && !context.history().empty()) {
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

std::vector<double> TfidfIndex::Scores(absl::string_view query, double& query_norm) const {
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
  query_norm = std::sqrt(norm2);
  return score;
}

TfidfIndex::Match TfidfIndex::Best(absl::string_view query,
                                   const std::function<bool(size_t)>& skip) const {
  Match best;
  if (documents_ == 0) return best;
  double query_norm = 0.0;
  const std::vector<double> score = Scores(query, query_norm);
  bool found = false;
  for (size_t d = 0; d < documents_; ++d) {
    if (skip && skip(d)) continue;
    if (!found || score[d] > best.score) {
      best = {d, score[d], 0.0};
      found = true;
    }
  }
  if (!found) return Match{};
  if (query_norm > 0.0) best.cosine = std::min(1.0, best.score / query_norm);
  return best;
}

std::vector<TfidfIndex::Match> TfidfIndex::Top(absl::string_view query, size_t k,
                                               const std::function<bool(size_t)>& skip) const {
  std::vector<Match> top;
  if (documents_ == 0 || k == 0) return top;
  double query_norm = 0.0;
  const std::vector<double> score = Scores(query, query_norm);
  // Higher score first, ties to the lower index: the order Best picks by.
  const auto before = [](const Match& a, const Match& b) {
    return a.score != b.score ? a.score > b.score : a.document < b.document;
  };
  for (size_t d = 0; d < documents_; ++d) {
    if (score[d] <= 0.0 || (skip && skip(d))) continue;
    const Match m{d, score[d], query_norm > 0.0 ? std::min(1.0, score[d] / query_norm) : 0.0};
    if (top.size() == k && !before(m, top.back())) continue;
    if (top.size() == k) top.pop_back();
    top.insert(std::upper_bound(top.begin(), top.end(), m, before), m);
  }
  return top;
}

ExemplarIndex::ExemplarIndex(std::vector<Entry> entries)
    : entries_(std::move(entries)),
      index_(Keys(entries_)),
      any_previous_reply_(std::any_of(entries_.begin(), entries_.end(),
                                      [](const Entry& e) { return e.has_previous_reply; })) {}

std::vector<const std::string*> ExemplarIndex::FindNearest(const v1::GenerationContext& context,
                                                           size_t k,
                                                           absl::string_view skip_group) const {
  std::function<bool(size_t)> skip;
  if (!skip_group.empty()) {
    skip = [this, skip_group](size_t d) { return entries_[d].group == skip_group; };
  }
  std::vector<const std::string*> replies;
  // A pool of one-turn dialogues has no previous replies to match: the request's would only
  // pull in entries whose customer shares its words.
  const std::string key = RetrievalKey(context, any_previous_reply_);
  for (const TfidfIndex::Match& m : index_.Top(key, k, skip)) {
    replies.push_back(&entries_[m.document].reply);
  }
  return replies;
}

const std::string* ExemplarIndex::Find(const v1::GenerationContext& context,
                                       absl::string_view skip_group) const {
  const std::vector<const std::string*> nearest = FindNearest(context, 1, skip_group);
  return nearest.empty() ? nullptr : nearest.front();
}

void SetExemplars(const std::vector<const std::string*>& nearest, v1::GenerationContext& context) {
  context.clear_exemplar();
  context.clear_similar_replies();
  for (size_t i = 0; i < nearest.size(); ++i) {
    if (i == 0) {
      context.set_exemplar(*nearest[i]);
    } else {
      context.add_similar_replies(*nearest[i]);
    }
  }
}

}  // namespace helpline::generation::reply
