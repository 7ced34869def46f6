#include "lm/tokenizer/bpe.h"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace helpline::lm {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

fs::path Gpt2Dir() {
  if (const char* dir = std::getenv("HELPLINE_GPT2_BPE_DIR")) return dir;
  const char* source = std::getenv("HELPLINE_SOURCE_DIR");
  return fs::path(source ? source : ".") / ".." / "shared" / "data" / "gpt2_bpe";
}

std::string ReadAll(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void WriteFile(const fs::path& path, absl::string_view content) {
  std::ofstream out(path, std::ios::binary);
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
}

// A fresh empty directory, removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ =
        fs::temp_directory_path() / absl::StrCat("helpline_bpe_test_", getpid(), "_", counter++);
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// True when `s` is well-formed UTF-8 (nothing to replace).
bool IsValidUtf8(absl::string_view s) {
  std::string out;
  return AppendValidUtf8(s, false, out) == 0 && out == s;
}

class Gpt2TokenizerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!fs::is_directory(Gpt2Dir())) return;
    auto loaded = BpeTokenizer::Load(Gpt2Dir().string());
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    tokenizer_ = loaded->release();
  }
  static void TearDownTestSuite() {
    delete tokenizer_;
    tokenizer_ = nullptr;
  }
  void SetUp() override {
    if (!fs::is_directory(Gpt2Dir())) {
      GTEST_SKIP() << "GPT-2 tokenizer files not found at " << Gpt2Dir()
                   << " (set HELPLINE_GPT2_BPE_DIR)";
    }
    ASSERT_NE(tokenizer_, nullptr);
  }
  const BpeTokenizer& tok() { return *tokenizer_; }

  static BpeTokenizer* tokenizer_;
};
BpeTokenizer* Gpt2TokenizerTest::tokenizer_ = nullptr;

TEST_F(Gpt2TokenizerTest, AllTestVectorsMatch) {
  std::ifstream in(Gpt2Dir() / "test_vectors.jsonl");
  ASSERT_TRUE(in) << "test_vectors.jsonl missing in " << Gpt2Dir();
  std::string line;
  int lines = 0;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    ++lines;
    const nlohmann::json v = nlohmann::json::parse(line);
    const std::string text = v.at("text").get<std::string>();
    const std::vector<int32_t> want = v.at("ids").get<std::vector<int32_t>>();
    EXPECT_EQ(tok().Encode(text), want) << "text: " << text;
    EXPECT_EQ(tok().Decode(want), text);
    EXPECT_EQ(static_cast<int>(want.size()), v.at("n_tokens").get<int>());
  }
  EXPECT_EQ(lines, 25);
}

TEST_F(Gpt2TokenizerTest, VocabAndSpecialTokens) {
  EXPECT_EQ(tok().vocab_size(), 50257);
  EXPECT_EQ(tok().eos_id(), 50256);
  EXPECT_EQ(tok().TokenId("<|endoftext|>"), 50256);
  EXPECT_EQ(tok().TokenId("\u0120the"), 262);  // "Ġthe"
  EXPECT_EQ(tok().TokenBytes(262), " the");
  EXPECT_EQ(tok().TokenBytes(198), "\n");
  EXPECT_EQ(tok().TokenBytes(50256), "<|endoftext|>");
  EXPECT_EQ(tok().TokenBytes(-1), "");
  EXPECT_EQ(tok().TokenBytes(50257), "");
  EXPECT_FALSE(tok().TokenId("no such token").has_value());
  EXPECT_TRUE(tok().IsSpecial(50256));
  EXPECT_FALSE(tok().IsSpecial(262));

  const std::string text = "Hi<|endoftext|>there <|endoftext|><|endoftext|>";
  std::vector<int32_t> want = tok().Encode("Hi");
  want.push_back(50256);
  for (int32_t id : tok().Encode("there ")) want.push_back(id);
  want.push_back(50256);
  want.push_back(50256);
  EXPECT_EQ(tok().EncodeWithSpecialTokens(text), want);
  // Plain Encode treats it as text, like GPT-2's encode().
  const std::vector<int32_t> plain = tok().Encode(text);
  EXPECT_THAT(plain, ::testing::Not(::testing::Contains(50256)));
  EXPECT_EQ(tok().Decode(plain), text);
  EXPECT_EQ(tok().EncodeWithSpecialTokens("<|endoftext|"), tok().Encode("<|endoftext|"));
  EXPECT_THAT(tok().EncodeWithSpecialTokens("<|endoftext|>"), ElementsAre(50256));
  EXPECT_TRUE(tok().EncodeWithSpecialTokens("").empty());
}

