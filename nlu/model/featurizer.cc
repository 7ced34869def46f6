#include "nlu/model/featurizer.h"

#include <algorithm>
#include <limits>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/domain/text.h"
#include "nlohmann/json.hpp"

namespace helpline::nlu::model {
namespace {

namespace text = domain::text;

bool IsAsciiDigit(char c) { return c >= '0' && c <= '9'; }
bool IsAsciiUpper(char c) { return c >= 'A' && c <= 'Z'; }
bool IsAsciiLower(char c) { return c >= 'a' && c <= 'z'; }

int ShapeOf(absl::string_view raw, bool cjk, bool word) {
  if (cjk) return 6;
  if (!word) return 5;
  int upper = 0, lower = 0, digit = 0, other = 0;
  for (char c : raw) {
    if (IsAsciiUpper(c)) {
      ++upper;
    } else if (IsAsciiLower(c)) {
      ++lower;
    } else if (IsAsciiDigit(c)) {
      ++digit;
    } else {
      ++other;
    }
  }
  if (other > 0) return 7;
  if (digit > 0) return (upper + lower == 0) ? 3 : 4;
  if (upper == 0) return 0;
  if (lower == 0) return upper == 1 ? 1 : 2;
  return IsAsciiUpper(raw[0]) && upper == 1 ? 1 : 7;
}

std::string Normalize(absl::string_view raw) {
  std::string out = text::AsciiLower(raw);
  for (char& c : out) {
    if (IsAsciiDigit(c)) c = '0';
  }
  return out;
}

std::vector<std::string> SentenceNgrams(const std::vector<Token>& tokens) {
  std::vector<std::string> out;
  out.reserve(tokens.size() * 2 + 1);
  for (const Token& token : tokens) out.push_back(token.norm);
  for (size_t i = 0; i <= tokens.size(); ++i) {
    const absl::string_view left = i == 0 ? "<s>" : absl::string_view(tokens[i - 1].norm);
    const absl::string_view right = i == tokens.size() ? "</s>" : absl::string_view(tokens[i].norm);
    out.push_back(absl::StrCat(left, " ", right));
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> StringList(const nlohmann::json& json, const char* key) {
  auto it = json.find(key);
  if (it == json.end() || !it->is_array()) {
    return absl::InvalidArgumentError(
        absl::StrCat("vocabulary: '", key, "' missing or not a list"));
  }
  std::vector<std::string> out;
  out.reserve(it->size());
  for (const auto& item : *it) {
    if (!item.is_string()) {
      return absl::InvalidArgumentError(absl::StrCat("vocabulary: '", key, "' holds a non-string"));
    }
    out.push_back(item.get<std::string>());
  }
  return out;
}

}  // namespace

std::vector<Token> Tokenize(absl::string_view input) {
  std::vector<Token> tokens;
  size_t pos = 0;
  size_t word_begin = std::string::npos;
  auto close_word = [&](size_t end) {
    if (word_begin == std::string::npos) return;
    const absl::string_view raw = input.substr(word_begin, end - word_begin);
    tokens.push_back(Token{word_begin, end, Normalize(raw), ShapeOf(raw, false, true)});
    word_begin = std::string::npos;
  };
  while (pos < input.size()) {
    const size_t start = pos;
    const char32_t cp = text::NextCodePoint(input, &pos);
    if (text::IsSpace(cp)) {
      close_word(start);
    } else if (text::IsCjk(cp)) {
      close_word(start);
      tokens.push_back(Token{start, pos, std::string(input.substr(start, pos - start)), 6});
    } else if (text::IsWordChar(cp)) {
      if (word_begin == std::string::npos) word_begin = start;
    } else {
      close_word(start);
      const absl::string_view raw = input.substr(start, pos - start);
      tokens.push_back(Token{start, pos, Normalize(raw), ShapeOf(raw, false, false)});
    }
  }
  close_word(input.size());
  return tokens;
}

void AddSentencePieces(const SentencePieces& pieces, absl::string_view utterance,
                       Features& features) {
  features.pieces.clear();
  features.first_piece.clear();
  for (const Token& token : features.tokens) {
    size_t before = token.begin;
    char32_t previous = 0;
    if (before > 0) {
      // The code point that ends just before the token.
      size_t start = before - 1;
      while (start > 0 && (static_cast<unsigned char>(utterance[start]) & 0xC0) == 0x80) --start;
      size_t pos = start;
      previous = text::NextCodePoint(utterance, &pos);
    }
    const bool word_start = token.begin == 0 || text::IsSpace(previous);
    features.first_piece.push_back(static_cast<int64_t>(features.pieces.size()));
    pieces.Encode(utterance.substr(token.begin, token.end - token.begin), word_start,
                  features.pieces);
  }
  if (features.pieces.empty()) features.pieces.push_back(SentencePieces::kUnknown);
  if (features.pieces.size() > kMaxPieces) features.pieces.resize(kMaxPieces);
  const int64_t last = static_cast<int64_t>(features.pieces.size()) - 1;
  for (int64_t& first : features.first_piece) first = std::min(first, last);
}

std::vector<std::string> CharNgrams(absl::string_view norm) {
  // Code point boundaries of "<norm>".
  const std::string padded = absl::StrCat("<", norm, ">");
  std::vector<size_t> starts;
  size_t pos = 0;
  while (pos < padded.size()) {
    starts.push_back(pos);
    text::NextCodePoint(padded, &pos);
  }
  starts.push_back(padded.size());
  const size_t length = starts.size() - 1;
  std::vector<std::string> out;
  if (length <= 4) out.push_back(padded);
  for (size_t n = 3; n <= 5; ++n) {
    if (n >= length) break;  // the whole word is there already or comes as the word id
    for (size_t i = 0; i + n <= length; ++i) {
      out.push_back(padded.substr(starts[i], starts[i + n] - starts[i]));
    }
  }
  return out;
}

Featurizer Featurizer::Build(const std::vector<std::string>& texts, int min_count) {
  std::map<std::string, int> words, char_ngrams, sentence_ngrams;
  for (const std::string& t : texts) {
    const std::vector<Token> tokens = Tokenize(t);
    for (const Token& token : tokens) {
      ++words[token.norm];
      for (std::string& g : CharNgrams(token.norm)) ++char_ngrams[std::move(g)];
    }
    for (std::string& g : SentenceNgrams(tokens)) ++sentence_ngrams[std::move(g)];
  }
  Featurizer f;
  f.words_ = {"<pad>", "<unk>"};
  // std::map iteration is sorted: the ids do not depend on the order of the texts.
  for (const auto& [w, n] : words) {
    if (n >= min_count) f.words_.push_back(w);
  }
  for (const auto& [g, n] : char_ngrams) {
    if (n >= min_count) f.char_ngrams_.push_back(g);
  }
  for (const auto& [g, n] : sentence_ngrams) {
    if (n >= min_count) f.sentence_ngrams_.push_back(g);
  }
  f.Index();
  return f;
}

Featurizer Featurizer::BuildWith(const std::vector<std::string>& texts, const Featurizer& extra,
                                 int min_count) {
  Featurizer f = Build(texts, min_count);
  std::set<std::string> words(f.words_.begin() + 2, f.words_.end());
  if (extra.words_.size() > 2) words.insert(extra.words_.begin() + 2, extra.words_.end());
  std::set<std::string> char_ngrams(f.char_ngrams_.begin(), f.char_ngrams_.end());
  char_ngrams.insert(extra.char_ngrams_.begin(), extra.char_ngrams_.end());
  f.words_ = {"<pad>", "<unk>"};
  f.words_.insert(f.words_.end(), words.begin(), words.end());
  f.char_ngrams_.assign(char_ngrams.begin(), char_ngrams.end());
  f.Index();
  return f;
}

Featurizer Featurizer::BuildWith(const std::vector<std::string>& texts,
                                 const std::vector<std::string>& extra_words, int min_count) {
  Featurizer extra;
  extra.words_ = {"<pad>", "<unk>"};
  extra.words_.insert(extra.words_.end(), extra_words.begin(), extra_words.end());
  return BuildWith(texts, extra, min_count);
}

namespace {

// The keys of `counts` seen at least `min_count` times, the `max_size` most frequent of them
// (ties by text), in sorted order.
std::vector<std::string> MostFrequent(const absl::flat_hash_map<std::string, int64_t>& counts,
                                      int min_count, size_t max_size) {
  std::vector<std::pair<int64_t, std::string>> items;
  for (const auto& [key, n] : counts) {
    if (n >= min_count) items.emplace_back(-n, key);
  }
  std::sort(items.begin(), items.end());
  if (items.size() > max_size) items.resize(max_size);
  std::vector<std::string> out;
  out.reserve(items.size());
  for (auto& item : items) out.push_back(std::move(item.second));
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

Featurizer Featurizer::BuildCapped(const std::vector<std::string>& texts, int min_count,
                                   size_t max_words, size_t max_char_ngrams,
                                   std::vector<int64_t>* word_counts) {
  absl::flat_hash_map<std::string, int64_t> words, char_ngrams;
  for (const std::string& t : texts) {
    for (const Token& token : Tokenize(t)) ++words[token.norm];
  }
  // Character n-grams weighted by word frequency (every occurrence of a word counts).
  for (const auto& [w, n] : words) {
    for (std::string& g : CharNgrams(w)) char_ngrams[std::move(g)] += n;
  }
  Featurizer f;
  f.words_ = {"<pad>", "<unk>"};
  for (std::string& w : MostFrequent(words, min_count, max_words)) f.words_.push_back(std::move(w));
  f.char_ngrams_ = MostFrequent(char_ngrams, min_count, max_char_ngrams);
  f.Index();
  if (word_counts != nullptr) {
    word_counts->assign(f.words_.size(), 0);
    for (size_t i = 2; i < f.words_.size(); ++i) (*word_counts)[i] = words.at(f.words_[i]);
  }
  return f;
}

int64_t Featurizer::FindWord(absl::string_view norm) const {
  auto it = word_index_.find(norm);
  return it == word_index_.end() ? -1 : it->second;
}

int64_t Featurizer::FindCharNgram(absl::string_view ngram) const {
  auto it = char_ngram_index_.find(ngram);
  return it == char_ngram_index_.end() ? -1 : it->second;
}

void Featurizer::Index() {
  word_index_.clear();
  char_ngram_index_.clear();
  sentence_ngram_index_.clear();
  for (size_t i = 0; i < words_.size(); ++i) word_index_.emplace(words_[i], i);
  for (size_t i = 0; i < char_ngrams_.size(); ++i) char_ngram_index_.emplace(char_ngrams_[i], i);
  for (size_t i = 0; i < sentence_ngrams_.size(); ++i) {
    sentence_ngram_index_.emplace(sentence_ngrams_[i], i);
  }
}

Features Featurizer::Featurize(absl::string_view input) const {
  Features f;
  f.tokens = Tokenize(input);
  f.word_ids.reserve(f.tokens.size());
  f.shape_ids.reserve(f.tokens.size());
  f.char_ngrams.resize(f.tokens.size());
  for (size_t i = 0; i < f.tokens.size(); ++i) {
    const Token& token = f.tokens[i];
    auto it = word_index_.find(token.norm);
    f.word_ids.push_back(it == word_index_.end() ? kUnknown : it->second);
    f.shape_ids.push_back(token.shape);
    for (const std::string& g : CharNgrams(token.norm)) {
      auto git = char_ngram_index_.find(g);
      if (git != char_ngram_index_.end()) f.char_ngrams[i].push_back(git->second);
    }
  }
  for (const std::string& g : SentenceNgrams(f.tokens)) {
    auto it = sentence_ngram_index_.find(g);
    if (it != sentence_ngram_index_.end()) f.sentence_ngrams.push_back(it->second);
  }
  return f;
}

nlohmann::json Featurizer::ToJson() const {
  return nlohmann::json{
      {"words", words_}, {"char_ngrams", char_ngrams_}, {"sentence_ngrams", sentence_ngrams_}};
}

absl::StatusOr<Featurizer> Featurizer::FromJson(const nlohmann::json& json) {
  Featurizer f;
  auto words = StringList(json, "words");
  if (!words.ok()) return words.status();
  auto char_ngrams = StringList(json, "char_ngrams");
  if (!char_ngrams.ok()) return char_ngrams.status();
  auto sentence_ngrams = StringList(json, "sentence_ngrams");
  if (!sentence_ngrams.ok()) return sentence_ngrams.status();
  if (words->size() < 2) return absl::InvalidArgumentError("vocabulary: 'words' too short");
  f.words_ = *std::move(words);
  f.char_ngrams_ = *std::move(char_ngrams);
  f.sentence_ngrams_ = *std::move(sentence_ngrams);
  f.Index();
  return f;
}

std::vector<std::string> TagNames(const std::vector<std::string>& slot_types) {
  std::vector<std::string> names = {"O"};
  for (const std::string& type : slot_types) {
    names.push_back("B-" + type);
    names.push_back("I-" + type);
  }
  return names;
}

std::vector<int> TagsFromSpans(const std::vector<Token>& tokens,
                               const std::vector<data::SlotSpan>& spans,
                               const std::vector<std::string>& slot_types) {
  std::vector<int> tags(tokens.size(), 0);
  for (const data::SlotSpan& span : spans) {
    auto type = std::find(slot_types.begin(), slot_types.end(), span.slot);
    if (type == slot_types.end()) continue;
    const int b = 1 + 2 * static_cast<int>(type - slot_types.begin());
    bool started = false;
    for (size_t i = 0; i < tokens.size(); ++i) {
      const Token& token = tokens[i];
      if (token.begin < span.begin || token.end > span.end) continue;
      if (!started) {
        if (token.begin != span.begin) break;  // the span starts inside a token
        tags[i] = b;
        started = true;
      } else {
        tags[i] = b + 1;
      }
    }
  }
  return tags;
}

std::vector<int> DecodeBio(const std::vector<float>& scores, size_t num_tokens, size_t num_tags,
                           const TagTransitions* transitions) {
  std::vector<int> tags(num_tokens, 0);
  if (num_tokens == 0 || num_tags == 0) return tags;
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  // I-X is tag 2 + 2x: allowed after B-X (1 + 2x) or I-X.
  auto allowed = [](size_t from, size_t to) {
    if (to == 0 || to % 2 == 1) return true;
    return from == to || from + 1 == to;
  };
  auto bigram = [&](size_t from, size_t to) {
    return transitions == nullptr ? 0.0f : transitions->transition[from * num_tags + to];
  };
  std::vector<float> score(num_tags), next(num_tags);
  std::vector<int> back(num_tokens * num_tags, 0);
  for (size_t k = 0; k < num_tags; ++k) {
    score[k] = (k != 0 && k % 2 == 0)
                   ? kNegInf
                   : scores[k] + (transitions == nullptr ? 0.0f : transitions->start[k]);
  }
  for (size_t t = 1; t < num_tokens; ++t) {
    for (size_t k = 0; k < num_tags; ++k) {
      float best = kNegInf;
      int arg = 0;
      for (size_t j = 0; j < num_tags; ++j) {
        if (!allowed(j, k) || score[j] == kNegInf) continue;
        const float s = score[j] + bigram(j, k);
        if (s > best) {
          best = s;
          arg = static_cast<int>(j);
        }
      }
      next[k] = best == kNegInf ? kNegInf : best + scores[t * num_tags + k];
      back[t * num_tags + k] = arg;
    }
    score.swap(next);
  }
  if (transitions != nullptr) {
    for (size_t k = 0; k < num_tags; ++k) {
      if (score[k] != kNegInf) score[k] += transitions->end[k];
    }
  }
  int k = static_cast<int>(std::max_element(score.begin(), score.end()) - score.begin());
  for (size_t t = num_tokens; t-- > 0;) {
    tags[t] = k;
    k = back[t * num_tags + k];
  }
  return tags;
}

std::vector<data::SlotSpan> SpansFromTags(absl::string_view input, const std::vector<Token>& tokens,
                                          const std::vector<int>& tags,
                                          const std::vector<std::string>& slot_types) {
  std::vector<data::SlotSpan> spans;
  for (size_t i = 0; i < tokens.size() && i < tags.size(); ++i) {
    const int tag = tags[i];
    if (tag <= 0) continue;
    const size_t type = static_cast<size_t>(tag - 1) / 2;
    if (type >= slot_types.size()) continue;
    const bool begin = tag % 2 == 1;
    const bool continues = !begin && !spans.empty() && spans.back().slot == slot_types[type] &&
                           i > 0 && tags[i - 1] > 0 &&
                           static_cast<size_t>(tags[i - 1] - 1) / 2 == type;
    if (continues) {
      spans.back().end = tokens[i].end;
    } else {
      spans.push_back(data::SlotSpan{slot_types[type], tokens[i].begin, tokens[i].end, ""});
    }
  }
  for (data::SlotSpan& span : spans) {
    span.value = std::string(input.substr(span.begin, span.end - span.begin));
  }
  return spans;
}

}  // namespace helpline::nlu::model
