#include "services/dst/tracker.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <unordered_set>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/domain/text.h"
#include "services/dst/extractors.h"

namespace helpline::dst {
namespace {

namespace text = domain::text;
using Vector = std::unordered_map<std::string, float>;

// Weights of the feature kinds: whole words and word pairs carry most of the meaning,
// character trigrams catch inflections and typos ("orders", "pasword").
constexpr float kWordWeight = 1.0f;
constexpr float kBigramWeight = 1.0f;
constexpr float kTrigramWeight = 0.3f;
constexpr float kCjkUnigramWeight = 0.6f;
constexpr float kCjkBigramWeight = 1.0f;

constexpr float kStopwordWeight = 0.3f;

// English function words: they say little about what the customer wants. Question words
// that do ("where", "when") and negations are not in the list.
bool IsStopword(absl::string_view word) {
  static const auto* kWords = new absl::flat_hash_set<std::string>{
      "a",      "an",     "the",   "i",      "im",    "ive",  "id",   "ill",   "me",    "my",
      "mine",   "you",    "your",  "youre",  "we",    "our",  "us",   "it",    "its",   "is",
      "are",    "was",    "were",  "be",     "been",  "am",   "do",   "does",  "did",   "to",
      "of",     "for",    "on",    "in",     "at",    "with", "and",  "or",    "but",   "so",
      "this",   "that",   "these", "those",  "there", "here", "can",  "could", "would", "will",
      "should", "please", "just",  "some",   "any",   "have", "has",  "had",   "get",   "got",
      "what",   "whats",  "how",   "hows",   "which", "who",  "yet",  "now",   "also",  "up",
      "about",  "from",   "by",    "as",     "if",    "then", "than", "too",   "very",  "really",
      "oh",     "well",   "want",  "wanted", "like",  "need", "let",  "them",  "they",  "theyre",
      "he",     "she",    "his",   "her",    "him",   "all",  "out",  "into",  "one",   "thing"};
  return kWords->contains(word);
}

// Chinese function characters, weighted down like English stopwords.
bool IsCjkStopChar(absl::string_view ch) {
  static const auto* kChars = new absl::flat_hash_set<std::string>{
      "的", "了", "我", "是", "吗", "呢", "吧", "啊", "在", "有", "这", "那",
      "个", "一", "要", "想", "请", "帮", "们", "就", "都", "也", "还"};
  return kChars->contains(ch);
}

// Whole turns that only confirm or acknowledge; they never change the intent.
bool IsConfirmation(absl::string_view normalized) {
  static const auto* kPhrases = new std::unordered_set<std::string>{
      "yes",        "yeah",       "yep",         "yup",          "no",          "nope",    "ok",
      "okay",       "k",          "sure",        "right",        "correct",     "alright", "fine",
      "yes please", "no thanks",  "ok thanks",   "that's right", "thats right", "exactly", "indeed",
      "got it",     "understood", "sounds good", "go ahead",     "please do",   "好",      "好的",
      "是",         "是的",       "对",          "对的",         "嗯",          "嗯嗯",    "行",
      "可以",       "没问题",     "好吧",        "不是",         "不",          "不用",    "没错",
      "对啊",       "是啊",       "明白",        "知道了",       "收到"};
  // Strip punctuation and spaces at both ends.
  std::string s(normalized);
  auto is_trim = [](char c) {
    return c == ' ' || c == '.' || c == '!' || c == ',' || c == '?' || c == '\n';
  };
  while (!s.empty() && is_trim(s.back())) s.pop_back();
  size_t b = 0;
  while (b < s.size() && is_trim(s[b])) ++b;
  s = s.substr(b);
  for (const char* tail : {"。", "！", "，", "？", "~"}) {
    while (absl::EndsWith(s, tail)) s.resize(s.size() - std::strlen(tail));
  }
  return kPhrases->count(s) > 0;
}

float KindWeight(const std::string& feature) {
  switch (feature[0]) {
    case 'w':
      return IsStopword(absl::string_view(feature).substr(2)) ? kStopwordWeight : kWordWeight;
    case 'b':
      return kBigramWeight;
    case 'c':
      return kTrigramWeight;
    case 'u':
      return IsCjkStopChar(absl::string_view(feature).substr(2)) ? kStopwordWeight
                                                                 : kCjkUnigramWeight;
    default:
      return kCjkBigramWeight;
  }
}

bool HasDigit(absl::string_view s) { return std::any_of(s.begin(), s.end(), absl::ascii_isdigit); }

// Lower-cases, folds the typographic apostrophe and masks e-mail addresses, which carry
// no intent.
std::string NormalizeForMatching(absl::string_view s) {
  std::string out = text::AsciiLower(absl::StrReplaceAll(s, {{"\xE2\x80\x99", "'"}}));
  const size_t at = out.find('@');
  if (at != std::string::npos) {
    // Blank the run of non-space characters around each '@'.
    size_t pos = 0;
    while ((pos = out.find('@', pos)) != std::string::npos) {
      size_t b = pos;
      while (b > 0 && out[b - 1] != ' ') --b;
      size_t e = pos;
      while (e < out.size() && out[e] != ' ') ++e;
      for (size_t i = b; i < e; ++i) out[i] = ' ';
      pos = e;
    }
  }
  return out;
}

float Norm(const Vector& v) {
  double sum = 0;
  for (const auto& [k, x] : v) sum += static_cast<double>(x) * x;
  return static_cast<float>(std::sqrt(sum));
}

void Normalize(Vector& v) {
  const float n = Norm(v);
  if (n <= 0) return;
  for (auto& [k, x] : v) x /= n;
}

std::string Lowered(absl::string_view s) { return text::AsciiLower(s); }

// Whether `phrase` occurs in `haystack` (both lower-cased): CJK phrases as substrings,
// others at ASCII word boundaries.
// `cjk`: text::ContainsCjk(phrase).
bool ContainsPhrase(absl::string_view haystack, absl::string_view phrase, bool cjk) {
  if (phrase.empty()) return false;
  size_t pos = 0;
  while ((pos = haystack.find(phrase, pos)) != absl::string_view::npos) {
    const size_t end = pos + phrase.size();
    if (cjk) return true;
    const bool left = pos == 0 || !absl::ascii_isalnum(haystack[pos - 1]);
    const bool right = end == haystack.size() || !absl::ascii_isalnum(haystack[end]);
    if (left && right) return true;
    ++pos;
  }
  return false;
}

std::string CollapseSpaces(absl::string_view s) {
  std::string out;
  bool space = false;
  for (char c : s) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      space = !out.empty();
      continue;
    }
    if (space) out.push_back(' ');
    space = false;
    out.push_back(c);
  }
  return out;
}

}  // namespace