TEST_F(Gpt2TokenizerTest, RoundTripsAnyBytes) {
  std::mt19937 rng(42);
  const std::vector<std::string> atoms = {"a",
                                          "Z",
                                          " ",
                                          "  ",
                                          "\n",
                                          "\r\n",
                                          "\t",
                                          "'s",
                                          "'",
                                          "1",
                                          "42",
                                          ".",
                                          "!?",
                                          "你",
                                          "好",
                                          "😀",
                                          "👨‍👩‍👧",
                                          "é",
                                          "e\u0301",
                                          "\u00a0",
                                          "\u0085",
                                          "\ufeff",
                                          "\xff",
                                          "\xe4\xbd",
                                          "\xed\xa0\x80",
                                          "\x80",
                                          "<|endoftext|>",
                                          "http://x.io/a?b=1"};
  for (int i = 0; i < 2000; ++i) {
    std::string text;
    const int n = std::uniform_int_distribution<int>(0, 30)(rng);
    for (int k = 0; k < n; ++k) {
      text += atoms[std::uniform_int_distribution<size_t>(0, atoms.size() - 1)(rng)];
    }
    const std::vector<int32_t> ids = tok().Encode(text);
    for (int32_t id : ids) ASSERT_FALSE(tok().TokenBytes(id).empty()) << id;
    ASSERT_EQ(tok().Decode(ids), text);
    ASSERT_EQ(tok().Decode(tok().EncodeWithSpecialTokens(text)), text);
  }
}

TEST_F(Gpt2TokenizerTest, LongPiecesUseTheSameMergesAsShortOnes) {
  // A piece longer than the linear merge's limit goes through the heap; tiling the same
  // short word must give the short word's ids where BPE cannot merge across copies.
  std::string digits;
  for (int i = 0; i < 500; ++i) digits += "1234567890";
  const std::vector<int32_t> ids = tok().Encode(digits);
  EXPECT_EQ(tok().Decode(ids), digits);
  EXPECT_LT(ids.size(), digits.size() / 2);
  const std::string dashes(4000, '-');
  EXPECT_EQ(tok().Decode(tok().Encode(dashes)), dashes);
  // 64 dashes are one token (10097); 192 are three of them, through the heap merge.
  EXPECT_THAT(tok().Encode(std::string(64, '-')), ElementsAre(10097));
  EXPECT_THAT(tok().Encode(std::string(192, '-')), ElementsAre(10097, 10097, 10097));
}

TEST_F(Gpt2TokenizerTest, EncodeIsThreadSafe) {
  const std::string text =
      "Customer: my order #A-1029 hasn't arrived 😞 订单还没到 — can you check?\r\n\tThanks!!";
  const std::vector<int32_t> want = tok().Encode(text);
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 500; ++i) {
        if (tok().Encode(text) != want) ++bad;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(bad.load(), 0);
}

