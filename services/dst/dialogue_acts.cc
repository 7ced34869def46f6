#include "services/dst/dialogue_acts.h"

#include <algorithm>
#include <array>
#include <bitset>
#include <initializer_list>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "common/domain/text.h"

namespace helpline::dst {
namespace {

namespace text = domain::text;

bool IsWordByte(char c) { return absl::ascii_isalnum(c) || c == '\''; }

// ASCII punctuation that ends a clause.
bool IsClauseBreak(char c) {
  return c == ',' || c == '.' || c == ';' || c == ':' || c == '!' || c == '?' || c == '(' ||
         c == ')' || c == '\n';
}

// Chinese and full-width punctuation (the code points of "，。！？；：、（）").
bool IsCjkPunctuation(char32_t cp) {
  return (cp >= 0x3000 && cp <= 0x303F) || (cp >= 0xFF00 && cp <= 0xFF0F) ||
         (cp >= 0xFF1A && cp <= 0xFF20);
}

bool StartsWithAt(absl::string_view s, size_t pos, absl::string_view prefix) {
  return pos <= s.size() && absl::StartsWith(s.substr(pos), prefix);
}

size_t SkipSpaces(absl::string_view s, size_t pos) {
  while (pos < s.size() && absl::ascii_isspace(static_cast<unsigned char>(s[pos]))) ++pos;
  return pos;
}

// Skips spaces and punctuation (ASCII and CJK) from `pos`.
size_t SkipSeparators(absl::string_view s, size_t pos) {
  while (pos < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[pos]);
    if (c < 0x80) {
      if (!absl::ascii_isspace(c) && !absl::ascii_ispunct(c)) break;
      ++pos;
      continue;
    }
    size_t next = pos;
    const char32_t cp = text::NextCodePoint(s, &next);
    if (!IsCjkPunctuation(cp) && !text::IsSpace(cp)) break;
    pos = next;
  }
  return pos;
}

// Strips punctuation and spaces at both ends ("  ok!! " -> "ok", "好的。" -> "好的").
absl::string_view TrimSeparators(absl::string_view s) {
  s = s.substr(SkipSeparators(s, 0));
  while (!s.empty()) {
    const unsigned char c = static_cast<unsigned char>(s.back());
    if (c < 0x80) {
      if (!absl::ascii_isspace(c) && !absl::ascii_ispunct(c)) break;
      s.remove_suffix(1);
      continue;
    }
    // The last code point starts at the last byte that is not a continuation byte.
    size_t start = s.size() - 1;
    while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
    size_t pos = start;
    const char32_t cp = text::NextCodePoint(s, &pos);
    if (!IsCjkPunctuation(cp) && !text::IsSpace(cp)) break;
    s.remove_suffix(s.size() - start);
  }
  return s;
}

// Whether `s` has `phrase` at `pos` followed by the end, a space or punctuation (for ASCII
// phrases) or anything (for CJK phrases of two or more characters).
bool PhraseAt(absl::string_view s, size_t pos, absl::string_view phrase, bool cjk_prefix_ok) {
  if (!StartsWithAt(s, pos, phrase)) return false;
  const size_t end = pos + phrase.size();
  if (end == s.size()) return true;
  if (cjk_prefix_ok) return true;
  const unsigned char c = static_cast<unsigned char>(s[end]);
  if (c < 0x80) return !absl::ascii_isalnum(c) && c != '\'';
  size_t next = end;
  const char32_t cp = text::NextCodePoint(s, &next);
  return IsCjkPunctuation(cp) || text::IsSpace(cp);
}

// A set of ASCII words with a cheap pre-filter: most words of a turn ("where", "my") are
// ruled out by their first letter, last letter and length before any hashing.
class WordSet {
 public:
  WordSet(std::initializer_list<absl::string_view> words) : words_(words) {
    for (absl::string_view w : words) keys_.set(Key(w));
  }
  bool Contains(absl::string_view word) const {
    return !word.empty() && keys_.test(Key(word)) && words_.contains(word);
  }

