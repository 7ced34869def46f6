#include "nlu/metrics/dst_metrics.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace helpline::nlu::metrics {
namespace {

char32_t NextCodePoint(absl::string_view s, size_t* pos) {
  const auto lead = static_cast<unsigned char>(s[*pos]);
  size_t len = lead < 0x80 ? 1 : lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
  if (*pos + len > s.size()) len = 1;
  char32_t cp = len == 1 ? lead : lead & (0x7F >> len);
  for (size_t i = 1; i < len; ++i) {
    cp = (cp << 6) | (static_cast<unsigned char>(s[*pos + i]) & 0x3F);
  }
  *pos += len;
  return len == 1 && lead >= 0x80 ? 0xFFFD : cp;
}

// fuzzywuzzy's full_process with force_ascii, then the words sorted: code points.
std::vector<char32_t> ProcessAndSort(absl::string_view s) {
  std::vector<std::u32string> words;
  std::u32string word;
  size_t pos = 0;
  while (pos < s.size()) {
    char32_t cp = NextCodePoint(s, &pos);
    if (cp >= 0x80 && cp <= 0xFF) continue;  // force_ascii drops these.
    const bool word_char = cp >= 0x80 || (cp < 0x80 && (absl::ascii_isalnum(static_cast<char>(cp)) || cp == '_'));
    if (!word_char) {
      if (!word.empty()) words.push_back(std::move(word));
      word.clear();
      continue;
    }
    if (cp < 0x80) cp = static_cast<char32_t>(absl::ascii_tolower(static_cast<char>(cp)));
    word.push_back(cp);
  }
  if (!word.empty()) words.push_back(std::move(word));
  std::sort(words.begin(), words.end());
  std::vector<char32_t> out;
  for (size_t i = 0; i < words.size(); ++i) {
    if (i > 0) out.push_back(U' ');
    out.insert(out.end(), words[i].begin(), words[i].end());
  }
  return out;
}

size_t LongestCommonSubsequence(const std::vector<char32_t>& a, const std::vector<char32_t>& b) {
  std::vector<size_t> prev(b.size() + 1, 0);
  std::vector<size_t> cur(b.size() + 1, 0);
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      cur[j] = a[i - 1] == b[j - 1] ? prev[j - 1] + 1 : std::max(prev[j], cur[j - 1]);
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

// SGD's compute_f1 on multisets: precision / recall 1 when their denominator is 0.
double ListF1(std::vector<std::string> gold, std::vector<std::string> predicted) {
  std::sort(gold.begin(), gold.end());
  std::sort(predicted.begin(), predicted.end());
  std::vector<std::string> common;
  std::set_intersection(gold.begin(), gold.end(), predicted.begin(), predicted.end(),
                        std::back_inserter(common));
  const double p = predicted.empty() ? 1.0 : static_cast<double>(common.size()) / predicted.size();
  const double r = gold.empty() ? 1.0 : static_cast<double>(common.size()) / gold.size();
  return p + r > 0 ? 2 * p * r / (p + r) : 0.0;
}

}  // namespace

double TokenSortRatio(absl::string_view a, absl::string_view b) {
  const std::vector<char32_t> x = ProcessAndSort(a);
  const std::vector<char32_t> y = ProcessAndSort(b);
  if (x.empty() || y.empty()) return 0.0;
  const double ratio = 2.0 * LongestCommonSubsequence(x, y) / (x.size() + y.size());
  return std::nearbyint(100 * ratio) / 100;  // Round half to even, like Python's round().
}

SgdFrameScores ScoreSgdFrame(const data::FrameState& gold, const data::FrameState& predicted,
                             const data::ServiceSchema& service) {
  SgdFrameScores scores;
  double joint = 1;
  double active_sum = 0;
  size_t active = 0;
  for (const data::SlotSchema& slot : service.slots) {
    auto g = gold.slot_values.find(slot.name);
    auto p = predicted.slot_values.find(slot.name);
    const bool in_gold = g != gold.slot_values.end() && !g->second.empty();
    const bool in_predicted = p != predicted.slot_values.end() && !p->second.empty();
    double score;
    if (!in_gold) {
      score = in_predicted ? 0 : 1;
    } else {
      score = 0;
      if (in_predicted) {
        const std::string& hyp = p->second.front();
        if (slot.is_categorical) {
          score = g->second.front() == hyp ? 1 : 0;
        } else {
          for (const std::string& ref : g->second) score = std::max(score, TokenSortRatio(ref, hyp));
        }
      }
      active_sum += score;
      ++active;
    }
    joint *= score;
  }
  scores.joint_goal = joint;
  if (active > 0) scores.average_goal = active_sum / active;
  scores.active_intent = gold.active_intent == predicted.active_intent ? 1 : 0;
  scores.requested_slot_f1 = ListF1(gold.requested_slots, predicted.requested_slots);
  return scores;
}

void SgdScorer::Sums::Add(const SgdFrameScores& s) {
  ++frames;
  joint_goal += s.joint_goal;
  active_intent += s.active_intent;
  requested_slot_f1 += s.requested_slot_f1;
  if (s.average_goal.has_value()) {
    ++goal_frames;
    average_goal += *s.average_goal;
  }
}

SgdScorer::SgdScorer(std::set<std::string> seen_services)
    : seen_services_(std::move(seen_services)) {}

void SgdScorer::AddFrame(const std::string& service, const SgdFrameScores& scores) {
  all_.Add(scores);
  if (seen_services_.empty()) return;
  (seen_services_.count(service) ? seen_ : unseen_).Add(scores);
}

void SgdScorer::AddTurn(const std::vector<data::Frame>& gold_frames,
                        const DialogueStatePrediction& predicted,
                        const data::DialogueDataset& schema) {
  static const data::FrameState kEmpty = [] {
    data::FrameState s;
    s.active_intent = "NONE";
    return s;
  }();
  for (const data::Frame& frame : gold_frames) {
    if (!frame.has_state) continue;
    const data::ServiceSchema* service = schema.FindService(frame.service);
    if (service == nullptr) continue;  // The readers reject such frames.
    auto it = predicted.find(frame.service);
    AddFrame(frame.service,
             ScoreSgdFrame(frame.state, it != predicted.end() ? it->second : kEmpty, *service));
  }
}

std::map<std::string, double> SgdScorer::Result() const {
  std::map<std::string, double> out;
  auto put = [&](const Sums& s, const std::string& suffix) {
    if (s.frames == 0) return;
    out["joint_goal_accuracy" + suffix] = s.joint_goal / s.frames;
    out["active_intent_accuracy" + suffix] = s.active_intent / s.frames;
    out["requested_slot_f1" + suffix] = s.requested_slot_f1 / s.frames;
    if (s.goal_frames > 0) out["average_goal_accuracy" + suffix] = s.average_goal / s.goal_frames;
  };
  put(all_, "");
  if (!seen_services_.empty()) {
    put(seen_, "_seen");
    put(unseen_, "_unseen");
  }
  return out;
}

std::string NormalizeMultiwozValue(absl::string_view value) {
  std::string v = absl::StrJoin(
      absl::StrSplit(absl::AsciiStrToLower(value), ' ', absl::SkipWhitespace()), " ");
  if (v.empty() || v == "none" || v == "not mentioned") return "";
  if (v == "dontcare" || v == "dont care" || v == "don't care" || v == "do n't care" ||
      v == "do not care" || v == "does not care" || v == "doesn't care" ||
      v == "does n't care") {
    return "dontcare";
  }
  // Spelling variants that the annotators used for one value (a small subset of the table
  // TRADE's evaluation applies).
  static const auto* kVariants = new std::map<std::string, std::string>{
      {"guest house", "guesthouse"},
      {"guesthouses", "guesthouse"},
      {"center", "centre"},
      {"moderately", "moderate"},
      {"moderatly", "moderate"},
      {"concerthall", "concert hall"},
      {"swimmingpool", "swimming pool"},
      {"night club", "nightclub"},
      {"mutiple sports", "multiple sports"},
      {"mutliple sports", "multiple sports"},
      {"museums", "museum"},
      {"colleges", "college"},
      {"theater", "theatre"},
  };
  auto it = kVariants->find(v);
  return it != kVariants->end() ? it->second : v;
}

bool IsMultiwozEvalDomain(absl::string_view domain) {
  return domain == "hotel" || domain == "train" || domain == "restaurant" ||
         domain == "attraction" || domain == "taxi";
}

std::map<std::string, std::string> MultiwozBelief(const DialogueStatePrediction& state) {
  std::map<std::string, std::string> out;
  for (const auto& [domain, frame] : state) {
    if (!IsMultiwozEvalDomain(domain)) continue;
    for (const auto& [slot, forms] : frame.slot_values) {
      if (forms.empty()) continue;
      std::string value = NormalizeMultiwozValue(forms.front());
      if (!value.empty()) out[absl::StrCat(domain, "-", slot)] = std::move(value);
    }
  }
  return out;
}

std::map<std::string, std::string> MultiwozBelief(const std::vector<data::Frame>& frames) {
  DialogueStatePrediction state;
  for (const data::Frame& frame : frames) {
    if (frame.has_state) state[frame.service] = frame.state;
  }
  return MultiwozBelief(state);
}

MultiwozScorer::MultiwozScorer(const data::DialogueDataset& schema) {
  for (const data::ServiceSchema& service : schema.services) {
    if (!IsMultiwozEvalDomain(service.name)) continue;
    for (const data::SlotSchema& slot : service.slots) {
      slots_.push_back(absl::StrCat(service.name, "-", slot.name));
    }
  }
}

void MultiwozScorer::AddTurn(const std::vector<data::Frame>& gold_frames,
                             const DialogueStatePrediction& predicted) {
  const std::map<std::string, std::string> gold = MultiwozBelief(gold_frames);
  const std::map<std::string, std::string> hyp = MultiwozBelief(predicted);
  ++turns_;
  joint_right_ += gold == hyp;
  for (const std::string& slot : slots_) {
    auto g = gold.find(slot);
    auto h = hyp.find(slot);
    const std::string empty;
    slots_right_ += (g != gold.end() ? g->second : empty) == (h != hyp.end() ? h->second : empty);
  }
}

std::map<std::string, double> MultiwozScorer::Result() const {
  std::map<std::string, double> out;
  if (turns_ == 0) return out;
  out["joint_goal_accuracy"] = static_cast<double>(joint_right_) / turns_;
  if (!slots_.empty()) {
    out["slot_accuracy"] = static_cast<double>(slots_right_) / (turns_ * slots_.size());
  }
  return out;
}

}  // namespace helpline::nlu::metrics
