// helpline-generate: greedy continuation of prompt ids (or text) with our GPT-2 model, printed
// as one JSON line in the format of shared/tools/llamacpp's greedy.mjs and reference.py, so
// that the three engines can be compared with compare.py.
//
//   helpline-generate --model DIR --prompt-ids 464,2068,7586 --n 32 [--logprobs 5]
//   helpline-generate --model DIR --prompt "The quick brown" --n 32
//
// Never stops at EOS. Errors go to stderr with a non-zero exit code.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <numeric>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "lm/model/gpt2.h"
#include "lm/tokenizer/bpe.h"
#include "nlohmann/json.hpp"

namespace {

int Fail(const std::string& message, int code = 1) {
  std::cerr << "helpline-generate: " << message << "\n";
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Greedy GPT-2 continuation as one JSON line (the llama.cpp oracle's format)"};
  std::string model_dir, prompt_ids_text, prompt_text;
  int n = 32, logprobs = 0, threads = 0;
  app.add_option("--model", model_dir, "Hugging Face GPT-2 folder (config.json, model.safetensors)")->required();
  auto* ids_opt = app.add_option("--prompt-ids", prompt_ids_text, "comma-separated prompt token ids");
  auto* text_opt = app.add_option("--prompt", prompt_text, "prompt text (tokenized with the folder's vocab.json/merges.txt)");
  ids_opt->excludes(text_opt);
  app.add_option("--n", n, "tokens to generate")->check(CLI::NonNegativeNumber);
  app.add_option("--logprobs", logprobs, "top-K log-probabilities per generated step")->check(CLI::NonNegativeNumber);
  app.add_option("--threads", threads, "intra-op threads (0: all cores)")->check(CLI::NonNegativeNumber);
  CLI11_PARSE(app, argc, argv);
  if (ids_opt->count() == 0 && text_opt->count() == 0) return Fail("give --prompt-ids or --prompt", 2);

  auto model = helpline::lm::Gpt2Model::Load(model_dir, {.threads = threads});
  if (!model.ok()) return Fail(std::string(model.status().ToString()));
  const helpline::lm::Gpt2Config& config = (*model)->config();

  std::unique_ptr<helpline::lm::BpeTokenizer> tokenizer;
  std::vector<int32_t> prompt;
  if (text_opt->count() > 0) {
    auto loaded = helpline::lm::BpeTokenizer::Load(model_dir);
    if (!loaded.ok()) return Fail(std::string(loaded.status().ToString()));
    tokenizer = std::move(*loaded);
    prompt = tokenizer->Encode(prompt_text);
  } else {
    for (absl::string_view piece : absl::StrSplit(prompt_ids_text, ',', absl::SkipWhitespace())) {
      int32_t id;
      if (!absl::SimpleAtoi(piece, &id)) return Fail("--prompt-ids: \"" + std::string(piece) + "\" is not an id", 2);
      prompt.push_back(id);
    }
  }
  if (prompt.empty()) return Fail("the prompt is empty", 2);
  // The last generated token is not fed back, so prompt + n - 1 positions are used.
  if (static_cast<int64_t>(prompt.size()) + n - 1 > config.n_positions) {
    return Fail("prompt (" + std::to_string(prompt.size()) + " ids) + --n " + std::to_string(n) +
                    " exceeds the context length n_positions=" + std::to_string(config.n_positions),
                2);
  }

  auto cache = (*model)->NewCache();
  std::vector<float> logits;
  std::vector<int32_t> ids;
  nlohmann::json top = nlohmann::json::array();
  std::vector<int32_t> feed = prompt;
  const int vocab = config.vocab_size;
  std::vector<int> order(vocab);
  for (int step = 0; step < n; ++step) {
    helpline::lm::StepInput input{cache.get(), feed};
    absl::Status status = (*model)->Step({&input, 1}, logits);
    if (!status.ok()) return Fail(std::string(status.ToString()));
    const int best = static_cast<int>(std::max_element(logits.begin(), logits.begin() + vocab) - logits.begin());
    ids.push_back(best);
    if (logprobs > 0) {
      double log_sum = 0.0;
      const double max_logit = logits[best];
      for (int v = 0; v < vocab; ++v) log_sum += std::exp(static_cast<double>(logits[v]) - max_logit);
      log_sum = max_logit + std::log(log_sum);
      const int k = std::min(logprobs, vocab);
      std::iota(order.begin(), order.end(), 0);
      std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int a, int b) {
        return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
      });
      nlohmann::json step_top = nlohmann::json::array();
      for (int j = 0; j < k; ++j) step_top.push_back({order[j], logits[order[j]] - log_sum});
      top.push_back(std::move(step_top));
    }
    feed.assign(1, best);
  }

  nlohmann::json out = {{"prompt_ids", prompt}, {"ids", ids}};
  if (logprobs > 0) out["top"] = std::move(top);
  if (tokenizer != nullptr) out["text"] = tokenizer->Decode(ids);
  std::cout << out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  return 0;
}