 private:
  static size_t Key(absl::string_view w) {
    return (static_cast<unsigned char>(w.front()) % 32) * 32 * 16 +
           (static_cast<unsigned char>(w.back()) % 32) * 16 + std::min<size_t>(w.size(), 15);
  }
  absl::flat_hash_set<absl::string_view> words_;
  std::bitset<32 * 32 * 16> keys_;
};

// Chinese phrases looked up by their first character: a turn is scanned once, and a phrase
// is compared only where its first character occurs.
class CjkPhrases {
 public:
  CjkPhrases(std::initializer_list<absl::string_view> phrases) : phrases_(phrases) {
    for (absl::string_view p : phrases_) firsts_.set(First(p, 0));
  }
  bool FoundIn(absl::string_view s) const {
    for (size_t pos = 0; pos + 3 <= s.size(); ++pos) {
      if (static_cast<unsigned char>(s[pos]) < 0xE0 || !firsts_.test(First(s, pos))) continue;
      for (absl::string_view p : phrases_) {
        if (StartsWithAt(s, pos, p)) return true;
      }
    }
    return false;
  }

 private:
  // The low 16 bits of a three-byte sequence: enough to tell the few first characters apart.
  static size_t First(absl::string_view s, size_t pos) {
    return (static_cast<unsigned char>(s[pos + 1]) << 8 | static_cast<unsigned char>(s[pos + 2])) &
           0xFFFF;
  }
  std::vector<absl::string_view> phrases_;
  std::bitset<65536> firsts_;
};

struct Cue {
  absl::string_view text;
  Answer answer;
};

// Answers that may start a longer turn. Longest first where one is a prefix of another.
constexpr std::array<Cue, 67> kAnswerCues = {{
    {"no problem", Answer::kAffirm},  {"no worries", Answer::kAffirm},
    {"no doubt", Answer::kAffirm},
    {"ok thanks", Answer::kAffirm},   {"ok thank you", Answer::kAffirm},
    {"是啊", Answer::kAffirm},        {"对啊", Answer::kAffirm},
    {"好啊", Answer::kAffirm},        {"行啊", Answer::kAffirm},
    {"可以的", Answer::kAffirm},      {"好滴", Answer::kAffirm},
    {"yes please", Answer::kAffirm},  {"yes", Answer::kAffirm},
    {"yeah", Answer::kAffirm},        {"yep", Answer::kAffirm},
    {"yup", Answer::kAffirm},         {"ya", Answer::kAffirm},
    {"sure", Answer::kAffirm},        {"okay", Answer::kAffirm},
    {"ok", Answer::kAffirm},          {"k", Answer::kAffirm},
    {"alright", Answer::kAffirm},     {"all right", Answer::kAffirm},
    {"correct", Answer::kAffirm},     {"right", Answer::kAffirm},
    {"exactly", Answer::kAffirm},     {"indeed", Answer::kAffirm},
    {"absolutely", Answer::kAffirm},  {"of course", Answer::kAffirm},
    {"i confirm", Answer::kAffirm},   {"confirmed", Answer::kAffirm},
    {"confirm", Answer::kAffirm},     {"that's right", Answer::kAffirm},
    {"thats right", Answer::kAffirm}, {"that's correct", Answer::kAffirm},
    {"go ahead", Answer::kAffirm},    {"please do", Answer::kAffirm},
    {"do it", Answer::kAffirm},       {"sounds good", Answer::kAffirm},
    {"fine", Answer::kAffirm},        {"no thanks", Answer::kDeny},
    {"no thank you", Answer::kDeny},  {"nope", Answer::kDeny},
    {"nah", Answer::kDeny},           {"no", Answer::kDeny},
    {"not really", Answer::kDeny},    {"that's wrong", Answer::kDeny},
    {"wrong", Answer::kDeny},         {"incorrect", Answer::kDeny},
    {"确认", Answer::kAffirm},        {"确定", Answer::kAffirm},
    {"好的", Answer::kAffirm},        {"是的", Answer::kAffirm},
    {"对的", Answer::kAffirm},        {"没错", Answer::kAffirm},
    {"可以", Answer::kAffirm},        {"没问题", Answer::kAffirm},
    {"同意", Answer::kAffirm},        {"好吧", Answer::kAffirm},
    {"嗯嗯", Answer::kAffirm},        {"不是", Answer::kDeny},
    {"不对", Answer::kDeny},          {"不要", Answer::kDeny},
    {"不用", Answer::kDeny},          {"不行", Answer::kDeny},
    {"错了", Answer::kDeny},          {"算了", Answer::kDeny},
}};

// One-character Chinese answers: only alone or before punctuation ("好，取消吧").
constexpr std::array<Cue, 7> kShortCjkAnswers = {{
    {"好", Answer::kAffirm},
    {"是", Answer::kAffirm},
    {"对", Answer::kAffirm},
    {"行", Answer::kAffirm},
    {"嗯", Answer::kAffirm},
    {"不", Answer::kDeny},
    {"否", Answer::kDeny},
}};

// The answer cues whose first byte is `first`, in kAnswerCues order (a turn is compared
// with a few cues, not all of them).
const std::vector<const Cue*>& AnswerCuesStartingWith(char first) {
  static const auto* index = [] {
    auto* by_byte = new std::array<std::vector<const Cue*>, 256>();
    for (const Cue& c : kAnswerCues) (*by_byte)[static_cast<unsigned char>(c.text[0])].push_back(&c);
    return by_byte;
  }();
  return (*index)[static_cast<unsigned char>(first)];
}

// Whole turns that acknowledge without answering yes or no; they name no intent either.
bool IsAcknowledgement(absl::string_view trimmed) {
  static const auto* kPhrases = new absl::flat_hash_set<absl::string_view>{
      "got it", "understood", "i see", "noted", "明白", "知道了", "收到", "了解", "好的谢谢"};
  return kPhrases->contains(trimmed);
}

// ASCII words of `s` in [0, end), the last `max` of them.
// The ASCII words of `s` that end before `end`, nearest first, at most kMaxWords of them;
// punctuation or a non-ASCII character ends the clause and the list.
constexpr size_t kMaxWords = 3;
size_t WordsBefore(absl::string_view s, size_t end, std::array<absl::string_view, kMaxWords>& out) {
  size_t n = 0;
  size_t pos = end;
  while (pos > 0 && n < kMaxWords) {
    const char c = s[pos - 1];
    if (IsWordByte(c)) {
      size_t b = pos;
      while (b > 0 && IsWordByte(s[b - 1])) --b;
      out[n++] = s.substr(b, pos - b);
      pos = b;
    } else if (c == ' ' || c == '\t' || c == '-') {
      --pos;
    } else {
      break;
    }
  }
  return n;
}

// English negations of a value ("not damaged").
const WordSet& NotWords() {
  static const auto* kWords =
      new WordSet{"not",   "isn't", "isnt",  "wasn't",  "wasnt",  "aren't", "arent", "weren't",
                  "werent", "never", "don't", "dont",   "doesn't", "doesnt", "didn't", "didnt"};
  return *kWords;
}

// English verbs and prepositions that take a value or slot back ("cancel the coupon").
const WordSet& RemovalWords() {
  static const auto* kWords =
      new WordSet{"cancel", "remove", "drop", "delete", "forget", "without", "skip"};
  return *kWords;
}

// Words that end a negation's reach: the next clause says what is true.
const WordSet& ScopeEnds() {
  static const auto* kWords =
      new WordSet{"but", "it's", "its",     "is",     "was",    "are",
                  "and", "instead", "rather", "actually", "that's", "thats"};
  return *kWords;
}

Negation EnglishNegationBefore(absl::string_view s, size_t begin) {
  // Up to two words between the cue and the value, so look at three words back.
  std::array<absl::string_view, kMaxWords> words;
  const size_t n = WordsBefore(s, begin, words);
  for (size_t i = 0; i < n; ++i) {
    const absl::string_view w = words[i];
    const size_t at = static_cast<size_t>(w.data() - s.data());
    if (i == 0 && w == "no") return {NegationKind::kNo, at};
    if (RemovalWords().Contains(w)) return {NegationKind::kRemoval, at};
    if (NotWords().Contains(w)) {
      // "don't want", "do not need": the customer takes it back.
      const bool wants = i > 0 && (words[i - 1] == "want" || words[i - 1] == "need");
      return {wants ? NegationKind::kRemoval : NegationKind::kNot, at};
    }
    if (ScopeEnds().Contains(w)) break;
  }
  return {};
}

struct CjkCue {
  absl::string_view text;
  NegationKind kind;
};

// Longest first where one ends another ("不需要" before "需要" would matter; none do now).
constexpr std::array<CjkCue, 13> kCjkNegations = {{
    {"不需要", NegationKind::kRemoval},
    {"不要", NegationKind::kRemoval},
    {"不用", NegationKind::kRemoval},
    {"无需", NegationKind::kRemoval},
    {"取消", NegationKind::kRemoval},
    {"去掉", NegationKind::kRemoval},
    {"删除", NegationKind::kRemoval},
    {"删掉", NegationKind::kRemoval},
    {"别", NegationKind::kRemoval},
    {"不是", NegationKind::kNot},
    {"并非", NegationKind::kNot},
    {"没有", NegationKind::kNot},
    {"并不", NegationKind::kNot},
}};

Negation ChineseNegationBefore(absl::string_view s, size_t begin) {
  // Walk back over at most two characters of gap; at each point look for a cue ending there.
  size_t end = begin;
  for (int gap = 0; gap <= 2; ++gap) {
    for (const CjkCue& cue : kCjkNegations) {
      if (end >= cue.text.size() && s.substr(end - cue.text.size(), cue.text.size()) == cue.text) {
        return {cue.kind, end - cue.text.size()};
      }
    }
    if (end == 0) break;
    // Step back one code point, unless it is punctuation.
    size_t start = end - 1;
    while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
    size_t pos = start;
    const char32_t cp = text::NextCodePoint(s, &pos);
    if (cp < 0x80 ? IsClauseBreak(static_cast<char>(cp)) : IsCjkPunctuation(cp)) break;
    end = start;
  }
  return {};
}

}  // namespace