TEST_F(Gpt2TokenizerTest, StreamDecoderNeverSplitsACharacter) {
  const std::string text =
      "你好，我的订单在哪里？ 👋🏽 family: 👨‍👩‍👧‍👦 flag: 🇯🇵 café naïve Ω≈ç√ "
      "𝔘𝔫𝔦";
  const std::vector<int32_t> ids = tok().Encode(text);
  int partial_tokens = 0;  // Tokens whose bytes end inside a character.
  for (int32_t id : ids) {
    if (!IsValidUtf8(tok().TokenBytes(id))) ++partial_tokens;
  }
  ASSERT_GT(partial_tokens, 3) << "the text should split characters across tokens";

  StreamDecoder decoder(tok());
  std::string joined;
  for (int32_t id : ids) {
    const std::string piece = decoder.Push(id);
    EXPECT_TRUE(IsValidUtf8(piece)) << absl::CHexEscape(piece);
    joined += piece;
  }
  EXPECT_EQ(decoder.Flush(), "");
  EXPECT_EQ(joined, text);
  EXPECT_EQ(tok().DecodeText(ids), text);
}

TEST_F(Gpt2TokenizerTest, StreamDecoderHoldsBytesAndReplacesInvalidOnes) {
  // Byte tokens: GPT-2 has one for every byte; find them by their bytes.
  auto byte_id = [&](unsigned char b) {
    std::vector<int32_t> ids = tok().Encode(std::string(1, static_cast<char>(b)));
    EXPECT_EQ(ids.size(), 1u);
    return ids[0];
  };
  StreamDecoder d(tok());
  EXPECT_EQ(d.Push(byte_id(0xE2)), "");
  EXPECT_EQ(d.Push(byte_id(0x82)), "");
  EXPECT_EQ(d.Push(byte_id(0xAC)), "€");
  EXPECT_EQ(d.Push(byte_id(0xFF)), "\uFFFD");
  EXPECT_EQ(d.Push(byte_id(0xE2)), "");
  EXPECT_EQ(d.Push(byte_id('a')), "\uFFFDa");  // A broken sequence: one U+FFFD.
  EXPECT_EQ(d.Push(byte_id(0xF0)), "");
  EXPECT_EQ(d.Push(byte_id(0x9F)), "");
  EXPECT_EQ(d.Flush(), "\uFFFD");  // Incomplete at the end.
  EXPECT_EQ(d.Flush(), "");
  EXPECT_EQ(d.Push(-5), "");  // An id without a token adds nothing.
  EXPECT_EQ(d.Push(tok().TokenId("\u0120the").value()), " the");
}

TEST(AppendValidUtf8Test, ReplacesMaximalSubpartsLikePython) {
  auto fix = [](absl::string_view s) {
    std::string out;
    AppendValidUtf8(s, false, out);
    return out;
  };
  EXPECT_EQ(fix("abc"), "abc");
  EXPECT_EQ(fix("\xF0\x9F\x98"
                "x"),
            "\uFFFDx");
  EXPECT_EQ(fix("\xED\xA0\x80"), "\uFFFD\uFFFD\uFFFD");            // Surrogate.
  EXPECT_EQ(fix("\xC0\x80"), "\uFFFD\uFFFD");                      // Overlong.
  EXPECT_EQ(fix("\xF4\x90\x80\x80"), "\uFFFD\uFFFD\uFFFD\uFFFD");  // > U+10FFFF.
  EXPECT_EQ(fix("\xE0\xA0"), "\uFFFD");
  EXPECT_EQ(fix("\xF0\x9F\x98\x80"), "😀");
  std::string held_out;
  EXPECT_EQ(AppendValidUtf8("ok\xF0\x9F", true, held_out), 2u);
  EXPECT_EQ(held_out, "ok");
}

// --- Loading, with small hand-made files. ---

