// helpline-genbench: speed of the generation service over gRPC, with llama.cpp on the same
// weights and a naive baseline (each request decoded alone, one after another) in one run.
//
//   helpline-genbench --target 127.0.0.1:50064 --model DIR [--pid PID]
//       [--gguf m.gguf --llama-bench ~/.cache/llamacpp-tool/bench_direct]
//       [--prompt-tokens 128] [--gen 128] [--concurrency 1,4,16,64] [--json FILE]
//
// What it measures (every figure a median unless named p99):
//   prefill_ms      the engine's time to first token of a --prefill-tokens (256) prompt,
//                   idle service
//   per level C     C streams at once (their starts spread over one request's duration,
//                   then each sends --rounds requests back to back), each GenerateStream
//                   with a --prompt-tokens prompt and
//                   --gen new tokens (greedy, the service ignores EOS only if the model never
//                   emits it; the real completion_tokens of each response are counted):
//                   aggregate tokens/s = all completion tokens / wall time (prefill
//                   included); time to first token = the engine's (EngineStats) for the
//                   requests after each stream slot's first (they arrive while others
//                   decode), and the first delta on the stream (the reply is released
//                   sentence by sentence after the filters)
//   prefix cache    --sessions sessions of two turns with a cache key: prompt tokens of the
//                   second turn against those served from the cache
//   peak RSS        VmHWM of --pid at the end
//   llama.cpp       bench_direct on --gguf (same weights, same threads, batches, lengths)
//   naive           in this process: lm::Gpt2Model, one sequence at a time, greedy
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "grpcpp/grpcpp.h"
#include "helpline/generation/v1/generation_service.grpc.pb.h"
#include "lm/model/gpt2.h"
#include "lm/tokenizer/bpe.h"
#include "nlohmann/json.hpp"

