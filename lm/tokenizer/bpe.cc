#include "lm/tokenizer/bpe.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "lm/tokenizer/bpe_merge.h"
#include "lm/tokenizer/pretokenize.h"
#include "nlohmann/json.hpp"

namespace helpline::lm {
namespace bpe_internal {

struct TokenizerData {
  // Raw bytes of each id ("" where no token has that id).
  std::vector<std::string> token_bytes;
  // vocab.json strings and added-token contents -> id.
  absl::flat_hash_map<std::string, int32_t> token_ids;
  // Id of each single byte.
  std::array<int32_t, 256> byte_ids{};
  // Bytes -> id of every token that BPE turns its own bytes into (checked at load), so
  // that a piece equal to such a token needs one hash lookup instead of the merge loop.
  absl::flat_hash_map<std::string, int32_t> whole_pieces;
  MergeTable merges;
  // Added special tokens: content -> id, and the set of their ids.
  std::vector<std::pair<std::string, int32_t>> specials;
  absl::flat_hash_set<int32_t> special_ids;
  std::optional<int32_t> eos_id;
  // Distinguishes tokenizers in the per-thread piece cache (addresses can be reused).
  uint64_t instance = 0;
};

}  // namespace bpe_internal

namespace {

using bpe_internal::TokenizerData;

constexpr int64_t kMaxId = 1 << 21;  // Bounds the id table (64 MiB) whatever a file says.

// Code point -> byte for the 256 code points of the alphabet, -1 elsewhere.
const std::array<int16_t, 324>& CodePointToByte() {
  static const std::array<int16_t, 324> table = [] {
    std::array<int16_t, 324> t;
    t.fill(-1);
    const std::array<uint32_t, 256>& fwd = ByteToCodePoint();
    for (int b = 0; b < 256; ++b) t[fwd[b]] = static_cast<int16_t>(b);
    return t;
  }();
  return table;
}

// The byte string a vocab token stands for, or nullopt when a character is outside the
// byte alphabet. `token` is valid UTF-8 (the JSON parser checked it).
std::optional<std::string> TokenToBytes(absl::string_view token) {
  std::string bytes;
  bytes.reserve(token.size());
  const auto& inverse = CodePointToByte();
  size_t i = 0;
  while (i < token.size()) {
    const auto b0 = static_cast<unsigned char>(token[i]);
    uint32_t cp;
    size_t len;
    if (b0 < 0x80) {
      cp = b0;
      len = 1;
    } else if (b0 >= 0xC0 && b0 < 0xE0 && i + 1 < token.size()) {
      cp = ((b0 & 0x1Fu) << 6) | (static_cast<unsigned char>(token[i + 1]) & 0x3Fu);
      len = 2;
    } else {
      return std::nullopt;  // Three- and four-byte characters are all outside (> U+07FF).
    }
    if (cp >= inverse.size() || inverse[cp] < 0) return std::nullopt;
    bytes.push_back(static_cast<char>(inverse[cp]));
    i += len;
  }
  return bytes;
}

std::string Quote(absl::string_view s) {
  constexpr size_t kMax = 60;
  std::string q = absl::CHexEscape(s.substr(0, kMax));
  return absl::StrCat("\"", q, s.size() > kMax ? "...\"" : "\"");
}

absl::StatusOr<std::string> ReadFile(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    return absl::NotFoundError(absl::StrCat(path.string(), ": no such file"));
  }
  if (std::filesystem::is_directory(path, ec)) {
    return absl::InvalidArgumentError(absl::StrCat(path.string(), ": is a directory"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat(path.string(), ": cannot open: ", std::strerror(errno)));
  }
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) return absl::InvalidArgumentError(absl::StrCat(path.string(), ": read error"));
  return std::move(buffer).str();
}

// The first of `names` that exists in `dir`, or NOT_FOUND naming all of them.
absl::StatusOr<std::filesystem::path> FindFile(const std::filesystem::path& dir,
                                               std::initializer_list<const char*> names) {
  std::string tried;
  for (const char* name : names) {
    std::error_code ec;
    std::filesystem::path p = dir / name;
    if (std::filesystem::exists(p, ec)) return p;
    absl::StrAppend(&tried, tried.empty() ? "" : " or ", p.string());
  }
  return absl::NotFoundError(absl::StrCat("tokenizer files missing: no ", tried));
}

absl::StatusOr<nlohmann::json> ParseJson(const std::filesystem::path& path,
                                         const std::string& text) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path.string(), ": not valid JSON: ", e.what()));
  }
}

