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
#include "services/dst/dialogue_acts.h"
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

absl::StatusOr<TrackerOptions> TrackerOptionsFromConfig(const v1::DstConfig& config) {
  if (!(config.intent_threshold() >= 0 && config.intent_threshold() <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("intent_threshold: ", config.intent_threshold(), " is not in [0, 1]"));
  }
  TrackerOptions options;
  options.intent_threshold = config.intent_threshold();
  if (config.max_low_confidence_turns() > 0) {
    options.max_low_confidence_turns = config.max_low_confidence_turns();
  }
  if (config.frustration_threshold() > 0) {
    options.frustration_threshold = config.frustration_threshold();
  }
  options.learned_intent_first = config.dialogue_model_first();
  options.learned_values_first = config.dialogue_model_first();
  return options;
}

namespace {

using common::v1::DialogueState;
using common::v1::SlotValue;

constexpr common::v1::ConfirmationStatus kUnconfirmed =
    common::v1::CONFIRMATION_STATUS_UNSPECIFIED;
constexpr common::v1::ConfirmationStatus kPending = common::v1::CONFIRMATION_STATUS_PENDING;
constexpr common::v1::ConfirmationStatus kConfirmed = common::v1::CONFIRMATION_STATUS_CONFIRMED;
constexpr common::v1::ConfirmationStatus kDeclined = common::v1::CONFIRMATION_STATUS_DECLINED;

// A value the customer confirmed is as sure as one they typed.
constexpr float kConfirmedConfidence = 0.95f;
// A value or intent of the learned tracker: below the typed extractors (0.85-0.95) and the
// utterance model's spans (0.8), since the rules that apply win over it.
constexpr float kLearnedSlotConfidence = 0.7f;
constexpr float kLearnedIntentConfidence = 0.7f;
// Request fingerprints kept in the state to notice a repeated question.
constexpr int kRecentRequests = 3;

bool Contains(const std::vector<std::string>& list, absl::string_view name) {
  return std::find(list.begin(), list.end(), name) != list.end();
}

bool HasValue(const DialogueState& state, const std::string& slot) {
  auto it = state.slots().find(slot);
  return it != state.slots().end() && !it->second.value().empty();
}

// Any letter, digit or CJK character: what is left of a turn after preprocessing.
bool HasContent(absl::string_view s) {
  size_t pos = 0;
  while (pos < s.size()) {
    const char32_t cp = text::NextCodePoint(s, &pos);
    if (text::IsWordChar(cp) || text::IsCjk(cp)) return true;
  }
  return false;
}

// Words that can carry an intent: a CJK character or a word with a letter and no digit
// (order numbers and amounts carry none; e-mail addresses are blanked in `prepared`).
bool HasIntentWords(absl::string_view prepared) {
  size_t pos = 0;
  bool letter = false;
  bool digit = false;
  while (pos < prepared.size()) {
    const size_t begin = pos;
    const unsigned char byte = static_cast<unsigned char>(prepared[pos]);
    const char32_t cp = byte < 0x80 ? prepared[pos++] : text::NextCodePoint(prepared, &pos);
    if (byte >= 0x80 && text::IsCjk(cp)) return true;
    if (byte < 0x80 ? absl::ascii_isalnum(byte) : text::IsWordChar(cp)) {
      if (cp < 0x80 && absl::ascii_isdigit(static_cast<char>(cp))) {
        digit = true;
      } else {
        letter = true;
      }
      continue;
    }
    if (cp == '\'' || (cp == '-' && begin > 0)) continue;
    if (letter && !digit) return true;
    letter = digit = false;
  }
  return letter && !digit;
}

// Replaces bytes [begin, end) of `s` by spaces, keeping every other offset.
void Blank(std::string& s, size_t begin, size_t end) {
  for (size_t i = begin; i < end && i < s.size(); ++i) s[i] = ' ';
}

// The negation in front of the first occurrence of `mention` (at word boundaries) that has
// one; kNone when none has.
NegationKind MentionNegation(absl::string_view lowered, absl::string_view mention) {
  size_t pos = 0;
  while ((pos = lowered.find(mention, pos)) != absl::string_view::npos) {
    const size_t end = pos + mention.size();
    const bool left = pos == 0 || !absl::ascii_isalnum(lowered[pos - 1]);
    const bool right = end == lowered.size() || !absl::ascii_isalnum(lowered[end]);
    if (left && right) {
      const NegationKind kind = NegationBefore(lowered, pos).kind;
      if (kind != NegationKind::kNone) return kind;
    }
    pos = end;
  }
  return NegationKind::kNone;
}

bool IsUnambiguousType(domain::SlotType type) {
  return type == domain::SlotType::kRegex || type == domain::SlotType::kEmail ||
         type == domain::SlotType::kPhone;
}

// Whether a negation cue of `kind` takes back a value of a slot of `type`: any cue before an
// enum value ("no express", "cancel the wechat pay", "not damaged"); only "not" before other
// values ("not 12345678"), since "cancel order 12345678" asks to cancel that order and
// "order no 12345678" names it.
bool NegatesValue(NegationKind kind, domain::SlotType type) {
  if (kind == NegationKind::kNone || type == domain::SlotType::kFreeText) return false;
  return type == domain::SlotType::kEnum || kind == NegationKind::kNot;
}

}  // namespace

