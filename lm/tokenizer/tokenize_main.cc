// helpline-tokenize: GPT-2 BPE over JSONL.
//   helpline-tokenize --dir DIR [--special] < texts.jsonl > ids.jsonl
// reads one {"text": "..."} object (or a bare JSON string) per line and writes {"ids":[...]}
// per line. With --bench-runs N it instead encodes all the texts N times and prints one JSON
// line of timings (median over the runs; loading and I/O excluded).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "lm/tokenizer/bpe.h"
#include "nlohmann/json.hpp"

namespace {

int Fail(const std::string& message) {
  std::cerr << "helpline-tokenize: " << message << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"GPT-2 byte-level BPE over JSONL ({\"text\"} in, {\"ids\"} out)"};
  std::string dir;
  if (const char* env = std::getenv("HELPLINE_GPT2_BPE_DIR")) dir = env;
  bool special = false;
  int bench_runs = 0;
  app.add_option("--dir", dir,
                 "tokenizer folder (vocab.json+merges.txt or encoder.json+vocab.bpe); "
                 "default $HELPLINE_GPT2_BPE_DIR");
  app.add_flag("--special", special, "turn added special tokens in the text into their ids");
  app.add_option("--bench-runs", bench_runs, "encode all texts this many times and print timings")
      ->check(CLI::Range(1, 1000));
  CLI11_PARSE(app, argc, argv);
  if (dir.empty()) return Fail("no tokenizer folder: pass --dir or set HELPLINE_GPT2_BPE_DIR");

  auto tokenizer = helpline::lm::BpeTokenizer::Load(dir);
  if (!tokenizer.ok()) return Fail(tokenizer.status().ToString());
  const helpline::lm::BpeTokenizer& tok = **tokenizer;

  std::vector<std::string> texts;
  std::string line;
  size_t line_no = 0;
  while (std::getline(std::cin, line)) {
    ++line_no;
    if (line.empty()) continue;
    nlohmann::json json = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (json.is_object() && json.contains("text") && json["text"].is_string()) {
      texts.push_back(json["text"].get<std::string>());
    } else if (json.is_string()) {
      texts.push_back(json.get<std::string>());
    } else {
      return Fail(
          absl::StrCat("stdin line ", line_no, ": expected {\"text\": string} or a string"));
    }
  }

  auto encode = [&](const std::string& text) {
    return special ? tok.EncodeWithSpecialTokens(text) : tok.Encode(text);
  };

  if (bench_runs == 0) {
    std::string out;
    for (const std::string& text : texts) {
      out.clear();
      out += "{\"ids\":[";
      bool first = true;
      for (int32_t id : encode(text)) {
        if (!first) out += ',';
        first = false;
        absl::StrAppend(&out, id);
      }
      out += "]}\n";
      std::fwrite(out.data(), 1, out.size(), stdout);
    }
    return std::fflush(stdout) == 0 ? 0 : 1;
  }

  size_t bytes = 0;
  for (const std::string& text : texts) bytes += text.size();
  std::vector<double> seconds;
  size_t tokens = 0;
  std::vector<int32_t> ids;
  for (int run = 0; run < bench_runs; ++run) {
    tokens = 0;
    const auto start = std::chrono::steady_clock::now();
    for (const std::string& text : texts) {
      ids.clear();
      if (special) {
        ids = tok.EncodeWithSpecialTokens(text);
      } else {
        tok.EncodeTo(text, ids);
      }
      tokens += ids.size();
    }
    seconds.push_back(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::vector<double> sorted = seconds;
  std::sort(sorted.begin(), sorted.end());
  const double median = sorted[sorted.size() / 2];
  nlohmann::json result = {{"texts", texts.size()},
                           {"bytes", bytes},
                           {"tokens", tokens},
                           {"runs_s", seconds},
                           {"median_s", median},
                           {"mb_per_s", bytes / 1e6 / median},
                           {"tokens_per_s", tokens / median}};
  std::cout << result.dump() << "\n";
  return 0;
}