AnswerCue ReadAnswer(absl::string_view lowered) {
  const absl::string_view trimmed = TrimSeparators(lowered);
  AnswerCue cue;
  if (trimmed.empty()) return cue;
  // A question ("可以取消吗？", "ok so where is it?") asks; it does not answer.
  const absl::string_view stripped = absl::StripTrailingAsciiWhitespace(lowered);
  if (absl::EndsWith(stripped, "?") || absl::EndsWith(stripped, "？") ||
      absl::EndsWith(trimmed, "吗")) {
    return cue;
  }
  if (IsAcknowledgement(trimmed)) {
    cue.whole_turn = true;
    return cue;
  }
  for (const Cue* candidate : AnswerCuesStartingWith(trimmed[0])) {
    const Cue& c = *candidate;
    const bool cjk = static_cast<unsigned char>(c.text[0]) >= 0x80;
    if (PhraseAt(trimmed, 0, c.text, cjk)) {
      cue.answer = c.answer;
      cue.whole_turn = TrimSeparators(trimmed.substr(c.text.size())).empty();
      return cue;
    }
  }
  for (const Cue& c : kShortCjkAnswers) {
    if (PhraseAt(trimmed, 0, c.text, false)) {
      cue.answer = c.answer;
      cue.whole_turn = TrimSeparators(trimmed.substr(c.text.size())).empty();
      return cue;
    }
  }
  return cue;
}

