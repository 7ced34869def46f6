// Engine throughput on a model folder: for each concurrency, that many streams each
// generating --new tokens (greedy) after a --prompt-token prompt; prints aggregate decode
// tokens/s and time to first token p50/p99, then prefill time of one prompt, and the
// prefix-cache effect on a second turn. Run under the model lock:
//   flock /tmp/helpline-model.lock build/bin/lm_serving_bench --model DIR
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "common/metrics/metrics.h"
#include "lm/serving/engine.h"

namespace helpline::lm {
namespace {

using Clock = std::chrono::steady_clock;

struct Batch {
  double seconds = 0;
  int tokens = 0;
  std::vector<double> ttft;  // seconds
  std::vector<int> cached;
};

std::vector<int32_t> Prompt(int length, int salt, int vocab) {
  std::vector<int32_t> ids(length);
  uint64_t x = 0x9E3779B97F4A7C15ull * (salt + 1);
  for (int& id : ids) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    id = static_cast<int32_t>(x % static_cast<uint64_t>(std::min(vocab, 50000)));
  }
  return ids;
}

Batch RunBatch(Engine& engine, const std::vector<std::vector<int32_t>>& prompts, int new_tokens,
               const std::string& key_prefix = "") {
  std::mutex mu;
  std::condition_variable cv;
  int left = static_cast<int>(prompts.size());
  Batch batch;
  const Clock::time_point start = Clock::now();
  for (size_t i = 0; i < prompts.size(); ++i) {
    GenerationRequest request;
    request.prompt = prompts[i];
    request.max_tokens = new_tokens;
    if (!key_prefix.empty()) request.cache_key = key_prefix + std::to_string(i);
    request.on_done = [&](absl::StatusOr<GenerationResult> result) {
      std::lock_guard lock(mu);
      if (result.ok()) {
        for (const CandidateResult& c : result->candidates) batch.tokens += c.ids.size();
        batch.ttft.push_back(std::chrono::duration<double>(result->time_to_first_token).count());
        batch.cached.push_back(result->cached_prompt_tokens);
      } else {
        std::fprintf(stderr, "request failed: %s\n", result.status().ToString().c_str());
      }
      if (--left == 0) cv.notify_all();
    };
    absl::StatusOr<uint64_t> id = engine.Submit(std::move(request));
    if (!id.ok()) {
      std::fprintf(stderr, "submit: %s\n", id.status().ToString().c_str());
      std::lock_guard lock(mu);
      --left;
    }
  }
  std::unique_lock lock(mu);
  cv.wait(lock, [&] { return left == 0; });
  batch.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  std::sort(batch.ttft.begin(), batch.ttft.end());
  return batch;
}

double Percentile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  return sorted[std::min(sorted.size() - 1, static_cast<size_t>(q * sorted.size()))];
}

int Main(int argc, char** argv) {
  CLI::App app("Throughput of the serving engine on a GPT-2 folder");
  std::string model_dir;
  int prompt_tokens = 128, new_tokens = 64, threads = 0;
  std::vector<int> concurrency = {1, 4, 16, 64};
  EngineOptions options;
  app.add_option("--model", model_dir, "GPT-2 folder")->required();
  app.add_option("--prompt", prompt_tokens, "prompt tokens per stream");
  app.add_option("--new", new_tokens, "generated tokens per stream");
  app.add_option("--concurrency", concurrency, "streams at once");
  app.add_option("--threads", threads, "intra-op threads (0: default)");
  app.add_option("--max-batch-tokens", options.max_batch_tokens);
  app.add_option("--prefill-chunk", options.prefill_chunk);
  CLI11_PARSE(app, argc, argv);

  auto model = Gpt2Model::Load(model_dir, LoadOptions{threads});
  if (!model.ok()) {
    std::fprintf(stderr, "%s\n", model.status().ToString().c_str());
    return 1;
  }
  auto tokenizer = BpeTokenizer::Load(model_dir);
  if (!tokenizer.ok()) {
    std::fprintf(stderr, "%s\n", tokenizer.status().ToString().c_str());
    return 1;
  }
  const Gpt2Config& config = (*model)->config();
  options.max_running_sequences = std::max(options.max_running_sequences,
                                           *std::max_element(concurrency.begin(), concurrency.end()));
  metrics::Registry registry;
  Engine engine(**model, **tokenizer, options, registry);
  std::printf("model %s: %d layers, %d wide, vocab %d; prompt %d, new %d tokens\n",
              model_dir.c_str(), config.n_layer, config.n_embd, config.vocab_size, prompt_tokens,
              new_tokens);
  RunBatch(engine, {Prompt(16, 999, config.vocab_size)}, 4);  // warm-up
  std::printf("%8s %12s %12s %12s %10s\n", "streams", "tokens/s", "ttft p50 ms", "ttft p99 ms",
              "seconds");
  for (int n : concurrency) {
    std::vector<std::vector<int32_t>> prompts;
    for (int i = 0; i < n; ++i) prompts.push_back(Prompt(prompt_tokens, i, config.vocab_size));
    Batch b = RunBatch(engine, prompts, new_tokens);
    std::printf("%8d %12.1f %12.1f %12.1f %10.2f\n", n, b.tokens / b.seconds,
                1e3 * Percentile(b.ttft, 0.5), 1e3 * Percentile(b.ttft, 0.99), b.seconds);
  }
  // Prefill of one 256-token prompt (1 new token: the time is the prefill).
  const int long_prompt = std::min(256, config.n_positions - 2);
  Batch prefill = RunBatch(engine, {Prompt(long_prompt, 500, config.vocab_size)}, 1);
  std::printf("prefill %d tokens: %.1f ms\n", long_prompt, 1e3 * prefill.seconds);
  // Session turns: a first turn, then a second whose prompt extends the first.
  const std::vector<int32_t> turn1 = Prompt(prompt_tokens, 600, config.vocab_size);
  RunBatch(engine, {turn1}, new_tokens, "bench-session-");
  std::vector<int32_t> turn2 = turn1;
  for (int32_t id : Prompt(new_tokens + 24, 601, config.vocab_size)) turn2.push_back(id);
  Batch warm = RunBatch(engine, {turn2}, 1, "bench-session-");
  Batch cold = RunBatch(engine, {turn2}, 1);
  std::printf("second turn (%zu prompt tokens): %d from the prefix cache, %.1f ms vs %.1f ms cold\n",
              turn2.size(), warm.cached.empty() ? 0 : warm.cached[0], 1e3 * warm.seconds,
              1e3 * cold.seconds);
  return 0;
}

}  // namespace
}  // namespace helpline::lm

int main(int argc, char** argv) { return helpline::lm::Main(argc, argv); }