// A token reference in tokenizer_config.json / special_tokens_map.json: a string, an
// AddedToken object {"content": ...}, or null. Returns "" for null.
absl::StatusOr<std::string> TokenContent(const nlohmann::json& value,
                                         const std::filesystem::path& path, absl::string_view key) {
  if (value.is_null()) return std::string();
  if (value.is_string()) return value.get<std::string>();
  if (value.is_object()) {
    auto it = value.find("content");
    if (it != value.end() && it->is_string()) return it->get<std::string>();
  }
  return absl::InvalidArgumentError(absl::StrCat(
      path.string(), ": ", key, " must be a string or an object with a string \"content\""));
}

class Loader {
 public:
  explicit Loader(std::filesystem::path dir) : dir_(std::move(dir)) {}

  absl::StatusOr<std::unique_ptr<TokenizerData>> Run() {
    data_ = std::make_unique<TokenizerData>();
    if (absl::Status s = LoadAddedTokens(); !s.ok()) return s;
    if (absl::Status s = LoadVocab(); !s.ok()) return s;
    if (absl::Status s = LoadMerges(); !s.ok()) return s;
    if (absl::Status s = ResolveSpecials(); !s.ok()) return s;
    FindWholePieces();
    return std::move(data_);
  }

 private:
  // Pass 1: added tokens (content -> id) from added_tokens.json and tokenizer_config's
  // added_tokens_decoder; special-token references from both config files.
  absl::Status LoadAddedTokens() {
    std::filesystem::path added = dir_ / "added_tokens.json";
    std::error_code ec;
    if (std::filesystem::exists(added, ec)) {
      absl::StatusOr<std::string> text = ReadFile(added);
      if (!text.ok()) return text.status();
      absl::StatusOr<nlohmann::json> json = ParseJson(added, *text);
      if (!json.ok()) return json.status();
      if (!json->is_object()) {
        return absl::InvalidArgumentError(
            absl::StrCat(added.string(), ": must be a JSON object of token -> id"));
      }
      for (const auto& [content, id] : json->items()) {
        if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= kMaxId) {
          return absl::InvalidArgumentError(absl::StrCat(added.string(), ": entry ", Quote(content),
                                                         ": id must be an integer in [0, ", kMaxId,
                                                         ")"));
        }
        if (absl::Status s = AddAdded(content, static_cast<int32_t>(id.get<int64_t>()), added);
            !s.ok()) {
          return s;
        }
      }
    }
    for (const char* name : {"tokenizer_config.json", "special_tokens_map.json"}) {
      std::filesystem::path path = dir_ / name;
      if (!std::filesystem::exists(path, ec)) continue;
      absl::StatusOr<std::string> text = ReadFile(path);
      if (!text.ok()) return text.status();
      absl::StatusOr<nlohmann::json> json = ParseJson(path, *text);
      if (!json.ok()) return json.status();
      if (!json->is_object()) {
        return absl::InvalidArgumentError(absl::StrCat(path.string(), ": must be a JSON object"));
      }
      if (auto it = json->find("added_tokens_decoder"); it != json->end()) {
        if (!it->is_object()) {
          return absl::InvalidArgumentError(
              absl::StrCat(path.string(), ": added_tokens_decoder must be an object"));
        }
        for (const auto& [id_text, token] : it->items()) {
          int64_t id = -1;
          try {
            size_t used = 0;
            id = std::stoll(id_text, &used);
            if (used != id_text.size()) id = -1;
          } catch (const std::exception&) {
            id = -1;
          }
          if (id < 0 || id >= kMaxId) {
            return absl::InvalidArgumentError(
                absl::StrCat(path.string(), ": added_tokens_decoder key ", Quote(id_text),
                             " must be an id in [0, ", kMaxId, ")"));
          }
          absl::StatusOr<std::string> content =
              TokenContent(token, path, absl::StrCat("added_tokens_decoder[", id_text, "]"));
          if (!content.ok()) return content.status();
          if (content->empty()) {
            return absl::InvalidArgumentError(absl::StrCat(path.string(), ": added_tokens_decoder[",
                                                           id_text, "] has no content"));
          }
          if (absl::Status s = AddAdded(*content, static_cast<int32_t>(id), path); !s.ok()) {
            return s;
          }
        }
      }
      for (const char* key : {"eos_token", "bos_token", "unk_token", "pad_token", "sep_token",
                              "cls_token", "mask_token"}) {
        auto it = json->find(key);
        if (it == json->end()) continue;
        absl::StatusOr<std::string> content = TokenContent(*it, path, key);
        if (!content.ok()) return content.status();
        if (content->empty()) continue;
        special_refs_.push_back(*content);
        if (std::string(key) == "eos_token" && !eos_ref_) eos_ref_ = *content;
      }
      if (auto it = json->find("additional_special_tokens"); it != json->end()) {
        if (!it->is_array()) {
          return absl::InvalidArgumentError(
              absl::StrCat(path.string(), ": additional_special_tokens must be an array"));
        }
        for (const auto& token : *it) {
          absl::StatusOr<std::string> content =
              TokenContent(token, path, "additional_special_tokens[]");
          if (!content.ok()) return content.status();
          if (!content->empty()) special_refs_.push_back(*content);
        }
      }
    }
    return absl::OkStatus();
  }

  absl::Status AddAdded(const std::string& content, int32_t id, const std::filesystem::path& path) {
    if (content.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path.string(), ": an added token is empty (id ", id, ")"));
    }
    auto [it, inserted] = added_.try_emplace(content, id);
    if (!inserted && it->second != id) {
      return absl::InvalidArgumentError(absl::StrCat(path.string(), ": added token ",
                                                     Quote(content), " has id ", id, " but also ",
                                                     it->second));
    }
    auto [it2, inserted2] = added_by_id_.try_emplace(id, content);
    if (!inserted2 && it2->second != content) {
      return absl::InvalidArgumentError(absl::StrCat(path.string(), ": id ", id,
                                                     " is given to two added tokens, ",
                                                     Quote(it2->second), " and ", Quote(content)));
    }
    return absl::OkStatus();
  }

  // Pass 2: vocab.json -> ids and bytes.
  absl::Status LoadVocab() {
    absl::StatusOr<std::filesystem::path> path = FindFile(dir_, {"vocab.json", "encoder.json"});
    if (!path.ok()) return path.status();
    vocab_path_ = *path;
    absl::StatusOr<std::string> text = ReadFile(*path);
    if (!text.ok()) return text.status();
    absl::StatusOr<nlohmann::json> json = ParseJson(*path, *text);
    if (!json.ok()) return json.status();
    if (!json->is_object() || json->empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path->string(), ": must be a non-empty JSON object of token -> id"));
    }
    int64_t max_id = -1;
    for (const auto& [token, id] : json->items()) {
      if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= kMaxId) {
        return absl::InvalidArgumentError(absl::StrCat(path->string(), ": entry ", Quote(token),
                                                       ": id must be an integer in [0, ", kMaxId,
                                                       "), got ", id.dump()));
      }
      max_id = std::max(max_id, id.get<int64_t>());
    }
    for (const auto& [content, id] : added_) max_id = std::max<int64_t>(max_id, id);
    data_->token_bytes.assign(static_cast<size_t>(max_id + 1), std::string());
    std::vector<bool> taken(static_cast<size_t>(max_id + 1), false);
    std::vector<const std::string*> owner(static_cast<size_t>(max_id + 1), nullptr);
    data_->token_ids.reserve(json->size() + added_.size());
    data_->byte_ids.fill(-1);
    for (const auto& [token, id_json] : json->items()) {
      const auto id = static_cast<int32_t>(id_json.get<int64_t>());
      if (taken[id]) {
        return absl::InvalidArgumentError(absl::StrCat(path->string(), ": entry ", Quote(token),
                                                       ": id ", id, " is also the id of ",
                                                       Quote(*owner[id])));
      }
      taken[id] = true;
      auto added = added_.find(token);
      if (added != added_.end() && added->second != id) {
        return absl::InvalidArgumentError(
            absl::StrCat(path->string(), ": entry ", Quote(token), " has id ", id,
                         " but the added tokens give it id ", added->second));
      }
      auto added_id = added_by_id_.find(id);
      if (added_id != added_by_id_.end() && added_id->second != token) {
        return absl::InvalidArgumentError(
            absl::StrCat(path->string(), ": entry ", Quote(token), " has id ", id,
                         " but the added tokens give that id to ", Quote(added_id->second)));
      }
      std::optional<std::string> bytes = TokenToBytes(token);
      if (!bytes) {
        if (added == added_.end()) {
          return absl::InvalidArgumentError(absl::StrCat(
              path->string(), ": entry ", Quote(token),
              " has a character outside GPT-2's byte alphabet (and is not an added token)"));
        }
        bytes = token;  // An added token stands for its own text.
      }
      if (bytes->empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat(path->string(), ": entry \"\" (id ", id, "): empty token"));
      }
      if (bytes->size() == 1 && added == added_.end()) {
        data_->byte_ids[static_cast<unsigned char>((*bytes)[0])] = id;
      }
      data_->token_bytes[id] = std::move(*bytes);
      auto [it, inserted] = data_->token_ids.try_emplace(token, id);
      owner[id] = &it->first;
    }
    // Added tokens that vocab.json does not list.
    for (const auto& [content, id] : added_) {
      if (taken[id]) continue;
      taken[id] = true;
      data_->token_bytes[id] = content;
      data_->token_ids.try_emplace(content, id);
    }
    for (int b = 0; b < 256; ++b) {
      if (data_->byte_ids[b] < 0) {
        std::string symbol;
        AppendUtf8(ByteToCodePoint()[b], symbol);
        return absl::InvalidArgumentError(
            absl::StrCat(path->string(), ": no token for byte 0x", absl::Hex(b, absl::kZeroPad2),
                         " (", Quote(symbol), "); a byte-level BPE vocab has one per byte"));
      }
    }
    return absl::OkStatus();
  }

  // Pass 3: merges.txt, one "left right" per line after an optional "#version" line.
  absl::Status LoadMerges() {
    absl::StatusOr<std::filesystem::path> path = FindFile(dir_, {"merges.txt", "vocab.bpe"});
    if (!path.ok()) return path.status();
    absl::StatusOr<std::string> text = ReadFile(*path);
    if (!text.ok()) return text.status();
    const std::string& p = path->string();
    uint32_t rank = 0;
    size_t line_no = 0;
    absl::flat_hash_map<uint64_t, size_t> first_line;
    for (absl::string_view line : absl::StrSplit(*text, '\n')) {
      ++line_no;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.empty()) continue;
      if (line_no == 1 && absl::StartsWith(line, "#version")) continue;
      const size_t space = line.find(' ');
      if (space == absl::string_view::npos || space == 0 || space + 1 == line.size() ||
          line.find(' ', space + 1) != absl::string_view::npos) {
        return absl::InvalidArgumentError(
            absl::StrCat(p, ": line ", line_no,
                         ": expected two tokens separated by one space, got ", Quote(line)));
      }
      const absl::string_view left = line.substr(0, space);
      const absl::string_view right = line.substr(space + 1);
      auto left_it = data_->token_ids.find(left);
      auto right_it = data_->token_ids.find(right);
      if (left_it == data_->token_ids.end() || right_it == data_->token_ids.end()) {
        return absl::InvalidArgumentError(absl::StrCat(
            p, ": line ", line_no, ": ", Quote(left_it == data_->token_ids.end() ? left : right),
            " is not in ", vocab_path_.filename().string()));
      }
      const std::string joined = absl::StrCat(left, right);
      auto joined_it = data_->token_ids.find(joined);
      if (joined_it == data_->token_ids.end()) {
        return absl::InvalidArgumentError(absl::StrCat(p, ": line ", line_no, ": the merge ",
                                                       Quote(joined), " is not in ",
                                                       vocab_path_.filename().string()));
      }
      const int32_t l = left_it->second, r = right_it->second;
      if (!data_->merges.Add(l, r, rank, joined_it->second)) {
        const uint64_t key = (static_cast<uint64_t>(l) << 32) | static_cast<uint32_t>(r);
        return absl::InvalidArgumentError(absl::StrCat(
            p, ": line ", line_no, ": merge ", Quote(line), " repeats line ", first_line[key]));
      }
      first_line[(static_cast<uint64_t>(l) << 32) | static_cast<uint32_t>(r)] = line_no;
      ++rank;
    }
    return absl::OkStatus();
  }

  absl::Status ResolveSpecials() {
    absl::flat_hash_map<std::string, int32_t> specials;
    for (const auto& [content, id] : added_) specials.emplace(content, id);
    auto resolve = [&](const std::string& content) -> std::optional<int32_t> {
      auto it = data_->token_ids.find(content);
      if (it == data_->token_ids.end()) return std::nullopt;
      return it->second;
    };
    // References to tokens that exist neither in the vocab nor as added tokens are
    // ignored: there is no id to give them (Hugging Face would append one the model has
    // no embedding for).
    for (const std::string& ref : special_refs_) {
      if (std::optional<int32_t> id = resolve(ref)) specials.emplace(ref, *id);
    }
    const std::string kEndOfText = "<|endoftext|>";
    std::optional<int32_t> end_of_text = resolve(kEndOfText);
    if (end_of_text) specials.emplace(kEndOfText, *end_of_text);
    if (eos_ref_) data_->eos_id = resolve(*eos_ref_);
    if (!data_->eos_id) data_->eos_id = end_of_text;
    for (const auto& [content, id] : specials) {
      data_->specials.emplace_back(content, id);
      data_->special_ids.insert(id);
    }
    // Longest first, so that the first match at a position is the longest.
    std::sort(data_->specials.begin(), data_->specials.end(), [](const auto& a, const auto& b) {
      return a.first.size() != b.first.size() ? a.first.size() > b.first.size() : a.first < b.first;
    });
    return absl::OkStatus();
  }

  void FindWholePieces() {
    std::vector<int32_t> symbols;
    for (size_t id = 0; id < data_->token_bytes.size(); ++id) {
      const std::string& bytes = data_->token_bytes[id];
      if (bytes.size() < 2 || data_->special_ids.contains(static_cast<int32_t>(id))) continue;
      symbols.clear();
      for (char c : bytes) symbols.push_back(data_->byte_ids[static_cast<unsigned char>(c)]);
      const size_t n = bpe_internal::MergeSymbols(data_->merges, symbols.data(), symbols.size());
      if (n == 1 && symbols[0] == static_cast<int32_t>(id)) {
        data_->whole_pieces.emplace(bytes, static_cast<int32_t>(id));
      }
    }
  }

  std::filesystem::path dir_;
  std::filesystem::path vocab_path_;
  std::unique_ptr<TokenizerData> data_;
  absl::flat_hash_map<std::string, int32_t> added_;
  absl::flat_hash_map<int32_t, std::string> added_by_id_;
  std::vector<std::string> special_refs_;
  std::optional<std::string> eos_ref_;
};