int CorrectionBody(absl::string_view lowered) {
  static constexpr std::array<absl::string_view, 14> kEnglish = {
      "no", "nope", "actually", "sorry", "i mean", "i meant", "correction", "wait", "oops",
      "my mistake", "my bad", "scratch that", "wrong", "not that"};
  static constexpr std::array<absl::string_view, 11> kChinese = {
      "说错了", "搞错了", "写错了", "我是说", "应该是", "不是", "不对", "错了", "更正", "其实",
      "抱歉"};
  const size_t start = SkipSeparators(lowered, 0);
  if (start >= lowered.size()) return -1;
  // Most turns start with a byte no cue starts with: one look rules them out.
  static const std::bitset<256> kFirstBytes = [] {
    std::bitset<256> bytes;
    for (absl::string_view cue : kEnglish) bytes.set(static_cast<unsigned char>(cue[0]));
    for (absl::string_view cue : kChinese) bytes.set(static_cast<unsigned char>(cue[0]));
    return bytes;
  }();
  if (!kFirstBytes.test(static_cast<unsigned char>(lowered[start]))) return -1;
  for (absl::string_view agreement : {"no problem", "no worries", "no doubt"}) {
    if (PhraseAt(lowered, start, agreement, false)) return -1;
  }
  size_t body = absl::string_view::npos;
  for (absl::string_view cue : kEnglish) {
    if (PhraseAt(lowered, start, cue, false)) {
      body = start + cue.size();
      break;
    }
  }
  if (body == absl::string_view::npos) {
    for (absl::string_view cue : kChinese) {
      if (StartsWithAt(lowered, start, cue)) {
        body = start + cue.size();
        break;
      }
    }
  }
  if (body == absl::string_view::npos) return -1;
  body = SkipSeparators(lowered, body);
  if (body >= lowered.size()) return -1;  // A bare "no" answers; it corrects nothing.
  for (absl::string_view lead : {"it's ", "it is ", "its ", "it was ", "that's ", "thats ",
                                 "it should be ", "should be ", "应该是", "是"}) {
    if (StartsWithAt(lowered, body, lead)) {
      body = SkipSpaces(lowered, body + lead.size());
      break;
    }
  }
  if (body >= lowered.size()) return -1;
  return static_cast<int>(body);
}