namespace helpline::genbench {
namespace {

namespace gv1 = helpline::generation::v1;
using Clock = std::chrono::steady_clock;

struct Flags {
  std::string target = "127.0.0.1:50064";
  std::string model_dir;
  int pid = 0;
  std::string gguf;
  std::string llama_bench;
  int threads = 2;
  int prompt_tokens = 128;
  int prefill_tokens = 256;
  int gen = 128;
  std::vector<int> concurrency = {1, 4, 16, 64};
  int rounds = 3;
  int sessions = 8;
  bool naive = true;
  std::string domain = "shop";
  std::string json_file;
};

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double Quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(q * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

// Customer text of about `tokens` tokens (counted by the model's tokenizer).
std::string TextOfTokens(const lm::BpeTokenizer& tokenizer, int tokens, int variant) {
  static const char* kWords[] = {"my",     "order",   "has",   "not",      "arrived", "yet",
                                 "and",    "I",       "would", "like",     "to",      "know",
                                 "where",  "the",     "parcel", "is",      "today",   "please",
                                 "check",  "delivery", "status", "for",    "me",      "thanks"};
  std::string text = absl::StrCat("Request ", variant, ":");
  size_t i = static_cast<size_t>(variant);
  while (static_cast<int>(tokenizer.Encode(text).size()) < tokens) {
    absl::StrAppend(&text, " ", kWords[i++ % (sizeof(kWords) / sizeof(kWords[0]))]);
  }
  return text;
}

gv1::GenerationContext Context(const Flags& flags, std::string user_text, std::string cache_key) {
  gv1::GenerationContext context;
  context.set_domain(flags.domain);
  context.set_language("en");
  context.set_user_text(std::move(user_text));
  context.set_cache_key(std::move(cache_key));
  context.mutable_state()->set_domain(flags.domain);
  context.mutable_state()->set_active_intent("order_status");
  context.mutable_state()->set_language("en");
  return context;
}

struct StreamResult {
  bool ok = false;
  std::string error;
  double ttft_ms = 0;         // first delta
  double engine_ttft_ms = 0;  // the engine's first sampled token (EngineStats)
  double total_ms = 0;
  uint32_t completion_tokens = 0;
  uint32_t prompt_tokens = 0;
  uint32_t cached_tokens = 0;
  std::string text;
};

StreamResult RunStream(gv1::GenerationService::Stub& stub, const gv1::GenerationContext& context,
                       int max_tokens) {
  gv1::GenerateStreamRequest request;
  *request.mutable_context() = context;
  request.mutable_params()->set_max_tokens(static_cast<uint32_t>(max_tokens));
  request.mutable_params()->set_n(1);
  grpc::ClientContext call;
  call.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(10));
  StreamResult result;
  const Clock::time_point start = Clock::now();
  std::unique_ptr<grpc::ClientReader<gv1::GenerateStreamResponse>> reader =
      stub.GenerateStream(&call, request);
  gv1::GenerateStreamResponse message;
  bool first = true;
  while (reader->Read(&message)) {
    if (first) {
      result.ttft_ms = Ms(Clock::now() - start);
      first = false;
    }
    if (message.has_final()) {
      result.completion_tokens = message.final().usage().completion_tokens();
      result.prompt_tokens = message.final().usage().prompt_tokens();
      result.cached_tokens = message.final().usage().cached_prompt_tokens();
      result.engine_ttft_ms = message.final().engine().time_to_first_token_ms();
      // The model's own first candidate (random weights: the chosen reply is mostly the
      // template fallback, which the model never generated).
      if (message.final().candidates_size() > 0) result.text = message.final().candidates(0).text();
    }
  }
  grpc::Status status = reader->Finish();
  result.total_ms = Ms(Clock::now() - start);
  result.ok = status.ok();
  if (!status.ok()) result.error = absl::StrCat(status.error_code(), ": ", status.error_message());
  return result;
}

struct Level {
  int concurrency = 0;
  int requests = 0;
  int errors = 0;
  double wall_ms = 0;
  uint64_t completion_tokens = 0;
  double tokens_per_s = 0;
  double ttft_p50_ms = 0;   // engine time to first token, requests after each slot's first
  double ttft_p99_ms = 0;
  double delta_ttft_p50_ms = 0;  // first delta on the stream (released after the filters)
  double prompt_tokens = 0;
  std::string first_error;
};

// `spread_ms`: stream slot w starts w * spread_ms / concurrency after the first, so that
// requests arrive spread over a request's duration (a steady load) rather than in a herd.
Level RunLevel(gv1::GenerationService::Stub& stub, const Flags& flags,
               const std::vector<std::string>& texts, int concurrency, double spread_ms) {
  Level level;
  level.concurrency = concurrency;
  std::mutex mu;
  std::vector<StreamResult> results;
  const Clock::time_point start = Clock::now();
  std::vector<std::thread> workers;
  for (int w = 0; w < concurrency; ++w) {
    workers.emplace_back([&, w] {
      std::this_thread::sleep_for(std::chrono::microseconds(
          static_cast<int64_t>(spread_ms * 1000.0 * w / concurrency)));
      for (int r = 0; r < flags.rounds; ++r) {
        const std::string& text = texts[static_cast<size_t>(w + r * concurrency) % texts.size()];
        StreamResult result = RunStream(stub, Context(flags, text, ""), flags.gen);
        std::lock_guard lock(mu);
        if (r == 0 && flags.rounds > 1) result.engine_ttft_ms = -1;  // arrived with the herd
        results.push_back(std::move(result));
      }
    });
  }
  for (std::thread& t : workers) t.join();
  level.wall_ms = Ms(Clock::now() - start);
  std::vector<double> ttft;
  std::vector<double> delta_ttft;
  std::vector<double> prompt;
  for (const StreamResult& r : results) {
    ++level.requests;
    if (!r.ok) {
      ++level.errors;
      if (level.first_error.empty()) level.first_error = r.error;
      continue;
    }
    level.completion_tokens += r.completion_tokens;
    if (r.engine_ttft_ms >= 0) ttft.push_back(r.engine_ttft_ms);
    delta_ttft.push_back(r.ttft_ms);
    prompt.push_back(r.prompt_tokens);
  }
  level.tokens_per_s = static_cast<double>(level.completion_tokens) * 1000.0 / level.wall_ms;
  level.ttft_p50_ms = Quantile(ttft, 0.5);
  level.ttft_p99_ms = Quantile(ttft, 0.99);
  level.delta_ttft_p50_ms = Quantile(delta_ttft, 0.5);
  level.prompt_tokens = Quantile(prompt, 0.5);
  return level;
}

long PeakRssKib(int pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return -1;
}

// bench_direct's "RESULT kind=gen ... batch=B ... prefill_ms_med=X ... tok_s_med=Y" lines.
std::map<int, std::map<std::string, double>> RunLlama(const Flags& flags) {
  std::map<int, std::map<std::string, double>> by_batch;
  std::string command = absl::StrCat(flags.llama_bench, " ", flags.gguf, " ", flags.threads, " ",
                                     absl::StrJoin(flags.concurrency, ","), " ",
                                     flags.prompt_tokens, " ", flags.gen, " 2 2>&1");
  std::fprintf(stderr, "[genbench] llama.cpp: %s\n", command.c_str());
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return by_batch;
  char buffer[4096];
  while (std::fgets(buffer, sizeof(buffer), pipe) != nullptr) {
    std::string line(buffer);
    if (line.rfind("RESULT", 0) != 0) continue;
    std::map<std::string, double> fields;
    for (absl::string_view part : absl::StrSplit(line, ' ', absl::SkipWhitespace())) {
      size_t eq = part.find('=');
      if (eq == absl::string_view::npos) continue;
      fields[std::string(part.substr(0, eq))] =
          std::strtod(std::string(part.substr(eq + 1)).c_str(), nullptr);
    }
    by_batch[static_cast<int>(fields["batch"])] = fields;
  }
  pclose(pipe);
  return by_batch;
}

// Naive: one request at a time, prefill then greedy decode, with the model in this process.
struct Naive {
  double prefill_ms = 0;       // --prompt-tokens prompt
  double decode_tok_s = 0;     // one sequence
  double request_ms = 0;       // prefill + gen tokens
};

absl::StatusOr<Naive> RunNaive(const Flags& flags) {
  lm::LoadOptions options;
  options.threads = flags.threads;
  absl::StatusOr<std::unique_ptr<lm::Gpt2Model>> model = lm::Gpt2Model::Load(flags.model_dir, options);
  if (!model.ok()) return model.status();
  const int vocab = (*model)->config().vocab_size;
  std::mt19937 rng(7);
  std::vector<double> prefill;
  std::vector<double> decode;
  std::vector<float> logits;
  for (int rep = 0; rep < 4; ++rep) {
    std::vector<int32_t> prompt(static_cast<size_t>(flags.prompt_tokens));
    for (int32_t& id : prompt) id = static_cast<int32_t>(rng() % static_cast<uint32_t>(vocab - 1));
    std::unique_ptr<lm::KvCache> cache = (*model)->NewCache();
    Clock::time_point t0 = Clock::now();
    lm::StepInput input{cache.get(), prompt};
    if (absl::Status s = (*model)->Step({&input, 1}, logits); !s.ok()) return s;
    Clock::time_point t1 = Clock::now();
    for (int g = 0; g < flags.gen; ++g) {
      int32_t next = static_cast<int32_t>(std::max_element(logits.begin(), logits.begin() + vocab) -
                                          logits.begin());
      lm::StepInput step{cache.get(), absl::Span<const int32_t>(&next, 1)};
      if (absl::Status s = (*model)->Step({&step, 1}, logits); !s.ok()) return s;
    }
    Clock::time_point t2 = Clock::now();
    if (rep == 0) continue;  // warm-up
    prefill.push_back(Ms(t1 - t0));
    decode.push_back(Ms(t2 - t1));
  }
  Naive naive;
  naive.prefill_ms = Quantile(prefill, 0.5);
  const double decode_ms = Quantile(decode, 0.5);
  naive.decode_tok_s = flags.gen * 1000.0 / decode_ms;
  naive.request_ms = naive.prefill_ms + decode_ms;
  return naive;
}

int Main(int argc, char** argv) {
  Flags flags;
  CLI::App app{"helpline-genbench: generation service speed, with llama.cpp and a naive baseline"};
  app.add_option("--target", flags.target, "generation service address");
  app.add_option("--model", flags.model_dir, "the model folder the service runs (tokenizer, naive)")
      ->required();
  app.add_option("--pid", flags.pid, "service process, for its peak RSS");
  app.add_option("--gguf", flags.gguf, "the same weights as GGUF (to_gguf.py), for llama.cpp");
  app.add_option("--llama-bench", flags.llama_bench, "llama.cpp's bench_direct binary");
  app.add_option("--threads", flags.threads, "threads of llama.cpp and the naive baseline");
  app.add_option("--prompt-tokens", flags.prompt_tokens, "prompt length of the decode runs");
  app.add_option("--prefill-tokens", flags.prefill_tokens, "prompt length of the prefill run");
  app.add_option("--gen", flags.gen, "tokens to generate per request");
  app.add_option("--concurrency", flags.concurrency, "streams at once")->delimiter(',');
  app.add_option("--rounds", flags.rounds, "requests per stream slot at each level");
  app.add_option("--sessions", flags.sessions, "two-turn sessions of the prefix cache run");
  app.add_flag("!--no-naive", flags.naive, "skip the naive baseline");
  app.add_option("--domain", flags.domain, "domain name the service serves");
  app.add_option("--json", flags.json_file, "also write every figure as JSON");
  CLI11_PARSE(app, argc, argv);

  absl::StatusOr<std::unique_ptr<lm::BpeTokenizer>> tokenizer =
      lm::BpeTokenizer::Load(flags.model_dir);
  if (!tokenizer.ok()) {
    std::cerr << "error: " << tokenizer.status() << "\n";
    return 2;
  }
  auto channel = grpc::CreateChannel(flags.target, grpc::InsecureChannelCredentials());
  auto stub = gv1::GenerationService::NewStub(channel);
  nlohmann::json report;

  // The service adds a system prompt and labels around the customer's text: measure that
  // overhead once so the prompts come out at the asked lengths.
  StreamResult probe = RunStream(*stub, Context(flags, "Hi", ""), 1);
  if (!probe.ok) {
    std::cerr << "error: the service did not answer: " << probe.error << "\n";
    return 1;
  }
  const int overhead =
      static_cast<int>(probe.prompt_tokens) - static_cast<int>((*tokenizer)->Encode("Hi").size());
  auto texts_of = [&](int tokens, int count) {
    std::vector<std::string> texts;
    for (int i = 0; i < count; ++i) {
      texts.push_back(TextOfTokens(**tokenizer, std::max(1, tokens - overhead), i));
    }
    return texts;
  };

  // Prefill: time to the first (only) token of a long prompt, idle service.
  std::vector<double> prefill;
  uint32_t prefill_prompt = 0;
  for (const std::string& text : texts_of(flags.prefill_tokens, 6)) {
    StreamResult r = RunStream(*stub, Context(flags, text, ""), 1);
    if (!r.ok) {
      std::cerr << "error: " << r.error << "\n";
      return 1;
    }
    prefill.push_back(r.engine_ttft_ms);
    prefill_prompt = r.prompt_tokens;
  }
  prefill.erase(prefill.begin());  // warm-up
  report["prefill"] = {{"prompt_tokens", prefill_prompt}, {"ms_p50", Quantile(prefill, 0.5)}};

  // Decode levels.
  int max_c = *std::max_element(flags.concurrency.begin(), flags.concurrency.end());
  std::vector<std::string> texts = texts_of(flags.prompt_tokens, max_c * flags.rounds);
  // Warm-up, and one request's duration alone, over which the streams' starts are spread.
  Level alone = RunLevel(*stub, flags, texts, 1, 0);
  const double spread_ms = alone.requests > 0 ? alone.wall_ms / alone.requests : 0;
  std::vector<Level> levels;
  for (int c : flags.concurrency) {
    std::fprintf(stderr, "[genbench] %d streams ...\n", c);
    levels.push_back(RunLevel(*stub, flags, texts, c, spread_ms));
  }

  // Prefix cache: two turns per session, the second carrying the first in its history.
  uint64_t second_prompt = 0;
  uint64_t second_cached = 0;
  for (int s = 0; s < flags.sessions; ++s) {
    const std::string key = absl::StrCat("genbench-tenant/session-", s, "-", ::getpid());
    gv1::GenerationContext first = Context(flags, texts[static_cast<size_t>(s) % texts.size()], key);
    StreamResult one = RunStream(*stub, first, 24);
    gv1::GenerationContext second = Context(flags, "And when will it arrive?", key);
    auto* turn = second.add_history();
    turn->set_index(0);
    turn->set_user_text(first.user_text());
    turn->set_reply(one.text);
    turn->set_intent(first.state().active_intent());
    *turn->mutable_state() = first.state();  // as the gateway stores it
    StreamResult two = RunStream(*stub, second, 24);
    second_prompt += two.prompt_tokens;
    second_cached += two.cached_tokens;
  }
  const double prefilled = static_cast<double>(second_prompt - second_cached);
  const double cache_ratio = prefilled > 0 ? static_cast<double>(second_prompt) / prefilled : 0;
  report["prefix_cache"] = {{"second_turn_prompt_tokens", second_prompt},
                            {"second_turn_cached_tokens", second_cached},
                            {"prefill_reduction", cache_ratio}};

  std::map<int, std::map<std::string, double>> llama;
  if (!flags.gguf.empty() && !flags.llama_bench.empty()) llama = RunLlama(flags);
  absl::StatusOr<Naive> naive = absl::UnavailableError("skipped");
  if (flags.naive) naive = RunNaive(flags);

  // Report.
  std::printf("\nprefill: %u-token prompt, %.1f ms (p50, through gRPC)", prefill_prompt,
              Quantile(prefill, 0.5));
  if (llama.count(1)) std::printf("; llama.cpp %d-token prompt %.1f ms", flags.prompt_tokens,
                                  llama[1]["prefill_ms_med"]);
  std::printf("\n\nend to end (prefill + decode of every request, tok/s = generated tokens / "
              "wall time); llama.cpp decode-only in brackets; ttft = engine time to first "
              "token of requests that arrive while the others decode\n");
  std::printf("%-8s %12s %22s %12s %10s %10s %12s %7s\n", "streams", "ours tok/s",
              "llama tok/s [decode]", "naive tok/s", "ttft p50", "ttft p99", "1st delta", "errors");
  const double idle_ttft = levels.empty() ? 0 : levels.front().ttft_p50_ms;
  for (const Level& level : levels) {
    double llama_tok_s = 0;
    double llama_e2e = 0;
    if (llama.count(level.concurrency)) {
      auto& l = llama[level.concurrency];
      llama_tok_s = l["tok_s_med"];
      const double tokens = level.concurrency * flags.gen;
      // bench_direct times prefill and decode apart: put them together like ours.
      if (llama_tok_s > 0) llama_e2e = tokens * 1000.0 / (l["prefill_ms_med"] + tokens * 1000.0 / llama_tok_s);
    }
    double naive_tok_s = naive.ok() ? flags.gen * 1000.0 / naive->request_ms : 0;
    std::printf("%-8d %12.1f %12.1f [%7.1f] %12.1f %8.1fms %8.1fms %10.1fms %7d\n",
                level.concurrency, level.tokens_per_s, llama_e2e, llama_tok_s, naive_tok_s,
                level.ttft_p50_ms, level.ttft_p99_ms, level.delta_ttft_p50_ms, level.errors);
    nlohmann::json row = {{"streams", level.concurrency},
                          {"requests", level.requests},
                          {"errors", level.errors},
                          {"prompt_tokens_p50", level.prompt_tokens},
                          {"completion_tokens", level.completion_tokens},
                          {"tokens_per_s", level.tokens_per_s},
                          {"ttft_p50_ms", level.ttft_p50_ms},
                          {"ttft_p99_ms", level.ttft_p99_ms},
                          {"first_delta_p50_ms", level.delta_ttft_p50_ms},
                          {"llama_tokens_per_s", llama_e2e},
                          {"llama_decode_tokens_per_s", llama_tok_s},
                          {"naive_tokens_per_s", naive_tok_s}};
    if (!level.first_error.empty()) row["first_error"] = level.first_error;
    report["levels"].push_back(row);
  }
  if (levels.size() > 1) {
    const Level* at16 = nullptr;
    for (const Level& level : levels) {
      if (level.concurrency == 16) at16 = &level;
    }
    if (at16 != nullptr && levels.front().tokens_per_s > 0) {
      std::printf("\n16 streams / 1 stream throughput: %.2fx (goal >= 6); ttft 16 / idle: %.2fx "
                  "(goal <= 2)\n",
                  at16->tokens_per_s / levels.front().tokens_per_s,
                  idle_ttft > 0 ? at16->ttft_p50_ms / idle_ttft : 0);
    }
  }
  std::printf("prefix cache: second turns %lu prompt tokens, %lu from the cache: %.2fx fewer "
              "prefilled (goal >= 5)\n",
              static_cast<unsigned long>(second_prompt), static_cast<unsigned long>(second_cached),
              cache_ratio);
  if (naive.ok()) {
    std::printf("naive (in process, one request at a time): prefill %.1f ms, decode %.1f tok/s, "
                "%d-token request %.0f ms; with C requests queued, ttft of the last = C x that\n",
                naive->prefill_ms, naive->decode_tok_s, flags.gen, naive->request_ms);
    report["naive"] = {{"prefill_ms", naive->prefill_ms},
                       {"decode_tokens_per_s", naive->decode_tok_s},
                       {"request_ms", naive->request_ms}};
  } else if (flags.naive) {
    std::printf("naive: %s\n", std::string(naive.status().message()).c_str());
  }
  if (flags.pid > 0) {
    long rss = PeakRssKib(flags.pid);
    std::printf("service peak RSS: %.1f MiB\n", static_cast<double>(rss) / 1024.0);
    report["service_peak_rss_mib"] = static_cast<double>(rss) / 1024.0;
  }
  if (!flags.json_file.empty()) std::ofstream(flags.json_file) << report.dump(2) << "\n";
  return 0;
}

}  // namespace
}  // namespace helpline::genbench

int main(int argc, char** argv) { return helpline::genbench::Main(argc, argv); }