const std::string& EmptyString() {
  static const std::string* empty = new std::string();
  return *empty;
}

// The ids of pieces that needed the merge loop, per thread (so no locks), for the last
// tokenizer the thread used. Text in scripts whose words are rarely single tokens (Chinese
// runs, say) repeats such pieces often; the cache roughly halves their cost.
struct PieceCache {
  static constexpr size_t kMaxPieceBytes = 64;
  static constexpr size_t kMaxEntries = 1 << 14;  // A few MB at most per thread.
  uint64_t instance = 0;
  absl::flat_hash_map<std::string, std::pair<uint32_t, uint32_t>> where;  // -> arena span
  std::vector<int32_t> arena;
};
thread_local PieceCache piece_cache;

std::atomic<uint64_t> next_instance{1};

void EncodePiece(const TokenizerData& d, absl::string_view piece, std::vector<int32_t>& ids) {
  if (piece.size() == 1) {
    ids.push_back(d.byte_ids[static_cast<unsigned char>(piece[0])]);
    return;
  }
  if (auto it = d.whole_pieces.find(piece); it != d.whole_pieces.end()) {
    ids.push_back(it->second);
    return;
  }
  PieceCache& cache = piece_cache;
  const bool cacheable = piece.size() <= PieceCache::kMaxPieceBytes;
  if (cacheable) {
    if (cache.instance != d.instance || cache.where.size() >= PieceCache::kMaxEntries) {
      cache.where.clear();
      cache.arena.clear();
      cache.instance = d.instance;
    }
    if (auto it = cache.where.find(piece); it != cache.where.end()) {
      const int32_t* start = cache.arena.data() + it->second.first;
      ids.insert(ids.end(), start, start + it->second.second);
      return;
    }
  }
  absl::InlinedVector<int32_t, bpe_internal::kLinearMergeMax> symbols(piece.size());
  for (size_t i = 0; i < piece.size(); ++i) {
    symbols[i] = d.byte_ids[static_cast<unsigned char>(piece[i])];
  }
  const size_t n = bpe_internal::MergeSymbols(d.merges, symbols.data(), symbols.size());
  ids.insert(ids.end(), symbols.begin(), symbols.begin() + static_cast<ptrdiff_t>(n));
  if (cacheable) {
    cache.where.emplace(
        piece, std::make_pair(static_cast<uint32_t>(cache.arena.size()), static_cast<uint32_t>(n)));
    cache.arena.insert(cache.arena.end(), symbols.begin(),
                       symbols.begin() + static_cast<ptrdiff_t>(n));
  }
}

}  // namespace