Negation NegationBefore(absl::string_view lowered, size_t begin) {
  if (begin == 0 || begin > lowered.size()) return {};
  Negation n = EnglishNegationBefore(lowered, begin);
  if (n.kind != NegationKind::kNone) return n;
  return ChineseNegationBefore(lowered, begin);
}

NegationCues FindNegationCues(absl::string_view lowered) {
  static const auto* kRemovalWords =
      new WordSet{"no", "cancel", "remove", "drop", "delete", "forget", "without", "skip"};
  static const auto* kChineseRemovals = new CjkPhrases{"不需要", "不要", "不用", "无需", "取消",
                                                       "去掉", "删除", "删掉", "别"};
  static const auto* kChineseNots = new CjkPhrases{"不是", "并非", "没有", "并不"};
  NegationCues cues;
  bool non_ascii = false;
  bool after_not = false;  // The previous word was a "not" word ("don't want").
  size_t pos = 0;
  while (pos < lowered.size()) {
    const unsigned char c = static_cast<unsigned char>(lowered[pos]);
    if (!IsWordByte(static_cast<char>(c))) {
      non_ascii = non_ascii || c >= 0x80;
      after_not = after_not && c == ' ';
      ++pos;
      continue;
    }
    size_t end = pos;
    while (end < lowered.size() && IsWordByte(lowered[end])) ++end;
    const absl::string_view word = lowered.substr(pos, end - pos);
    if (kRemovalWords->Contains(word) || (after_not && (word == "want" || word == "need"))) {
      cues.any = cues.removal = true;
      return cues;
    }
    after_not = NotWords().Contains(word);
    cues.any = cues.any || after_not;
    pos = end;
  }
  if (non_ascii && kChineseRemovals->FoundIn(lowered)) {
    cues.any = cues.removal = true;
  } else if (non_ascii && kChineseNots->FoundIn(lowered)) {
    cues.any = true;
  }
  return cues;
}

