// Latency of NluModel::Predict on one utterance (intent + slots + encoding), one libtorch
// thread: bench_nlu_model --model DIR [--text "..." | --texts FILE] [--iterations N]. Prints
// p50/p90/p99/max in milliseconds. `--texts`: one utterance per line, taken in turn (real
// traffic: lengths vary, and libtorch's kernels cost more when shapes change from call to call).
// Run under `flock /tmp/helpline-model.lock`.
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "nlu/model/featurizer.h"
#include "nlu/model/nlu_model.h"

int main(int argc, char** argv) {
  CLI::App app{"p50/p99 latency of one utterance through a trained NLU model folder"};
  std::string dir;
  std::string text =
      "hi there i ordered a pair of red running shoes last week and i still have not "
      "received them yet";
  std::string texts_path;
  int iterations = 2000;
  int threads = 1;
  app.add_option("--model", dir, "model folder")->required();
  app.add_option("--text", text, "the utterance (default: 20 words)");
  app.add_option("--texts", texts_path, "a file of utterances, one per line, used in turn")
      ->check(CLI::ExistingFile);
  app.add_option("--iterations", iterations, "timed calls (after 100 warm-up calls)");
  app.add_option("--threads", threads, "libtorch threads");
  CLI11_PARSE(app, argc, argv);
  torch::set_num_threads(threads);
  auto model = helpline::nlu::model::NluModel::Load(dir);
  if (!model.ok()) {
    std::fprintf(stderr, "%s\n", std::string(model.status().message()).c_str());
    return 1;
  }
  std::vector<std::string> texts;
  if (!texts_path.empty()) {
    std::ifstream in(texts_path);
    for (std::string line; std::getline(in, line);) {
      if (!line.empty()) texts.push_back(line);
    }
    if (texts.empty()) {
      std::fprintf(stderr, "%s: no utterances\n", texts_path.c_str());
      return 1;
    }
  } else {
    texts.push_back(text);
  }
  size_t tokens = 0;
  for (const std::string& t : texts) tokens += helpline::nlu::model::Tokenize(t).size();
  for (int i = 0; i < 100; ++i) (void)(*model)->Predict(texts[i % texts.size()]);
  std::vector<double> ms;
  ms.reserve(iterations);
  for (int i = 0; i < iterations; ++i) {
    const auto start = std::chrono::steady_clock::now();
    auto p = (*model)->Predict(texts[i % texts.size()]);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                     .count());
    if (!p.ok()) return 1;
  }
  std::sort(ms.begin(), ms.end());
  auto q = [&](double f) { return ms[static_cast<size_t>(f * (ms.size() - 1))]; };
  std::printf(
      "model %s (ensemble %d), %zu utterance(s) of %.1f tokens on average, %d thread(s), %d calls: "
      "p50 %.3f ms  p90 %.3f ms  p99 %.3f ms  max %.3f ms\n",
      dir.c_str(), (*model)->info().config.ensemble, texts.size(),
      static_cast<double>(tokens) / texts.size(), threads, iterations, q(0.5), q(0.9), q(0.99),
      ms.back());
  return 0;
}