struct Tracker::Turn {
  Turn(const TurnInput& in, TrackResult& out)
      : input(in), result(out), state(out.state), prior(in.prior) {}

  const TurnInput& input;
  TrackResult& result;
  DialogueState& state;
  const DialogueState& prior;
  uint32_t index = 0;       // Zero-based index of this turn.
  std::string user_text;    // Typographic apostrophes folded.
  std::string lowered;      // user_text lower-cased (same byte offsets).
  std::string prepared;     // lowered, e-mail addresses blanked, spaces collapsed.
  bool has_text = false;    // Letters, digits or CJK characters in user_text.
  AnswerCue answer;         // A yes/no at the start of the turn.
  int correction_body = -1; // Offset of the corrected content (CorrectionBody).
  bool may_negate = false;  // A negation cue somewhere (FindNegationCues)...
  bool may_remove = false;  // ...one that can remove a slot by name.
  bool resume_cue = false;  // "back to my ...".
  std::vector<std::string> requested;  // The prior's requested slots that the domain has.
  bool answers_request = false;        // The text has a value for a requested slot...
  bool answers_with_value = false;     // ...other than free text (which any text is).
  bool bare_free_text = false;         // The text may be the value of a requested free-text
                                       // slot as a whole (MayBeBareFreeText).
  // Intent scores of the text, highest first; out_of_scope from the model.
  std::vector<IntentScore> scores;
  bool out_of_scope = false;
  std::vector<SlotCandidate> model_slots;
  // The learned tracker's view of the turn (empty without it), and the slots whose value
  // comes from it (source SLOT_SOURCE_DIALOGUE_MODEL).
  DialogueAnalysis learned;
  bool has_learned = false;
  std::vector<std::pair<std::string, std::string>> learned_now;  // (slot, value)
  bool confident = false;  // The text names an intent (best score over the threshold).
  bool switched = false;   // The active intent changed (a new one or a resumed one).
  const domain::Intent* intent = nullptr;  // The active intent after DecideIntent.
  ExtractOptions options;                  // For the text (and evidence, without free text).
  std::vector<SlotCandidate> candidates;   // Values from the text, to be set.
  std::vector<std::pair<std::string, std::string>> negated;  // (slot, value) taken back.
  std::vector<std::string> removed_by_name;                  // "forget the phone number".
  std::vector<std::string> typed_now;                        // Slots set from the text.
  bool answer_used = false;      // The yes/no answered a slot confirmation.
  bool evidence_changed = false; // An attachment set a slot.
};