namespace {

// The first ASCII words of `s` (at most out.size()), stopping at the first character that is
// neither an ASCII word byte, a space nor ASCII punctuation (Chinese text ends the list).
size_t LeadingWords(absl::string_view s, std::array<absl::string_view, 4>& out) {
  size_t n = 0;
  size_t pos = 0;
  while (pos < s.size() && n < out.size()) {
    const unsigned char c = static_cast<unsigned char>(s[pos]);
    if (c >= 0x80) break;
    if (!IsWordByte(static_cast<char>(c))) {
      ++pos;
      continue;
    }
    const size_t begin = pos;
    while (pos < s.size() && IsWordByte(s[pos])) ++pos;
    out[n++] = s.substr(begin, pos - begin);
  }
  return n;
}

bool EnglishQuestion(absl::string_view lowered) {
  static const auto* kFillers =
      new WordSet{"so", "and", "but", "also", "hi", "hello", "hey", "um", "uh",
                  "well", "oh", "ok", "okay", "sorry", "please", "then"};
  static const auto* kQuestionWords = new WordSet{
      "what",   "what's", "whats",  "where", "where's", "wheres", "when", "when's",
      "why",    "why's",  "how",    "how's", "hows",    "who",    "who's", "whom", "whose"};
  static const auto* kAuxiliaries = new WordSet{
      "can",     "could",  "do",      "does",     "did",   "is",     "are",   "was",
      "were",    "will",   "would",   "should",   "shall", "may",    "might", "have",
      "has",     "am",     "isn't",   "aren't",   "don't", "doesn't", "didn't", "can't",
      "won't",   "wouldn't", "couldn't", "shouldn't"};
  static const auto* kSubjects = new WordSet{
      "i",     "you",   "u",    "we",    "they", "he",     "she",    "it",  "there", "this",
      "that",  "these", "those", "my",   "your", "our",    "the",    "a",   "an",    "any",
      "someone", "anyone", "somebody", "anybody", "me"};
  std::array<absl::string_view, 4> words;
  const size_t n = LeadingWords(lowered, words);
  size_t i = 0;
  while (i + 1 < n && kFillers->Contains(words[i])) ++i;
  if (i >= n) return false;
  if (kQuestionWords->Contains(words[i])) return true;
  return i + 1 < n && kAuxiliaries->Contains(words[i]) && kSubjects->Contains(words[i + 1]);
}

bool ChineseQuestion(absl::string_view lowered) {
  const absl::string_view trimmed = TrimSeparators(lowered);
  for (absl::string_view particle : {"吗", "呢", "么", "嘛"}) {
    if (absl::EndsWith(trimmed, particle)) return true;
  }
  for (absl::string_view word : {"什么", "怎么", "为什么", "为何", "哪里", "哪儿", "哪个", "哪些",
                                 "哪种", "多少", "多久", "如何", "能不能", "可不可以", "是不是",
                                 "有没有", "会不会", "是否"}) {
    if (absl::StrContains(lowered, word)) return true;
  }
  return false;
}

}  // namespace

bool IsQuestion(absl::string_view lowered) {
  if (absl::StrContains(lowered, "?") || absl::StrContains(lowered, "？")) return true;
  return EnglishQuestion(lowered) || (text::ContainsCjk(lowered) && ChineseQuestion(lowered));
}

size_t TurnWords(absl::string_view lowered) {
  size_t words = 0;
  size_t cjk = 0;
  size_t pos = 0;
  while (pos < lowered.size()) {
    const unsigned char c = static_cast<unsigned char>(lowered[pos]);
    if (c < 0x80) {
      if (absl::ascii_isalnum(c)) {
        ++words;
        while (pos < lowered.size() && IsWordByte(lowered[pos])) ++pos;
      } else {
        ++pos;
      }
      continue;
    }
    if (text::IsCjk(text::NextCodePoint(lowered, &pos))) ++cjk;
  }
  return words + (cjk + 1) / 2;
}

bool AsksToResume(absl::string_view lowered) {
  for (absl::string_view p : {"back to my", "back to the", "go back to", "get back to",
                              "as i was saying", "where were we", "continue with"}) {
    if (absl::StrContains(lowered, p)) return true;
  }
  for (absl::string_view p : {"回到", "继续刚才", "接着刚才", "刚才那个", "之前那个", "刚才的问题",
                              "之前的问题"}) {
    if (absl::StrContains(lowered, p)) return true;
  }
  return false;
}