BpeTokenizer::BpeTokenizer(std::unique_ptr<const TokenizerData> data) : data_(std::move(data)) {}
BpeTokenizer::~BpeTokenizer() = default;

absl::StatusOr<std::unique_ptr<BpeTokenizer>> BpeTokenizer::Load(const std::string& dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    return absl::NotFoundError(absl::StrCat(dir, ": not a directory"));
  }
  absl::StatusOr<std::unique_ptr<TokenizerData>> data = Loader(dir).Run();
  if (!data.ok()) return data.status();
  (*data)->instance = next_instance.fetch_add(1);
  return std::unique_ptr<BpeTokenizer>(new BpeTokenizer(std::move(*data)));
}

void BpeTokenizer::EncodeTo(absl::string_view text, std::vector<int32_t>& ids) const {
  for (size_t pos = 0; pos < text.size();) {
    const size_t end = bpe_internal::NextPieceEnd(text, pos);
    EncodePiece(*data_, text.substr(pos, end - pos), ids);
    pos = end;
  }
}

std::vector<int32_t> BpeTokenizer::Encode(absl::string_view text) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  EncodeTo(text, ids);
  return ids;
}

std::vector<int32_t> BpeTokenizer::EncodeWithSpecialTokens(absl::string_view text) const {
  std::vector<int32_t> ids;
  const auto& specials = data_->specials;
  // next_at[k]: where specials[k] next occurs at or after the scan position (npos: never).
  std::vector<size_t> next_at(specials.size());
  for (size_t k = 0; k < specials.size(); ++k) next_at[k] = text.find(specials[k].first);
  size_t pos = 0;
  while (true) {
    size_t best = absl::string_view::npos;
    size_t best_k = 0;
    for (size_t k = 0; k < specials.size(); ++k) {
      if (next_at[k] != absl::string_view::npos && next_at[k] < pos) {
        next_at[k] = text.find(specials[k].first, pos);
      }
      if (next_at[k] < best) {  // Ties keep the earlier k, the longer token.
        best = next_at[k];
        best_k = k;
      }
    }
    if (best == absl::string_view::npos) {
      EncodeTo(text.substr(pos), ids);
      return ids;
    }
    EncodeTo(text.substr(pos, best - pos), ids);
    ids.push_back(specials[best_k].second);
    pos = best + specials[best_k].first.size();
  }
}