// GPT-2's byte alphabet: the vocab.json string of each byte.
std::string ByteSymbol(int b) {
  int n = 0;
  for (int x = 0; x < 256; ++x) {
    const bool printable = (x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || x >= 0xAE;
    const int cp = printable ? x : 256 + n++;
    if (x == b) {
      std::string s;
      if (cp < 0x80) {
        s.push_back(static_cast<char>(cp));
      } else {
        s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
      }
      return s;
    }
  }
  return "";
}

// A small valid tokenizer: the 256 bytes, "ab", "abc", "Ġa", "<|endoftext|>".
nlohmann::json SmallVocab() {
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[ByteSymbol(b)] = b;
  vocab["ab"] = 256;
  vocab["abc"] = 257;
  vocab["\u0120a"] = 258;
  vocab["<|endoftext|>"] = 259;
  return vocab;
}
const char kSmallMerges[] = "#version: 0.2\na b\nab c\n\u0120 a\n";

class LoadTest : public ::testing::Test {
 protected:
  void Write(const std::string& name, absl::string_view content) {
    WriteFile(dir_.path() / name, content);
  }
  void WriteSmall() {
    Write("vocab.json", SmallVocab().dump());
    Write("merges.txt", kSmallMerges);
  }
  absl::StatusOr<std::unique_ptr<BpeTokenizer>> Load() {
    return BpeTokenizer::Load(dir_.path().string());
  }
  // Loading must fail with `code` and a message that contains every one of `parts`.
  void ExpectError(absl::StatusCode code, std::vector<std::string> parts) {
    auto t = Load();
    ASSERT_FALSE(t.ok());
    EXPECT_EQ(t.status().code(), code) << t.status();
    for (const std::string& part : parts) {
      EXPECT_THAT(std::string(t.status().message()), HasSubstr(part));
    }
  }
  TempDir dir_;
};

TEST_F(LoadTest, SmallTokenizerWorks) {
  WriteSmall();
  auto t = Load();
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ((*t)->vocab_size(), 260);
  // " abd": "a b" ranks before "Ġ a", so the space stays alone.
  EXPECT_THAT((*t)->Encode("abc abd a"), ElementsAre(257, ' ', 256, 'd', 258));
  EXPECT_EQ((*t)->eos_id(), 259);
  EXPECT_THAT((*t)->EncodeWithSpecialTokens("ab<|endoftext|>"), ElementsAre(256, 259));
}

TEST_F(LoadTest, AcceptsGpt2FileNamesAndPrefersHuggingFaceNames) {
  Write("encoder.json", SmallVocab().dump());
  Write("vocab.bpe", kSmallMerges);
  auto t = Load();
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_THAT((*t)->Encode("abc"), ElementsAre(257));
  // merges.txt wins over vocab.bpe: without "ab c", "abc" stays two tokens.
  Write("merges.txt", "#version: 0.2\na b\n");
  t = Load();
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_THAT((*t)->Encode("abc"), ElementsAre(256, 'c'));
}

TEST_F(LoadTest, TokenizersOnOneThreadDoNotShareCachedPieces) {
  WriteSmall();
  auto merging = Load();
  ASSERT_TRUE(merging.ok()) << merging.status();
  Write("merges.txt", "#version: 0.2\n");
  auto plain = Load();
  ASSERT_TRUE(plain.ok()) << plain.status();
  for (int i = 0; i < 3; ++i) {
    EXPECT_THAT((*merging)->Encode("abd abd"), ElementsAre(256, 'd', ' ', 256, 'd'));
    EXPECT_THAT((*plain)->Encode("abd abd"), ElementsAre('a', 'b', 'd', ' ', 'a', 'b', 'd'));
  }
}

TEST_F(LoadTest, MissingFilesAreNotFound) {
  ExpectError(absl::StatusCode::kNotFound, {"vocab.json", "encoder.json"});
  Write("vocab.json", SmallVocab().dump());
  ExpectError(absl::StatusCode::kNotFound, {"merges.txt", "vocab.bpe"});
  auto t = BpeTokenizer::Load((dir_.path() / "nope").string());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kNotFound);
}