namespace {

// Adds the weighted term frequencies of the features of `raw` to `counts` (empty), a map
// from std::string to float. One key buffer is reused, so a feature costs a lookup and, the
// first time, the map's copy of the key.
template <typename Map>
void CountFeatures(absl::string_view raw, Map& counts) {
  const std::string s = NormalizeForMatching(raw);
  // The previous word of the current run of words (for bigrams), when there is one.
  std::string prev_word;
  bool has_prev_word = false;
  std::string word;
  std::string key;
  absl::string_view prev_cjk;
  auto count = [&](absl::string_view kind, absl::string_view a, absl::string_view b = {},
                   absl::string_view c = {}) {
    key.assign(kind.data(), kind.size());
    key.append(a.data(), a.size());
    key.append(b.data(), b.size());
    key.append(c.data(), c.size());
    counts[key] += 1;
  };
  auto flush_word = [&](bool breaks_run) {
    if (!word.empty()) {
      if (HasDigit(word)) {
        has_prev_word = false;  // Values (order numbers, amounts) carry no intent.
      } else {
        const bool stop = IsStopword(word);
        count("w:", word);
        if (has_prev_word && !(stop && IsStopword(prev_word))) count("b:", prev_word, " ", word);
        // Trigrams of "<word>" (over bytes; code points would be nicer, but words here are
        // mostly ASCII).
        if (!stop) {
          const size_t padded = word.size() + 2;
          for (size_t i = 0; i + 3 <= padded; ++i) {
            key.assign("c:");
            for (size_t j = i; j < i + 3; ++j) {
              key.push_back(j == 0 ? '<' : j == padded - 1 ? '>' : word[j - 1]);
            }
            counts[key] += 1;
          }
        }
        prev_word.swap(word);
        has_prev_word = true;
      }
      word.clear();
    }
    if (breaks_run) has_prev_word = false;
  };
  size_t pos = 0;
  while (pos < s.size()) {
    const size_t begin = pos;
    const char32_t cp = text::NextCodePoint(s, &pos);
    if (text::IsCjk(cp)) {
      flush_word(true);
      const absl::string_view ch = absl::string_view(s).substr(begin, pos - begin);
      count("u:", ch);
      if (!prev_cjk.empty() && !(IsCjkStopChar(prev_cjk) && IsCjkStopChar(ch))) {
        count("z:", prev_cjk, ch);
      }
      prev_cjk = ch;
      continue;
    }
    prev_cjk = {};
    if (cp == '\'') continue;  // "don't" -> "dont", "where's" -> "wheres".
    if (text::IsWordChar(cp)) {
      word.append(s, begin, pos - begin);
    } else if (cp == '-' && !word.empty() && pos < s.size() && absl::ascii_isalnum(s[pos])) {
      word.push_back('-');  // "A-1234567", "e-mail" stay one word.
    } else {
      // Spaces keep the word run going (bigrams); punctuation ends it.
      flush_word(!text::IsSpace(cp));
    }
  }
  flush_word(true);
  // Sublinear term frequency times the weight of the feature's kind.
  for (auto& [k, v] : counts) v = KindWeight(k) * (1.0f + std::log(v));
}

}  // namespace