bool HasNegativeWording(absl::string_view lowered) {
  static const auto* kWords = new WordSet{
      "ridiculous", "useless",     "terrible",     "awful",       "horrible",   "worst",
      "stupid",     "pathetic",    "unacceptable", "furious",     "angry",      "annoyed",
      "annoying",   "frustrated",  "frustrating",  "wtf",         "damn",       "rubbish",
      "garbage",    "incompetent", "disgusting",   "disgraceful", "outrageous", "hopeless",
      "scam",       "joke",        "idiot",        "idiots",      "nonsense",   "shit",
      "crap",       "hate"};
  // Phrases, looked at only where one of their first words starts.
  static constexpr std::array<absl::string_view, 11> kPhrases = {
      "fed up",        "sick of",         "waste of time",        "not helpful",
      "not good enough", "no help",       "what the hell",        "for god's sake",
      "are you kidding", "again and again", "you don't understand"};
  static const auto* kHeads =
      new WordSet{"fed", "sick", "waste", "not", "no", "what", "for", "are", "again", "you"};
  static const auto* kChinese = new CjkPhrases{
      "垃圾", "太差", "气死", "烦死", "无语", "什么破", "废物", "坑人", "骗子", "受不了",
      "太过分", "没用的", "差评", "搞什么"};
  bool non_ascii = false;
  size_t pos = 0;
  while (pos < lowered.size()) {
    const unsigned char c = static_cast<unsigned char>(lowered[pos]);
    if (!absl::ascii_isalpha(c)) {
      non_ascii = non_ascii || c >= 0x80;
      ++pos;
      continue;
    }
    size_t end = pos;
    while (end < lowered.size() && IsWordByte(lowered[end])) ++end;
    const absl::string_view word = lowered.substr(pos, end - pos);
    if (kWords->Contains(word)) return true;
    if (kHeads->Contains(word)) {
      for (absl::string_view phrase : kPhrases) {
        if (PhraseAt(lowered, pos, phrase, false)) return true;
      }
    }
    pos = end;
  }
  return non_ascii && kChinese->FoundIn(lowered);
}

bool IsAllCaps(absl::string_view s) {
  size_t letters = 0;
  size_t upper = 0;
  size_t words = 0;
  size_t pos = 0;
  while (pos < s.size()) {
    if (!absl::ascii_isalnum(s[pos])) {
      ++pos;
      continue;
    }
    size_t end = pos;
    size_t word_letters = 0;
    size_t word_upper = 0;
    bool digit = false;
    while (end < s.size() && (absl::ascii_isalnum(s[end]) || s[end] == '\'')) {
      digit = digit || absl::ascii_isdigit(s[end]);
      if (absl::ascii_isalpha(s[end])) ++word_letters;
      if (absl::ascii_isupper(s[end])) ++word_upper;
      ++end;
    }
    if (!digit && word_letters > 0) {  // "AB123456" is a value, not shouting.
      letters += word_letters;
      upper += word_upper;
      ++words;
    }
    pos = end;
  }
  return words >= 3 && letters >= 10 && upper * 10 >= letters * 9;
}

uint64_t RequestFingerprint(absl::string_view lowered) {
  constexpr uint64_t kOffset = 14695981039346656037ull;
  constexpr uint64_t kPrime = 1099511628211ull;
  uint64_t hash = kOffset;
  auto mix = [&](absl::string_view bytes) {
    for (char c : bytes) {
      hash ^= static_cast<unsigned char>(c);
      hash *= kPrime;
    }
  };
  size_t words = 0;
  size_t cjk = 0;
  bool in_word = false;
  bool word_has_letter = false;
  size_t pos = 0;
  while (pos < lowered.size()) {
    const size_t begin = pos;
    const unsigned char byte = static_cast<unsigned char>(lowered[pos]);
    const char32_t cp = byte < 0x80 ? lowered[pos++] : text::NextCodePoint(lowered, &pos);
    const absl::string_view bytes = lowered.substr(begin, pos - begin);
    if (byte < 0x80 ? false : text::IsCjk(cp)) {
      if (in_word) words += word_has_letter ? 1 : 0;
      in_word = false;
      ++cjk;
      mix(bytes);
    } else if (byte < 0x80 ? absl::ascii_isalnum(byte) : text::IsWordChar(cp)) {
      if (!in_word) {
        mix(" ");
        in_word = true;
        word_has_letter = false;
      }
      word_has_letter = word_has_letter || cp >= 0x80 || !absl::ascii_isdigit(static_cast<char>(cp));
      mix(bytes);
    } else if (cp != '\'') {
      if (in_word) words += word_has_letter ? 1 : 0;
      in_word = false;
    }
  }
  if (in_word) words += word_has_letter ? 1 : 0;
  if (words < 3 && cjk < 4) return 0;
  return hash == 0 ? 1 : hash;
}

}  // namespace helpline::dst