Tracker::Tracker(std::shared_ptr<const domain::Domain> domain, TrackerOptions options)
    : domain_(std::move(domain)),
      options_(std::move(options)),
      classifier_(*domain_),
      extractor_(domain_) {
  for (const auto& [lang, phrases] : domain_->escalation_phrases) {
    for (const auto& phrase : phrases) {
      std::string prepared = CollapseSpaces(Lowered(phrase));
      if (prepared.empty()) continue;
      const bool cjk = text::ContainsCjk(prepared);
      escalation_phrases_.push_back({std::move(prepared), cjk});
    }
  }
  // How customers name a slot: its name in words ("order_id" -> "order id"), "... number"
  // for an "..._id" slot, "e-mail" for e-mail slots.
  for (const domain::Slot& slot : domain_->slots) {
    const std::string words = absl::StrReplaceAll(Lowered(slot.name), {{"_", " "}});
    slot_mentions_.push_back({slot.name, words});
    if (absl::EndsWith(words, " id")) {
      slot_mentions_.push_back({slot.name, absl::StrCat(words.substr(0, words.size() - 3),
                                                        " number")});
    }
    if (slot.type == domain::SlotType::kEmail && words != "e-mail") {
      slot_mentions_.push_back({slot.name, "e-mail"});
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

bool Tracker::Relevant(const Turn& t, const domain::Slot& slot) const {
  return IsUnambiguousType(slot.type) || Contains(t.requested, slot.name) ||
         (t.intent != nullptr && t.intent->Uses(slot.name));
}

absl::StatusOr<TrackResult> Tracker::Track(const TurnInput& input) const {
  TrackResult result;
  Turn t(input, result);
  DialogueState& state = result.state;
  state = input.prior;
  state.set_domain(domain_->name);
  t.index = input.prior.turn_count();
  t.user_text = absl::StrReplaceAll(input.user_text, {{"\xE2\x80\x99", "'"}});
  t.has_text = HasContent(t.user_text);
  bool has_evidence = false;
  for (const auto& e : input.evidence) has_evidence = has_evidence || !e.text().empty();
  if (!t.has_text && !has_evidence) {
    // Nothing left after preprocessing (spaces, punctuation, an emoji): the conversation
    // stays where it was (the learned tracker's memory too); only the turn is counted.
    result.empty_turn = true;
    state.set_turn_count(t.index + 1);
    return result;
  }

  // Language: the request's when known, else the prior's, else by script.
  if (!input.language.empty() && input.language != "und") {
    state.set_language(input.language);
  } else if (input.prior.language().empty()) {
    state.set_language(text::ContainsCjk(t.user_text) ? "zh" : domain_->languages.front());
  }

  t.lowered = Lowered(t.user_text);
  t.prepared = CollapseSpaces(NormalizeForMatching(t.lowered));
  if (t.has_text) {
    t.answer = ReadAnswer(t.lowered);
    t.correction_body = CorrectionBody(t.lowered);
    const NegationCues cues = FindNegationCues(t.lowered);
    t.may_negate = cues.any;
    t.may_remove = cues.removal;
    t.resume_cue = !input.prior.intent_stack().empty() && AsksToResume(t.lowered);
  }
  for (const auto& r : input.prior.requested_slots()) {
    if (domain_->FindSlot(r) != nullptr) t.requested.push_back(r);
  }

  ScoreIntents(t);
  t.bare_free_text = MayBeBareFreeText(t);
  // Does the turn answer what we asked? (A bare "12345678" after "what's the order number?")
  if (!t.requested.empty() && t.has_text) {
    ExtractOptions probe;
    probe.requested = t.requested;
    probe.relevant = [](const domain::Slot&) { return false; };
    probe.allow_free_text = t.bare_free_text;
    for (const SlotCandidate& c : extractor_.Extract(t.user_text, probe)) {
      if (!Contains(t.requested, c.slot)) continue;
      t.answers_request = true;
      t.answers_with_value = t.answers_with_value ||
                             domain_->FindSlot(c.slot)->type != domain::SlotType::kFreeText;
    }
  }
  if (absl::Status s = AnalyzeDialogue(t); !s.ok()) return s;
  TakeLearnedIntent(t);
  DecideIntent(t);
  ExtractTypedSlots(t);
  MergeModelSlots(t);
  MergeLearnedSlots(t);
  ApplyNegations(t);
  ApplyCorrectionFallback(t);
  ApplyTypedSlots(t);
  ResolveSlotConfirmation(t);
  MergeEvidence(t);
  UpdateEscalation(t);
  FinishState(t);
  WriteDialogueContext(t);
  return result;
}

void Tracker::ScoreIntents(Turn& t) const {
  // A bare answer or acknowledgement ("yes", "好的", "got it") names no intent; nor does a
  // turn of values only ("A-1234567", "jane@example.com").
  if (!t.has_text || t.answer.whole_turn || !HasIntentWords(t.prepared)) return;
  // The cue of a correction ("no, it's ...", "actually ...") says nothing about the intent:
  // only what follows is scored.
  const size_t offset = t.correction_body > 0 ? static_cast<size_t>(t.correction_body) : 0;
  const absl::string_view scored = absl::string_view(t.user_text).substr(offset);
  if (offset > 0 && !HasIntentWords(CollapseSpaces(NormalizeForMatching(scored)))) return;
  if (options_.model != nullptr) {
    UtteranceAnalysis analysis = options_.model->Analyze(scored, t.state.language());
    t.scores = std::move(analysis.intents);
    t.out_of_scope = analysis.out_of_scope;
    t.model_slots = std::move(analysis.slots);
    for (SlotCandidate& span : t.model_slots) {
      if (span.begin < span.end && span.end <= scored.size()) {
        span.begin += offset;
        span.end += offset;
      } else {
        span.begin = span.end = 0;  // Not a span of the text: its value alone is checked.
      }
    }
  } else {
    t.scores = classifier_.Score(scored);
  }
  if (!t.scores.empty()) t.result.best = t.scores.front();
  // The model's calibrated out-of-scope decision (its threshold was tuned on dev data) says
  // whether the turn names an intent; intent_threshold is for the TF-IDF similarities, which
  // are on another scale.
  t.confident = !t.out_of_scope && !t.scores.empty() &&
                domain_->FindIntent(t.result.best.intent) != nullptr &&
                (options_.model != nullptr || t.result.best.score >= options_.intent_threshold);
  if (t.out_of_scope) t.result.best = {};
}

namespace {

// Pushes `intent` (with the values of the slots it uses) onto the state's intent stack,
// replacing an older frame of the same intent and dropping the oldest beyond `max`.
void PushFrame(DialogueState& state, const domain::Intent& intent, float confidence,
               uint32_t turn, uint32_t max) {
  auto* stack = state.mutable_intent_stack();
  for (int i = stack->size() - 1; i >= 0; --i) {
    if (stack->Get(i).intent() == intent.name) stack->DeleteSubrange(i, 1);
  }
  common::v1::IntentFrame* frame = stack->Add();
  frame->set_intent(intent.name);
  frame->set_intent_confidence(confidence);
  frame->set_turn(turn);
  for (const auto& [name, value] : state.slots()) {
    if (intent.Uses(name) && !value.value().empty()) (*frame->mutable_slots())[name] = value;
  }
  while (stack->size() > static_cast<int>(std::max<uint32_t>(max, 1))) {
    stack->DeleteSubrange(0, 1);
  }
}

// Removes the frame of `intent` from the stack (the last one when `intent` is empty) and
// makes it the active intent with its slots. False when there is no such frame.
bool ResumeFrame(DialogueState& state, absl::string_view intent) {
  auto* stack = state.mutable_intent_stack();
  int found = -1;
  for (int i = stack->size() - 1; i >= 0 && found < 0; --i) {
    if (intent.empty() || stack->Get(i).intent() == intent) found = i;
  }
  if (found < 0) return false;
  common::v1::IntentFrame frame = std::move(*stack->Mutable(found));
  stack->DeleteSubrange(found, 1);
  state.set_active_intent(frame.intent());
  state.set_intent_confidence(frame.intent_confidence());
  for (auto& [name, value] : *frame.mutable_slots()) (*state.mutable_slots())[name] = value;
  return true;
}

}  // namespace

bool Tracker::RemovesSlotOf(const Turn& t, const domain::Intent& intent) const {
  if (!t.may_remove) return false;
  for (const SlotMention& m : slot_mentions_) {
    if (!intent.Uses(m.slot)) continue;
    const NegationKind kind = MentionNegation(t.lowered, m.text);
    if (kind == NegationKind::kNo || kind == NegationKind::kRemoval) return true;
  }
  return false;
}

bool Tracker::MayBeBareFreeText(const Turn& t) const {
  if (!t.has_text || t.answer.whole_turn) return false;  // "ok" is not the name of an item.
  // "What payment methods do you accept?" after "which item?" asks; it names no item.
  if (IsQuestion(t.lowered)) return false;
  // "my parcel never arrived" names another request, even below the switch threshold.
  if (t.confident && t.result.best.intent != t.prior.active_intent()) return false;
  // A free-text value is a short phrase ("the blue running shoes"); a long turn is a story.
  return TurnWords(t.lowered) <= options_.max_free_text_words;
}

void Tracker::DecideIntent(Turn& t) const {
  DialogueState& state = t.state;
  const DialogueState& prior = t.prior;
  const std::string& prior_intent = prior.active_intent();
  const domain::Intent* prior_def = domain_->FindIntent(prior_intent);
  // Whether the prior intent was done, from the domain rather than the stored `ready` (which
  // states written before it existed lack).
  bool prior_done = prior_def != nullptr &&
                    (!prior_def->transactional || prior.confirmation() == kConfirmed);
  for (size_t i = 0; prior_done && prior_def != nullptr && i < prior_def->required_slots.size();
       ++i) {
    prior_done = HasValue(prior, prior_def->required_slots[i]);
  }
  const IntentScore& best = t.result.best;
  bool switch_intent = t.confident && best.intent != prior_intent;
  if (switch_intent && t.answers_request && prior_def != nullptr &&
      best.score < options_.switch_threshold) {
    switch_intent = false;  // The turn is an answer, not a new request.
  }
  if (switch_intent && prior_def != nullptr && RemovesSlotOf(t, *prior_def)) {
    switch_intent = false;  // "cancel the coupon" edits the task at hand; it is no new one.
  }
  if (switch_intent) {
    // An unfinished intent waits on the stack; a finished one is done with.
    if (prior_def != nullptr && !prior_done) {
      PushFrame(state, *prior_def, prior.intent_confidence(), t.index,
                options_.max_intent_stack);
    }
    // Returning to an interrupted intent brings its slots back.
    if (ResumeFrame(state, best.intent)) t.result.resumed = true;
    state.set_active_intent(best.intent);
    state.set_intent_confidence(best.score);
    t.result.intent_from_text = true;
    t.switched = true;
  } else if (t.confident && best.intent == prior_intent) {
    state.set_intent_confidence(std::max(prior.intent_confidence(), best.score));
    t.result.intent_from_text = true;
  } else if (!t.confident && !state.intent_stack().empty() &&
             (prior_done || prior_def == nullptr || t.resume_cue)) {
    // The active intent is done (or the customer goes back): resume the interrupted one.
    common::v1::IntentFrame top = state.intent_stack(state.intent_stack_size() - 1);
    state.mutable_intent_stack()->RemoveLast();
    if (prior_def != nullptr && !prior_done) {
      PushFrame(state, *prior_def, prior.intent_confidence(), t.index,
                options_.max_intent_stack);
    }
    state.mutable_intent_stack()->Add(std::move(top));
    ResumeFrame(state, "");
    t.result.resumed = true;
    t.switched = true;
  }
  t.intent = domain_->FindIntent(state.active_intent());
}

void Tracker::ExtractTypedSlots(Turn& t) const {
  // A new request does not answer the old question, unless it has a value for it ("where
  // is order 12345678?" after "which order?"); the new request is not the item we asked for.
  if (!t.switched || t.result.resumed) {
    t.options.requested = t.requested;
  } else if (t.answers_with_value) {
    for (const std::string& name : t.requested) {
      if (domain_->FindSlot(name)->type != domain::SlotType::kFreeText) {
        t.options.requested.push_back(name);
      }
    }
  }
  // "ok" is not the name of an item, nor is a question or another request.
  t.options.allow_free_text = t.bare_free_text;
  t.options.relevant = [intent = t.intent](const domain::Slot& slot) {
    return intent != nullptr && intent->Uses(slot.name);
  };
  if (!t.has_text) return;
  t.candidates = extractor_.Extract(t.user_text, t.options);
  // A correction or a negation may be about a filled slot the active intent does not use
  // ("no, I paid with alipay" while tracking an order): look for those in what is left.
  if (t.correction_body < 0 && !t.may_negate) return;
  const DialogueState& state = t.state;
  auto outside = [&t, &state](const domain::Slot& slot) {
    return !IsUnambiguousType(slot.type) && HasValue(state, slot.name) &&
           !(t.intent != nullptr && t.intent->Uses(slot.name));
  };
  bool any_outside = false;
  for (const auto& [name, value] : state.slots()) {
    const domain::Slot* slot = domain_->FindSlot(name);
    any_outside = any_outside || (slot != nullptr && outside(*slot));
  }
  if (!any_outside) return;
  std::string rest = t.user_text;
  for (const SlotCandidate& c : t.candidates) Blank(rest, c.begin, c.end);
  ExtractOptions widened;
  widened.allow_free_text = false;
  widened.relevant = outside;
  for (SlotCandidate& c : extractor_.Extract(rest, widened)) {
    const bool known = std::any_of(t.candidates.begin(), t.candidates.end(),
                                   [&](const SlotCandidate& k) { return k.slot == c.slot; });
    const domain::Slot* slot = domain_->FindSlot(c.slot);
    if (!known && slot != nullptr && !IsUnambiguousType(slot->type)) {
      t.candidates.push_back(std::move(c));
    }
  }
}

void Tracker::MergeModelSlots(Turn& t) const {
  for (const SlotCandidate& span : t.model_slots) {
    const domain::Slot* slot = domain_->FindSlot(span.slot);
    if (slot == nullptr || !Relevant(t, *slot)) continue;
    // A tagged span is a part of the turn, not the whole turn taken as a value: it may name
    // the item inside a question ("can I return the blue shoes?").
    if (slot->type == domain::SlotType::kFreeText && (!t.has_text || t.answer.whole_turn)) {
      continue;
    }
    const bool valid_span = span.begin < span.end && span.end <= t.user_text.size();
    bool taken = false;
    for (const SlotCandidate& c : t.candidates) {
      taken = taken || c.slot == span.slot ||
              (valid_span && c.begin < span.end && span.begin < c.end);
    }
    if (taken) continue;  // The typed extractors' values win.
    // The slot's own extractor checks and canonicalizes the span: an enum synonym becomes
    // its value, a number is parsed, a regex value is normalized.
    const absl::string_view span_text =
        valid_span ? absl::string_view(t.user_text).substr(span.begin, span.end - span.begin)
                   : absl::string_view(span.value);
    ExtractOptions one;
    one.requested = {slot->name};
    one.relevant = [](const domain::Slot&) { return false; };
    one.allow_free_text = true;
    for (SlotCandidate& c : extractor_.Extract(span_text, one)) {
      if (c.slot != slot->name) continue;
      if (span.confidence > 0) c.confidence = std::min(span.confidence, 1.0f);
      if (valid_span) {
        c.begin += span.begin;
        c.end += span.begin;
      } else {
        c.begin = c.end = 0;
      }
      t.candidates.push_back(std::move(c));
      break;
    }
  }
}

absl::Status Tracker::AnalyzeDialogue(Turn& t) const {
  if (options_.dialogue_model == nullptr || !t.has_text) return absl::OkStatus();
  const DialogueState* prior = &t.prior;
  DialogueState with_reply;
  if (!t.input.last_reply.empty()) {
    with_reply = t.prior;
    with_reply.mutable_context()->set_system_utterance(t.input.last_reply);
    prior = &with_reply;
  }
  absl::StatusOr<DialogueAnalysis> analysis = options_.dialogue_model->Analyze(*prior, t.user_text);
  if (!analysis.ok()) return analysis.status();
  t.learned = *std::move(analysis);
  t.has_learned = true;
  return absl::OkStatus();
}

void Tracker::TakeLearnedIntent(Turn& t) const {
  // The rules (or the utterance model) decide when the text names an intent; the learned
  // tracker, which reads the turn in its context ("yes" to "shall I schedule the
  // delivery?"), names one when they do not.
  const bool over_tfidf = options_.learned_intent_first && options_.model == nullptr;
  if (!t.has_learned || (t.confident && !over_tfidf) || t.learned.intent.empty()) return;
  if (t.learned.intent == t.prior.active_intent()) return;
  if (domain_->FindIntent(t.learned.intent) == nullptr) return;
  t.result.best = {t.learned.intent, kLearnedIntentConfidence};
  t.confident = true;
  t.out_of_scope = false;
}

namespace {

// The first occurrence of `value` in `text` ignoring ASCII case, as a byte span; false when
// it does not occur (a categorical or offered value the customer did not type).
bool LocateValue(absl::string_view lowered, absl::string_view value, size_t* begin, size_t* end) {
  const std::string v = text::AsciiLower(std::string(value));
  if (v.empty()) return false;
  const size_t at = lowered.find(v);
  if (at == absl::string_view::npos) return false;
  *begin = at;
  *end = at + v.size();
  return true;
}

}  // namespace

void Tracker::MergeLearnedSlots(Turn& t) const {
  for (const DialogueAnalysis::Value& learned : t.learned.values) {
    const domain::Slot* slot = domain_->FindSlot(learned.slot);
    if (slot == nullptr) continue;
    // The rules' value for the slot wins (unless learned_values_first and the slot is not
    // typed), and so does a removal of the slot by name.
    const bool overrides = options_.learned_values_first &&
                           (slot->type == domain::SlotType::kEnum ||
                            slot->type == domain::SlotType::kFreeText);
    bool taken = Contains(t.removed_by_name, learned.slot);
    for (const SlotCandidate& c : t.candidates) taken = taken || c.slot == learned.slot;
    if (taken && !overrides) continue;
    // The slot's own extractor checks and canonicalizes the value, as it does the
    // utterance model's spans: an enum synonym becomes its value, an invalid order number
    // is dropped. An open slot of the learned tracker's schema keeps its value as written.
    ExtractOptions options = t.options;
    std::optional<SlotCandidate> c = extractor_.ExtractSlot(*slot, learned.value, options);
    if (!c.has_value() && learned.open) c = SlotCandidate{learned.slot, learned.value, 0, 0, 0};
    if (!c.has_value()) continue;
    c->confidence = kLearnedSlotConfidence;
    // Located in the text, a value is subject to the negation rules ("not Berlin").
    if (!LocateValue(t.lowered, learned.value, &c->begin, &c->end)) c->begin = c->end = 0;
    if (taken) {
      t.candidates.erase(std::remove_if(t.candidates.begin(), t.candidates.end(),
                                        [&](const SlotCandidate& k) { return k.slot == c->slot; }),
                         t.candidates.end());
    }
    t.learned_now.emplace_back(c->slot, c->value);
    t.candidates.push_back(*std::move(c));
  }
}

void Tracker::WriteDialogueContext(Turn& t) const {
  if (options_.dialogue_model == nullptr) return;
  DialogueState& state = t.state;
  if (t.has_learned) *state.mutable_context() = std::move(t.learned.context);
  common::v1::DialogueContext& context = *state.mutable_context();
  // The acts of the reply this state asks for, which the customer's next turn answers: the
  // learned tracker reads them as it read the system acts of its training dialogues.
  context.clear_system_acts();
  context.clear_system_utterance();
  for (const std::string& name : state.requested_slots()) {
    common::v1::ContextAct* act = context.add_system_acts();
    act->set_act("REQUEST");
    act->set_slot(name);
  }
  for (const std::string& name : state.confirm_slots()) {
    auto it = state.proposed_slots().find(name);
    if (it == state.proposed_slots().end()) continue;
    common::v1::ContextAct* act = context.add_system_acts();
    act->set_act("CONFIRM");
    act->set_slot(name);
    act->add_values(it->second.value());
  }
  const domain::Intent* intent = domain_->FindIntent(state.active_intent());
  if (intent != nullptr && state.confirmation() == kPending) {
    // "Shall I cancel order AB123456?": one CONFIRM per value the reply repeats.
    for (const auto* names : {&intent->required_slots, &intent->optional_slots}) {
      for (const std::string& name : *names) {
        auto it = state.slots().find(name);
        if (it == state.slots().end() || it->second.value().empty()) continue;
        common::v1::ContextAct* act = context.add_system_acts();
        act->set_act("CONFIRM");
        act->set_slot(name);
        act->add_values(it->second.value());
      }
    }
  }
}

void Tracker::ApplyNegations(Turn& t) const {
  if (!t.may_negate) return;
  std::string rest = t.user_text;
  std::vector<SlotCandidate> kept;
  for (SlotCandidate& c : t.candidates) {
    const domain::Slot* slot = domain_->FindSlot(c.slot);
    const Negation n = c.end > c.begin ? NegationBefore(t.lowered, c.begin) : Negation{};
    if (slot != nullptr && NegatesValue(n.kind, slot->type)) {
      t.negated.emplace_back(c.slot, c.value);
      Blank(rest, n.cue_begin, c.end);
    } else {
      kept.push_back(std::move(c));
    }
  }
  if (!t.negated.empty()) {
    // "not damaged but broken", "不是微信，是支付宝": the value after the negated one.
    ExtractOptions again = t.options;
    again.allow_free_text = false;
    for (SlotCandidate& c : extractor_.Extract(rest, again)) {
      const bool known = std::any_of(kept.begin(), kept.end(),
                                     [&](const SlotCandidate& k) { return k.slot == c.slot; });
      const bool same_as_negated = std::any_of(
          t.negated.begin(), t.negated.end(),
          [&](const auto& n) { return n.first == c.slot && n.second == c.value; });
      if (!known && !same_as_negated) kept.push_back(std::move(c));
    }
  }
  t.candidates = std::move(kept);
  // "forget the phone number", "cancel the coupon": a slot named after a removal. Not a slot
  // the active intent requires ("cancel the order number" still wants the order).
  if (!t.may_remove) return;
  for (const SlotMention& m : slot_mentions_) {
    if (t.intent != nullptr && Contains(t.intent->required_slots, m.slot)) continue;
    const NegationKind kind = MentionNegation(t.lowered, m.text);
    if ((kind == NegationKind::kNo || kind == NegationKind::kRemoval) &&
        !Contains(t.removed_by_name, m.slot)) {
      t.removed_by_name.push_back(m.slot);
    }
  }
}

void Tracker::ApplyCorrectionFallback(Turn& t) const {
  if (t.correction_body < 0) return;
  // Does a value of this turn already correct a filled slot?
  bool corrects = false;
  for (const SlotCandidate& c : t.candidates) {
    const domain::Slot* slot = domain_->FindSlot(c.slot);
    corrects = corrects || (slot != nullptr && slot->type != domain::SlotType::kFreeText &&
                            HasValue(t.prior, c.slot));
  }
  if (corrects) {
    // "no, the order number is A-7654321" while we asked for the item: the free text
    // is not the item.
    t.candidates.erase(std::remove_if(t.candidates.begin(), t.candidates.end(),
                                      [&](const SlotCandidate& c) {
                                        const domain::Slot* s = domain_->FindSlot(c.slot);
                                        return s != nullptr &&
                                               s->type == domain::SlotType::kFreeText &&
                                               !HasValue(t.prior, c.slot);
                                      }),
                       t.candidates.end());
    return;
  }
  // A correction that names a new request ("actually, I want to cancel") is not about a value.
  if (t.confident && t.result.best.intent != t.prior.active_intent()) return;
  // Otherwise the corrected slot is one set before, the most recent that the corrected
  // content fits, as if we had just asked for it: "no, it's 59.99" (an amount), "no, the red
  // ones" (an item). Free text fits anything, so it comes last.
  std::vector<std::pair<uint32_t, const std::string*>> filled;
  for (const auto& [name, value] : t.prior.slots()) {
    if (!value.value().empty() && domain_->FindSlot(name) != nullptr) {
      filled.emplace_back(value.turn(), &name);
    }
  }
  if (filled.empty()) return;
  std::sort(filled.begin(), filled.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : *a.second < *b.second;
  });
  ExtractOptions recent;
  for (const auto& [turn, name] : filled) recent.requested.push_back(*name);
  recent.relevant = [](const domain::Slot&) { return false; };
  recent.allow_free_text = true;
  const size_t body = static_cast<size_t>(t.correction_body);
  const std::vector<SlotCandidate> found =
      extractor_.Extract(absl::string_view(t.user_text).substr(body), recent);
  const SlotCandidate* pick = nullptr;
  for (const bool free_text : {false, true}) {
    for (const std::string& name : recent.requested) {
      for (const SlotCandidate& c : found) {
        const bool is_free = domain_->FindSlot(c.slot)->type == domain::SlotType::kFreeText;
        if (pick == nullptr && c.slot == name && is_free == free_text) pick = &c;
      }
    }
  }
  if (pick == nullptr) return;
  SlotCandidate c = *pick;
  c.begin += body;
  c.end += body;
  t.candidates.erase(std::remove_if(t.candidates.begin(), t.candidates.end(),
                                    [&](const SlotCandidate& k) {
                                      return k.slot == c.slot ||
                                             domain_->FindSlot(k.slot)->type ==
                                                 domain::SlotType::kFreeText;
                                    }),
                     t.candidates.end());
  t.candidates.push_back(std::move(c));
}

void Tracker::ApplyTypedSlots(Turn& t) const {
  auto& slots = *t.state.mutable_slots();
  auto& proposed = *t.state.mutable_proposed_slots();
  auto remove = [&](const std::string& name) {
    const bool had = slots.erase(name) > 0;
    proposed.erase(name);
    if (had && !Contains(t.result.removed_slots, name)) t.result.removed_slots.push_back(name);
  };
  for (const auto& [name, value] : t.negated) {
    auto it = slots.find(name);
    if (it != slots.end() && it->second.value() == value) remove(name);
    auto p = proposed.find(name);
    if (p != proposed.end() && p->second.value() == value) proposed.erase(p);
  }
  for (const std::string& name : t.removed_by_name) remove(name);
  for (const SlotCandidate& c : t.candidates) {
    SlotValue& v = slots[c.slot];
    v.set_value(c.value);
    v.set_confidence(c.confidence);
    const bool learned = std::find(t.learned_now.begin(), t.learned_now.end(),
                                   std::make_pair(c.slot, c.value)) != t.learned_now.end();
    v.set_source(learned ? common::v1::SLOT_SOURCE_DIALOGUE_MODEL
                         : common::v1::SLOT_SOURCE_CUSTOMER_TEXT);
    v.set_turn(t.index);
    t.typed_now.push_back(c.slot);
  }
}

void Tracker::ResolveSlotConfirmation(Turn& t) const {
  DialogueState& state = t.state;
  state.clear_confirm_slots();
  if (t.prior.confirm_slots().empty()) return;
  const std::string& name = t.prior.confirm_slots(0);
  auto& proposed = *state.mutable_proposed_slots();
  auto it = proposed.find(name);
  if (it == proposed.end()) return;
  if (Contains(t.typed_now, name)) {
    proposed.erase(it);  // The customer typed the value themselves.
    return;
  }
  if (t.answer.answer == Answer::kAffirm) {
    // "Is your order number AB123456?" "Yes": the attachment's value replaces the typed one.
    SlotValue value = std::move(it->second);
    value.set_source(common::v1::SLOT_SOURCE_ATTACHMENT_CONFIRMED);
    value.set_confidence(std::max(value.confidence(), kConfirmedConfidence));
    value.set_turn(t.index);
    (*state.mutable_slots())[name] = std::move(value);
    t.typed_now.push_back(name);
    t.answer_used = true;
  } else if (t.answer.answer == Answer::kDeny) {
    t.answer_used = true;
  }
  // Confirmed, refused, or passed over: the question is not asked again.
  proposed.erase(name);
}

void Tracker::MergeEvidence(Turn& t) const {
  if (t.input.evidence.empty()) return;
  ExtractOptions options = t.options;
  options.allow_free_text = false;
  auto& slots = *t.state.mutable_slots();
  std::vector<std::string> seen;
  for (const auto& evidence : t.input.evidence) {
    if (evidence.text().empty()) continue;
    const float evidence_confidence =
        std::min(evidence.confidence() > 0 ? evidence.confidence() : 0.5f, 1.0f);
    for (const SlotCandidate& c : extractor_.Extract(evidence.text(), options)) {
      // What the customer typed or took back in this turn stands; the first attachment that
      // has a slot wins within a turn.
      if (Contains(t.typed_now, c.slot) || Contains(seen, c.slot) ||
          Contains(t.result.removed_slots, c.slot)) {
        continue;
      }
      seen.push_back(c.slot);
      SlotValue value;
      value.set_value(c.value);
      value.set_confidence(c.confidence * evidence_confidence);
      value.set_source(common::v1::SLOT_SOURCE_ATTACHMENT);
      value.set_turn(t.index);
      auto it = slots.find(c.slot);
      const bool typed = it != slots.end() && !it->second.value().empty() &&
                         it->second.source() != common::v1::SLOT_SOURCE_ATTACHMENT;
      if (typed) {
        // Never over what the customer typed: propose it, the reply asks.
        if (it->second.value() != c.value) {
          (*t.state.mutable_proposed_slots())[c.slot] = std::move(value);
        }
        continue;
      }
      slots[c.slot] = std::move(value);
      t.evidence_changed = true;
    }
  }
}

void Tracker::UpdateEscalation(Turn& t) const {
  DialogueState& state = t.state;
  const bool asks_for_human = t.has_text && AsksForHumanPrepared(t.prepared);
  // Frustration and the streak escalate on a turn that adds to them, so that a conversation
  // a human handed back (escalate cleared, counters kept) is not handed over again at once.
  uint32_t signals = 0;
  bool not_understood = false;
  if (t.has_text) {
    const bool understood = t.confident || t.answer.answer != Answer::kNone ||
                            t.answer.whole_turn || t.answers_request || !t.typed_now.empty() ||
                            !t.result.removed_slots.empty() || t.evidence_changed ||
                            asks_for_human;
    not_understood = !understood;
    state.set_low_confidence_streak(understood ? 0 : t.prior.low_confidence_streak() + 1);

    if (HasNegativeWording(t.lowered)) ++signals;
    if (IsAllCaps(t.user_text)) ++signals;
    const uint64_t fingerprint =
        t.answer.answer == Answer::kNone ? RequestFingerprint(t.lowered) : 0;
    if (fingerprint != 0) {
      auto* recent = state.mutable_recent_request_fingerprints();
      if (std::find(recent->begin(), recent->end(), fingerprint) != recent->end()) ++signals;
      recent->Add(fingerprint);
      while (recent->size() > kRecentRequests) recent->erase(recent->begin());
    }
    state.set_frustration_signals(t.prior.frustration_signals() + signals);
  }
  // Sticky once set; the first reason that applies, in this order.
  if (state.escalate()) return;
  const char* reason = nullptr;
  if (asks_for_human) {
    reason = "customer_request";
  } else if (t.intent != nullptr && t.intent->escalate) {
    reason = "intent_policy";
  } else if (signals > 0 && state.frustration_signals() >= options_.frustration_threshold) {
    reason = "frustration";
  } else if (not_understood &&
             state.low_confidence_streak() >= options_.max_low_confidence_turns) {
    reason = "out_of_scope_streak";
  }
  if (reason != nullptr) {
    state.set_escalate(true);
    state.set_escalation_reason(reason);
  }
}

void Tracker::FinishState(Turn& t) const {
  DialogueState& state = t.state;
  const domain::Intent* intent = t.intent;
  state.clear_missing_slots();
  state.clear_requested_slots();
  if (intent != nullptr) {
    for (const std::string& name : intent->required_slots) {
      if (!HasValue(state, name)) state.add_missing_slots(name);
    }
  }
  const bool complete = intent != nullptr && state.missing_slots_size() == 0;

  // Transactional intents are confirmed with their final values before they are ready.
  common::v1::ConfirmationStatus confirmation = kUnconfirmed;
  if (complete && intent->transactional) {
    const bool same_intent = !t.switched && t.prior.active_intent() == state.active_intent();
    const common::v1::ConfirmationStatus before =
        same_intent ? t.prior.confirmation() : kUnconfirmed;
    bool changed = false;
    for (const std::string& name : intent->required_slots) {
      auto now = state.slots().find(name);
      auto then = t.prior.slots().find(name);
      changed = changed || then == t.prior.slots().end() ||
                then->second.value() != now->second.value();
    }
    for (const std::string& name : intent->optional_slots) {
      changed = changed || HasValue(state, name) != HasValue(t.prior, name) ||
                (HasValue(state, name) &&
                 state.slots().at(name).value() != t.prior.slots().at(name).value());
    }
    const Answer answer = t.answer_used ? Answer::kNone : t.answer.answer;
    const bool asked = before == kPending || before == kDeclined;
    if (changed) {
      confirmation = kPending;
    } else if (answer == Answer::kAffirm && asked) {
      confirmation = kConfirmed;
    } else if (answer == Answer::kDeny && before == kPending) {
      confirmation = kDeclined;
    } else {
      confirmation = before == kUnconfirmed ? kPending : before;
    }
  }
  state.set_confirmation(confirmation);
  state.set_ready(complete && (!intent->transactional || confirmation == kConfirmed));

  // One question per reply: confirm an attachment's value, else ask for a missing slot.
  if (!state.escalate()) {
    for (const domain::Slot& slot : domain_->slots) {
      if (state.proposed_slots().contains(slot.name)) {
        state.add_confirm_slots(slot.name);
        break;
      }
    }
    if (state.confirm_slots_size() == 0 && state.missing_slots_size() > 0) {
      state.add_requested_slots(state.missing_slots(0));
    }
  }
  state.set_turn_count(t.index + 1);
}

}  // namespace helpline::dst