std::unordered_map<std::string, float> IntentClassifier::Features(absl::string_view raw) {
  std::unordered_map<std::string, float> counts;
  CountFeatures(raw, counts);
  return counts;
}

IntentClassifier::IntentClassifier(const domain::Domain& domain) {
  // Document frequency counts intents, not examples: a word that every example of one
  // intent uses ("refund") is that intent's best evidence, not a common word.
  std::unordered_map<std::string, std::unordered_set<size_t>> df;
  std::vector<std::pair<size_t, Vector>> raw;
  for (size_t i = 0; i < domain.intents.size(); ++i) {
    intent_names_.push_back(domain.intents[i].name);
    for (const auto& [lang, list] : domain.intents[i].examples) {
      for (const auto& example : list) {
        Vector v = Features(example);
        if (v.empty()) continue;
        for (const auto& [k, x] : v) df[k].insert(i);
        raw.emplace_back(i, std::move(v));
      }
    }
  }
  const double n = static_cast<double>(intent_names_.size());
  for (const auto& [k, intents] : df) {
    index_[k].idf = static_cast<float>(std::log((n + 1) / (intents.size() + 1)) + 1);
  }
  // An unseen feature weighs like one that a single intent has.
  unseen_idf_ = static_cast<float>(std::log((n + 1) / 2) + 1);
  for (auto& [intent, v] : raw) {
    for (auto& [k, x] : v) x *= index_[k].idf;
    Normalize(v);
    const auto example = static_cast<uint32_t>(example_intents_.size());
    example_intents_.push_back(intent);
    for (const auto& [k, x] : v) index_[k].postings.push_back({example, x});
  }
}