TEST_F(LoadTest, BadVocabNamesFileAndEntry) {
  Write("merges.txt", kSmallMerges);
  Write("vocab.json", "{\"a\": 1,");
  ExpectError(absl::StatusCode::kInvalidArgument, {"vocab.json", "not valid JSON"});
  Write("vocab.json", "[1, 2]");
  ExpectError(absl::StatusCode::kInvalidArgument, {"vocab.json", "JSON object"});

  nlohmann::json v = SmallVocab();
  v["ab"] = "x";
  Write("vocab.json", v.dump());
  ExpectError(absl::StatusCode::kInvalidArgument, {"vocab.json", "\"ab\"", "integer"});
  v = SmallVocab();
  v["ab"] = -3;
  Write("vocab.json", v.dump());
  ExpectError(absl::StatusCode::kInvalidArgument, {"vocab.json", "\"ab\""});
  v = SmallVocab();
  v["ab"] = 1.5;
  Write("vocab.json", v.dump());
  ExpectError(absl::StatusCode::kInvalidArgument, {"vocab.json", "\"ab\""});
  v = SmallVocab();
  v["abc"] = 256;  // Same id as "ab".
  Write("vocab.json", v.dump());
  ExpectError(absl::StatusCode::kInvalidArgument, {"vocab.json", "\"ab\"", "\"abc\"", "256"});
  v = SmallVocab();
  v["a b"] = 300;  // A raw space is not in the byte alphabet (it is "Ġ").
  Write("vocab.json", v.dump());
  ExpectError(absl::StatusCode::kInvalidArgument, {"vocab.json", "\"a b\"", "byte alphabet"});
  v = SmallVocab();
  v.erase(ByteSymbol('z'));
  Write("vocab.json", v.dump());
  ExpectError(absl::StatusCode::kInvalidArgument, {"vocab.json", "byte 0x7a"});
}

TEST_F(LoadTest, BadMergesNameFileAndLine) {
  Write("vocab.json", SmallVocab().dump());
  Write("merges.txt", "#version: 0.2\na b\nab c d\n");
  ExpectError(absl::StatusCode::kInvalidArgument, {"merges.txt", "line 3", "two tokens"});
  Write("merges.txt", "#version: 0.2\na b\nabc\n");
  ExpectError(absl::StatusCode::kInvalidArgument, {"merges.txt", "line 3"});
  Write("merges.txt", "#version: 0.2\na b\nq zz\n");
  ExpectError(absl::StatusCode::kInvalidArgument, {"merges.txt", "line 3", "\"zz\"", "vocab.json"});
  Write("merges.txt", "#version: 0.2\na b\nb c\n");  // "bc" is not a token.
  ExpectError(absl::StatusCode::kInvalidArgument, {"merges.txt", "line 3", "\"bc\""});
  Write("merges.txt", "#version: 0.2\na b\nab c\na b\n");
  ExpectError(absl::StatusCode::kInvalidArgument, {"merges.txt", "line 4", "repeats line 2"});
  Write("merges.txt", "a b\r\nab c\r\n");  // No header, CRLF: fine.
  EXPECT_TRUE(Load().ok());
}

TEST_F(LoadTest, AddedTokensFromConfigFiles) {
  WriteSmall();
  Write("tokenizer_config.json", R"({
    "added_tokens_decoder": {"260": {"content": "<|user|>", "special": true},
                             "259": {"content": "<|endoftext|>", "special": true}},
    "eos_token": {"content": "<|user|>"}, "bos_token": "<|endoftext|>", "pad_token": null})");
  Write("added_tokens.json", R"({"<|agent|>": 261})");
  Write("special_tokens_map.json",
        R"({"additional_special_tokens": ["<|agent|>"], "unk_token": "<|not-there|>"})");
  auto t = Load();
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ((*t)->vocab_size(), 262);
  EXPECT_EQ((*t)->eos_id(), 260);
  EXPECT_EQ((*t)->TokenBytes(260), "<|user|>");
  EXPECT_EQ((*t)->TokenId("<|agent|>"), 261);
  EXPECT_THAT((*t)->EncodeWithSpecialTokens("<|user|>ab<|agent|><|endoftext|>"),
              ElementsAre(260, 256, 261, 259));
  EXPECT_EQ((*t)->Decode((*t)->EncodeWithSpecialTokens("x<|user|>y")), "x<|user|>y");
  EXPECT_TRUE((*t)->IsSpecial(261));
}

