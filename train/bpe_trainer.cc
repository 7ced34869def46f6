#include "train/bpe_trainer.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <queue>
#include <sstream>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "lm/tokenizer/bpe.h"
#include "lm/tokenizer/pretokenize.h"
#include "nlohmann/json.hpp"

namespace helpline::train {
namespace {

// The 256 bytes in GPT-2's id order: by the code point they are written as (the printable
// ones first, then the others).
std::array<uint8_t, 256> ByteOrder() {
  const std::array<uint32_t, 256>& cp = lm::ByteToCodePoint();
  std::array<uint8_t, 256> order{};
  for (int b = 0; b < 256; ++b) order[b] = static_cast<uint8_t>(b);
  std::sort(order.begin(), order.end(), [&cp](uint8_t x, uint8_t y) { return cp[x] < cp[y]; });
  return order;
}

uint64_t PairKey(int32_t l, int32_t r) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(l)) << 32) | static_cast<uint32_t>(r);
}

struct HeapEntry {
  int64_t count;
  int32_t left;
  int32_t right;
  // Max-heap on count; ties: smaller left, then smaller right first.
  bool operator<(const HeapEntry& o) const {
    if (count != o.count) return count < o.count;
    if (left != o.left) return left > o.left;
    return right > o.right;
  }
};

// Joins every non-overlapping (l, r) in `syms` left to right into `id`.
void MergeInPlace(std::vector<int32_t>& syms, int32_t l, int32_t r, int32_t id) {
  size_t w = 0;
  for (size_t i = 0; i < syms.size();) {
    if (i + 1 < syms.size() && syms[i] == l && syms[i + 1] == r) {
      syms[w++] = id;
      i += 2;
    } else {
      syms[w++] = syms[i++];
    }
  }
  syms.resize(w);
}

class Trainer {
 public:
  explicit Trainer(const BpeTrainOptions& options) : options_(options) {
    const std::array<uint8_t, 256> order = ByteOrder();
    for (int i = 0; i < 256; ++i) {
      byte_id_[order[i]] = i;
      model_.tokens.push_back(std::string(1, static_cast<char>(order[i])));
      token_ids_.emplace(model_.tokens.back(), i);
    }
  }

  // Counts the pre-tokenizer pieces of `text`, skipping special-token text.
  void AddText(absl::string_view text) {
    model_.corpus_bytes += static_cast<int64_t>(text.size());
    size_t pos = 0;
    while (pos < text.size()) {
      size_t next = absl::string_view::npos, len = 0;
      for (const std::string& s : options_.special_tokens) {
        const size_t f = text.find(s, pos);
        if (f < next) {
          next = f;
          len = s.size();
        }
      }
      const absl::string_view stretch =
          text.substr(pos, next == absl::string_view::npos ? absl::string_view::npos : next - pos);
      if (!has_text_) {
        has_text_ = std::any_of(stretch.begin(), stretch.end(),
                                [](char c) { return !absl::ascii_isspace(static_cast<unsigned char>(c)); });
      }
      for (size_t p = 0; p < stretch.size();) {
        const size_t end = lm::bpe_internal::NextPieceEnd(stretch, p);
        ++piece_counts_[stretch.substr(p, end - p)];
        ++model_.pieces;
        p = end;
      }
      if (next == absl::string_view::npos) break;
      pos = next + len;
    }
  }