std::vector<IntentScore> IntentClassifier::Score(absl::string_view input) const {
  absl::flat_hash_map<std::string, float> q;
  q.reserve(64);
  CountFeatures(input, q);
  std::vector<IntentScore> scores;
  if (q.empty()) return scores;
  // One index lookup per feature of the text; unseen features keep a null entry.
  std::vector<std::pair<float, const IndexedFeature*>> terms;
  terms.reserve(q.size());
  for (auto& [k, x] : q) {
    auto it = index_.find(k);
    // Unseen features count against a match: a sentence mostly made of words no example
    // has is not a confident match.
    const IndexedFeature* feature = it != index_.end() ? &it->second : nullptr;
    x *= feature != nullptr ? feature->idf : unseen_idf_;
    terms.emplace_back(x, feature);
  }
  double sum = 0;
  for (const auto& [x, feature] : terms) sum += static_cast<double>(x) * x;
  const auto norm = static_cast<float>(std::sqrt(sum));
  std::vector<float> dots(example_intents_.size(), 0.0f);
  for (auto [x, feature] : terms) {
    if (feature == nullptr) continue;
    const float qx = norm > 0 ? x / norm : x;
    for (const Posting& p : feature->postings) dots[p.example] += qx * p.weight;
  }
  std::vector<float> best(intent_names_.size(), 0.0f);
  for (size_t e = 0; e < dots.size(); ++e) {
    best[example_intents_[e]] = std::max(best[example_intents_[e]], dots[e]);
  }
  for (size_t i = 0; i < intent_names_.size(); ++i) {
    if (best[i] > 0) scores.push_back({intent_names_[i], std::min(best[i], 1.0f)});
  }
  std::stable_sort(scores.begin(), scores.end(),
                   [](const IntentScore& a, const IntentScore& b) { return a.score > b.score; });
  return scores;
}

Tracker::Tracker(std::shared_ptr<const domain::Domain> domain, TrackerOptions options)
    : domain_(std::move(domain)), options_(options), classifier_(*domain_), extractor_(domain_) {
  for (const auto& [lang, phrases] : domain_->escalation_phrases) {
    for (const auto& phrase : phrases) {
      std::string prepared = CollapseSpaces(Lowered(phrase));
      if (prepared.empty()) continue;
      const bool cjk = text::ContainsCjk(prepared);
      escalation_phrases_.push_back({std::move(prepared), cjk});
    }
  }
}

bool Tracker::AsksForHuman(absl::string_view raw) const {
  return AsksForHumanPrepared(CollapseSpaces(NormalizeForMatching(raw)));
}

bool Tracker::AsksForHumanPrepared(absl::string_view s) const {
  for (const EscalationPhrase& phrase : escalation_phrases_) {
    if (ContainsPhrase(s, phrase.text, phrase.cjk)) return true;
  }
  return false;
}