TEST_F(LoadTest, BadAddedTokensNameFile) {
  WriteSmall();
  Write("added_tokens.json", R"({"<|x|>": "7"})");
  ExpectError(absl::StatusCode::kInvalidArgument, {"added_tokens.json", "\"<|x|>\""});
  Write("added_tokens.json", R"({"<|x|>": 256})");  // 256 is "ab" in vocab.json.
  ExpectError(absl::StatusCode::kInvalidArgument, {"vocab.json", "\"ab\"", "<|x|>"});
  Write("added_tokens.json", R"({"<|x|>": 300, "<|y|>": 300})");
  ExpectError(absl::StatusCode::kInvalidArgument, {"added_tokens.json", "300"});
  Write("added_tokens.json", R"({"": 300})");
  ExpectError(absl::StatusCode::kInvalidArgument, {"added_tokens.json", "empty"});
  fs::remove(dir_.path() / "added_tokens.json");
  Write("tokenizer_config.json", R"({"eos_token": 5})");
  ExpectError(absl::StatusCode::kInvalidArgument, {"tokenizer_config.json", "eos_token"});
  Write("tokenizer_config.json", R"({"added_tokens_decoder": {"x1": {"content": "a"}}})");
  ExpectError(absl::StatusCode::kInvalidArgument, {"tokenizer_config.json", "\"x1\""});
  Write("tokenizer_config.json", "nope");
  ExpectError(absl::StatusCode::kInvalidArgument, {"tokenizer_config.json", "JSON"});
}

TEST_F(LoadTest, DamagedFilesNeverCrash) {
  // Truncations and byte flips of a valid pair of files: any outcome but a crash.
  const std::string vocab = SmallVocab().dump();
  const std::string merges = kSmallMerges;
  std::mt19937 rng(3);
  int failures = 0;
  for (int i = 0; i < 300; ++i) {
    std::string v = vocab, m = merges;
    std::string& target = i % 2 ? v : m;
    if (i % 3 == 0) {
      target.resize(std::uniform_int_distribution<size_t>(0, target.size())(rng));
    } else {
      for (int k = 0; k < 3; ++k) {
        target[std::uniform_int_distribution<size_t>(0, target.size() - 1)(rng)] =
            static_cast<char>(std::uniform_int_distribution<int>(0, 255)(rng));
      }
    }
    Write("vocab.json", v);
    Write("merges.txt", m);
    auto t = Load();
    if (!t.ok()) {
      ++failures;
      EXPECT_THAT(std::string(t.status().message()),
                  ::testing::AnyOf(HasSubstr("vocab.json"), HasSubstr("merges.txt")));
    } else {
      EXPECT_EQ((*t)->Decode((*t)->Encode("abc xyz")), "abc xyz");
    }
  }
  EXPECT_GT(failures, 50);
}

TEST(Gpt2FilesTest, HuggingFaceNamesGiveTheSameIds) {
  if (!fs::is_directory(Gpt2Dir())) GTEST_SKIP() << "no GPT-2 files at " << Gpt2Dir();
  TempDir dir;
  fs::copy_file(Gpt2Dir() / "encoder.json", dir.path() / "vocab.json");
  fs::copy_file(Gpt2Dir() / "vocab.bpe", dir.path() / "merges.txt");
  auto t = BpeTokenizer::Load(dir.path().string());
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_THAT((*t)->Encode("Hello world"), ElementsAre(15496, 995));
  // A merges.txt that is cut inside a line is a named error.
  std::string merges = ReadAll(Gpt2Dir() / "vocab.bpe");
  WriteFile(dir.path() / "merges.txt", merges.substr(0, merges.size() / 2) + "\nbogus\n");
  t = BpeTokenizer::Load(dir.path().string());
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(std::string(t.status().message()), HasSubstr("merges.txt: line "));
}

}  // namespace
}  // namespace helpline::lm