  absl::StatusOr<BpeModel> Run() {
    if (piece_counts_.empty() || !has_text_) {
      return absl::InvalidArgumentError(
          "the corpus is empty (no text besides whitespace and special tokens)");
    }
    // Words in a deterministic order (sorted by bytes) so ids and ties never depend on
    // hash order.
    std::vector<std::pair<std::string, int64_t>> sorted(piece_counts_.begin(), piece_counts_.end());
    piece_counts_.clear();
    std::sort(sorted.begin(), sorted.end());
    model_.distinct_pieces = static_cast<int64_t>(sorted.size());
    words_.reserve(sorted.size());
    counts_.reserve(sorted.size());
    for (const auto& [piece, count] : sorted) {
      std::vector<int32_t> syms;
      syms.reserve(piece.size());
      for (unsigned char c : piece) syms.push_back(byte_id_[c]);
      words_.push_back(std::move(syms));
      counts_.push_back(count);
    }
    sorted.clear();
    sorted.shrink_to_fit();
    for (size_t w = 0; w < words_.size(); ++w) AddPairs(static_cast<int32_t>(w), +1);
    std::priority_queue<HeapEntry> heap;
    for (const auto& [key, count] : pair_counts_) {
      if (count > 0) {
        heap.push({count, static_cast<int32_t>(key >> 32), static_cast<int32_t>(key & 0xffffffff)});
      }
    }

    const int target = options_.vocab_size - static_cast<int>(options_.special_tokens.size());
    while (static_cast<int>(model_.tokens.size()) < target && !heap.empty()) {
      const HeapEntry top = heap.top();
      heap.pop();
      const uint64_t key = PairKey(top.left, top.right);
      auto it = pair_counts_.find(key);
      const int64_t current = it == pair_counts_.end() ? 0 : it->second;
      if (current != top.count) {  // stale: counts only shrink, so re-queue the true count
        if (current > 0) heap.push({current, top.left, top.right});
        continue;
      }
      if (current < options_.min_pair_count) break;
      const std::string joined = model_.tokens[top.left] + model_.tokens[top.right];
      int32_t id;
      if (auto found = token_ids_.find(joined); found != token_ids_.end()) {
        id = found->second;  // the same bytes reached by another pair of parts
      } else {
        id = static_cast<int32_t>(model_.tokens.size());
        model_.tokens.push_back(joined);
        token_ids_.emplace(joined, id);
      }
      model_.merges.emplace_back(top.left, top.right);
      // Revisit only the words that held the pair.
      std::vector<int32_t> where = std::move(pair_words_[key]);
      pair_words_.erase(key);
      std::sort(where.begin(), where.end());
      where.erase(std::unique(where.begin(), where.end()), where.end());
      touched_.clear();
      for (int32_t w : where) {
        std::vector<int32_t>& syms = words_[w];
        bool has = false;
        for (size_t i = 0; i + 1 < syms.size(); ++i) {
          if (syms[i] == top.left && syms[i + 1] == top.right) {
            has = true;
            break;
          }
        }
        if (!has) continue;
        AddPairs(w, -1);
        MergeInPlace(syms, top.left, top.right, id);
        AddPairs(w, +1);
      }
      pair_counts_.erase(key);
      for (uint64_t k : touched_) {
        auto c = pair_counts_.find(k);
        if (c == pair_counts_.end()) continue;
        if (c->second <= 0) {
          pair_counts_.erase(c);
          continue;
        }
        const int32_t l = static_cast<int32_t>(k >> 32), r = static_cast<int32_t>(k & 0xffffffff);
        if (l == id || r == id) heap.push({c->second, l, r});  // new pairs with the new token
      }
      if (options_.progress_every > 0 && model_.merges.size() % options_.progress_every == 0) {
        std::fprintf(stderr, "bpe: %zu merges, vocab %zu, last count %lld\n", model_.merges.size(),
                     model_.tokens.size(), static_cast<long long>(current));
      }
    }
    for (const std::string& s : options_.special_tokens) {
      model_.special_ids.push_back(static_cast<int32_t>(model_.tokens.size()));
      model_.tokens.push_back(s);
    }
    return std::move(model_);
  }

 private:
  void AddPairs(int32_t w, int64_t sign) {
    const std::vector<int32_t>& syms = words_[w];
    for (size_t i = 0; i + 1 < syms.size(); ++i) {
      const uint64_t key = PairKey(syms[i], syms[i + 1]);
      pair_counts_[key] += sign * counts_[w];
      if (sign > 0) {
        std::vector<int32_t>& list = pair_words_[key];
        if (list.empty() || list.back() != w) list.push_back(w);
      }
      touched_.push_back(key);
    }
  }

  BpeTrainOptions options_;
  BpeModel model_;
  bool has_text_ = false;
  std::array<int32_t, 256> byte_id_{};
  absl::flat_hash_map<std::string, int32_t> token_ids_;
  absl::flat_hash_map<std::string, int64_t> piece_counts_;
  std::vector<std::vector<int32_t>> words_;
  std::vector<int64_t> counts_;
  absl::flat_hash_map<uint64_t, int64_t> pair_counts_;
  // Words that held the pair at some point (may be stale; checked when used).
  absl::flat_hash_map<uint64_t, std::vector<int32_t>> pair_words_;
  std::vector<uint64_t> touched_;
};

absl::Status CheckOptions(const BpeTrainOptions& options) {
  for (const std::string& s : options.special_tokens) {
    if (s.empty()) return absl::InvalidArgumentError("special tokens: an empty token");
  }
  const int minimum = 256 + static_cast<int>(options.special_tokens.size());
  if (options.vocab_size < minimum) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--vocab-size ", options.vocab_size, " is smaller than the byte alphabet (256) plus ",
        options.special_tokens.size(), " special token(s): at least ", minimum));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<BpeModel> TrainBpeOnTexts(const std::vector<std::string>& texts,
                                         const BpeTrainOptions& options) {
  if (absl::Status s = CheckOptions(options); !s.ok()) return s;
  Trainer trainer(options);
  for (const std::string& t : texts) trainer.AddText(t);
  return trainer.Run();
}