absl::StatusOr<TrackResult> Tracker::Track(const TurnInput& input) const {
  const std::string user_text = absl::StrReplaceAll(input.user_text, {{"\xE2\x80\x99", "'"}});
  bool has_evidence = false;
  for (const auto& e : input.evidence) has_evidence = has_evidence || !e.text().empty();
  if (absl::StripAsciiWhitespace(user_text).empty() && !has_evidence) {
    return absl::InvalidArgumentError("user_text: empty turn (no text and no evidence)");
  }
  const domain::Domain& domain = *domain_;
  const common::v1::DialogueState& prior = input.prior;
  TrackResult result;
  common::v1::DialogueState& state = result.state;
  state = prior;
  state.set_domain(domain.name);
  const uint32_t turn = prior.turn_count();

  // Language: the request's when known, else the prior's, else by script.
  if (!input.language.empty() && input.language != "und") {
    state.set_language(input.language);
  } else if (prior.language().empty()) {
    state.set_language(text::ContainsCjk(user_text) ? "zh" : domain.languages.front());
  }

  std::vector<std::string> requested;
  for (const auto& r : prior.requested_slots()) {
    if (domain.FindSlot(r) != nullptr) requested.push_back(r);
  }

  // Does the turn answer what we asked? (A bare "12345678" after "what's the order number?")
  bool answers_request = false;
  if (!requested.empty()) {
    ExtractOptions probe;
    probe.requested = requested;
    probe.relevant = [](const domain::Slot&) { return false; };
    for (const SlotCandidate& c : extractor_.Extract(user_text, probe)) {
      answers_request = answers_request ||
                        std::find(requested.begin(), requested.end(), c.slot) != requested.end();
    }
  }

  // Intent.
  // Lower-cased, e-mail addresses blanked, spaces collapsed: for confirmations and
  // escalation phrases.
  const std::string prepared = CollapseSpaces(NormalizeForMatching(user_text));
  const bool confirmation = IsConfirmation(prepared);
  const std::vector<IntentScore> scores =
      confirmation ? std::vector<IntentScore>{} : classifier_.Score(user_text);
  if (!scores.empty()) result.best = scores.front();
  const bool confident = result.best.score >= options_.intent_threshold;
  bool switch_intent = confident && result.best.intent != prior.active_intent();
  if (switch_intent && answers_request && !prior.active_intent().empty() &&
      result.best.score < options_.switch_threshold) {
    switch_intent = false;  // The turn is an answer, not a new request.
  }
  if (switch_intent) {
    state.set_active_intent(result.best.intent);
    state.set_intent_confidence(result.best.score);
    result.intent_from_text = true;
  } else if (confident && result.best.intent == prior.active_intent()) {
    state.set_intent_confidence(std::max(prior.intent_confidence(), result.best.score));
    result.intent_from_text = true;
  }
  const domain::Intent* intent = domain.FindIntent(state.active_intent());

  // Slots from the customer's text: they overwrite earlier values.
  ExtractOptions options;
  // A new request does not answer the old question, unless it clearly does.
  if (!switch_intent || answers_request) options.requested = requested;
  options.allow_free_text = !confirmation;  // "ok" is not the name of an item.
  options.relevant = [intent](const domain::Slot& slot) {
    return intent != nullptr && intent->Uses(slot.name);
  };
  auto& slots = *state.mutable_slots();
  std::vector<std::string> typed_now;
  for (const SlotCandidate& c : extractor_.Extract(user_text, options)) {
    common::v1::SlotValue& v = slots[c.slot];
    v.set_value(c.value);
    v.set_confidence(c.confidence);
    v.set_source(common::v1::SLOT_SOURCE_CUSTOMER_TEXT);
    v.set_turn(turn);
    typed_now.push_back(c.slot);
  }

  // Slots from attachments: they fill empty slots and replace earlier attachment values,
  // never a value the customer typed.
  ExtractOptions evidence_options = options;
  evidence_options.allow_free_text = false;
  std::vector<std::string> from_evidence;
  for (const auto& evidence : input.evidence) {
    for (const SlotCandidate& c : extractor_.Extract(evidence.text(), evidence_options)) {
      if (std::find(typed_now.begin(), typed_now.end(), c.slot) != typed_now.end()) continue;
      if (std::find(from_evidence.begin(), from_evidence.end(), c.slot) != from_evidence.end()) {
        continue;  // The first attachment that has it wins within a turn.
      }
      auto it = slots.find(c.slot);
      if (it != slots.end() && !it->second.value().empty() &&
          it->second.source() != common::v1::SLOT_SOURCE_ATTACHMENT) {
        continue;
      }
      const float evidence_confidence = evidence.confidence() > 0 ? evidence.confidence() : 0.5f;
      common::v1::SlotValue& v = slots[c.slot];
      v.set_value(c.value);
      v.set_confidence(c.confidence * std::min(evidence_confidence, 1.0f));
      v.set_source(common::v1::SLOT_SOURCE_ATTACHMENT);
      v.set_turn(turn);
      from_evidence.push_back(c.slot);
    }
  }

  // Escalation: sticky once set; an explicit request beats the intent's policy.
  if (!state.escalate()) {
    if (AsksForHumanPrepared(prepared)) {
      state.set_escalate(true);
      state.set_escalation_reason("customer_request");
    } else if (intent != nullptr && intent->escalate) {
      state.set_escalate(true);
      state.set_escalation_reason("intent_policy");
    }
  }

  // Missing and requested slots.
  state.clear_missing_slots();
  state.clear_requested_slots();
  if (intent != nullptr) {
    for (const std::string& name : intent->required_slots) {
      auto it = slots.find(name);
      if (it == slots.end() || it->second.value().empty()) state.add_missing_slots(name);
    }
  }
  if (!state.escalate() && state.missing_slots_size() > 0) {
    state.add_requested_slots(state.missing_slots(0));
  }
  state.set_turn_count(turn + 1);
  return result;
}

}  // namespace helpline::dst