const std::string& BpeTokenizer::TokenBytes(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= data_->token_bytes.size()) return EmptyString();
  return data_->token_bytes[id];
}

std::string BpeTokenizer::Decode(absl::Span<const int32_t> ids) const {
  std::string out;
  for (int32_t id : ids) out += TokenBytes(id);
  return out;
}

std::string BpeTokenizer::DecodeText(absl::Span<const int32_t> ids) const {
  std::string out;
  AppendValidUtf8(Decode(ids), /*hold_incomplete=*/false, out);
  return out;
}

int BpeTokenizer::vocab_size() const { return static_cast<int>(data_->token_bytes.size()); }

std::optional<int32_t> BpeTokenizer::TokenId(absl::string_view token) const {
  auto it = data_->token_ids.find(token);
  if (it == data_->token_ids.end()) return std::nullopt;
  return it->second;
}

std::optional<int32_t> BpeTokenizer::eos_id() const { return data_->eos_id; }

bool BpeTokenizer::IsSpecial(int32_t id) const { return data_->special_ids.contains(id); }

size_t AppendValidUtf8(absl::string_view bytes, bool hold_incomplete, std::string& out) {
  static constexpr char kReplacement[] = "\xEF\xBF\xBD";
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const size_t n = bytes.size();
  out.reserve(out.size() + n);
  size_t i = 0;
  while (i < n) {
    const unsigned char b0 = p[i];
    if (b0 < 0x80) {
      // Copy the ASCII run in one go.
      size_t j = i + 1;
      while (j < n && p[j] < 0x80) ++j;
      out.append(bytes.data() + i, j - i);
      i = j;
      continue;
    }
    size_t need;                         // Continuation bytes after the lead.
    unsigned char lo = 0x80, hi = 0xBF;  // Allowed range of the first continuation byte.
    if (b0 >= 0xC2 && b0 <= 0xDF) {
      need = 1;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
      need = 2;
      if (b0 == 0xE0) lo = 0xA0;
      if (b0 == 0xED) hi = 0x9F;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
      need = 3;
      if (b0 == 0xF0) lo = 0x90;
      if (b0 == 0xF4) hi = 0x8F;
    } else {
      out.append(kReplacement);
      ++i;
      continue;
    }
    size_t k = 1;  // Bytes of the sequence that are well-formed so far.
    while (k <= need && i + k < n) {
      const unsigned char b = p[i + k];
      const bool ok = k == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xBF);
      if (!ok) break;
      ++k;
    }
    if (k == need + 1) {
      out.append(bytes.data() + i, k);
      i += k;
    } else if (i + k == n && hold_incomplete) {
      return k;  // A truncated prefix of a valid character: the caller keeps it.
    } else {
      out.append(kReplacement);  // The maximal subpart becomes one U+FFFD.
      i += k;
    }
  }
  return 0;
}

StreamDecoder::StreamDecoder(const BpeTokenizer& tokenizer) : tokenizer_(&tokenizer) {}

std::string StreamDecoder::Push(int32_t id) {
  pending_ += tokenizer_->TokenBytes(id);
  std::string out;
  const size_t held = AppendValidUtf8(pending_, /*hold_incomplete=*/true, out);
  pending_.erase(0, pending_.size() - held);
  return out;
}

std::string StreamDecoder::Flush() {
  std::string out;
  AppendValidUtf8(pending_, /*hold_incomplete=*/false, out);
  pending_.clear();
  return out;
}

const std::array<uint32_t, 256>& ByteToCodePoint() {
  static const std::array<uint32_t, 256> map = [] {
    std::array<uint32_t, 256> m{};
    uint32_t next = 256;
    for (uint32_t b = 0; b < 256; ++b) {
      const bool printable =
          (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      m[b] = printable ? b : next++;
    }
    return m;
  }();
  return map;
}

void AppendUtf8(uint32_t cp, std::string& out) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}


}  // namespace helpline::lm