absl::StatusOr<BpeModel> TrainBpe(const std::vector<std::string>& corpus_files,
                                  const BpeTrainOptions& options) {
  if (absl::Status s = CheckOptions(options); !s.ok()) return s;
  if (corpus_files.empty()) return absl::InvalidArgumentError("--corpus: no file given");
  for (const std::string& f : corpus_files) {  // every file readable before the long work
    std::ifstream in(f, std::ios::binary);
    if (!in) return absl::NotFoundError(absl::StrCat(f, ": cannot be read"));
  }
  Trainer trainer(options);
  for (const std::string& f : corpus_files) {
    std::ifstream in(f, std::ios::binary);
    std::ostringstream all;
    all << in.rdbuf();
    if (in.bad()) return absl::NotFoundError(absl::StrCat(f, ": read error"));
    trainer.AddText(all.str());
  }
  absl::StatusOr<BpeModel> model = trainer.Run();
  if (!model.ok() && absl::IsInvalidArgument(model.status())) {
    return absl::InvalidArgumentError(
        absl::StrCat(corpus_files.size() == 1 ? corpus_files[0] : "--corpus", ": ",
                     model.status().message()));
  }
  return model;
}

std::string ByteLevelString(absl::string_view bytes) {
  const std::array<uint32_t, 256>& map = lm::ByteToCodePoint();
  std::string out;
  for (unsigned char c : bytes) lm::AppendUtf8(map[c], out);
  return out;
}

absl::Status WriteBpeModel(const BpeModel& model, const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat(dir, ": cannot create: ", ec.message()));
  std::vector<bool> special(model.tokens.size(), false);
  for (int32_t id : model.special_ids) special[id] = true;
  nlohmann::ordered_json vocab = nlohmann::ordered_json::object();
  for (size_t id = 0; id < model.tokens.size(); ++id) {
    vocab[special[id] ? model.tokens[id] : ByteLevelString(model.tokens[id])] = id;
  }
  auto write = [&](const std::string& name, const std::string& text) -> absl::Status {
    const std::string path = (std::filesystem::path(dir) / name).string();
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
    out.close();
    if (!out) return absl::InternalError(absl::StrCat(path, ": write failed"));
    return absl::OkStatus();
  };
  if (absl::Status s = write("vocab.json", vocab.dump()); !s.ok()) return s;
  std::string merges = "#version: 0.2\n";
  for (const auto& [l, r] : model.merges) {
    absl::StrAppend(&merges, ByteLevelString(model.tokens[l]), " ", ByteLevelString(model.tokens[r]),
                    "\n");
  }
  if (absl::Status s = write("merges.txt", merges); !s.ok()) return s;
  if (!model.special_ids.empty()) {
    const std::string& eos = model.tokens[model.special_ids[0]];
    nlohmann::ordered_json map = {{"bos_token", eos}, {"eos_token", eos}, {"unk_token", eos}};
    if (absl::Status s = write("special_tokens_map.json", map.dump(2)); !s.ok()) return s;
    nlohmann::ordered_json config = {{"tokenizer_class", "GPT2Tokenizer"},
                                     {"model_max_length", 1024},
                                     {"add_prefix_space", false},
                                     {"bos_token", eos},
                                     {"eos_token", eos},
                                     {"unk_token", eos}};
    if (absl::Status s = write("tokenizer_config.json", config.dump(2)); !s.ok()) return s;
  }
  return absl::OkStatus();
}

std::vector<int32_t> SegmentWithMerges(const BpeModel& model, absl::string_view text) {
  static const std::array<uint8_t, 256> order = ByteOrder();
  std::array<int32_t, 256> byte_id{};
  for (int i = 0; i < 256; ++i) byte_id[order[i]] = i;
  absl::flat_hash_map<std::string, int32_t> ids;
  for (size_t i = 0; i < model.tokens.size(); ++i) ids.emplace(model.tokens[i], static_cast<int32_t>(i));
  std::vector<int32_t> out;
  for (size_t p = 0; p < text.size();) {
    const size_t end = lm::bpe_internal::NextPieceEnd(text, p);
    std::vector<int32_t> syms;
    for (unsigned char c : text.substr(p, end - p)) syms.push_back(byte_id[c]);
    for (const auto& [l, r] : model.merges) {
      if (syms.size() < 2) break;
      MergeInPlace(syms, l, r, ids.at(model.tokens[l] + model.tokens[r]));
    }
    out.insert(out.end(), syms.begin(), syms.end());
    p = end;
  }
  return out;
}

}  // namespace helpline::train
