// helpline-bench: load generator for the gateway's ChatService.Converse, a baseline (a bare
// 4-hop echo chain plus 2 Redis round trips, in this process) and their comparison.
//
//   helpline-bench --target 127.0.0.1:50051 --key KEY --sessions 64 --turns 5 --concurrency 1,64
//   helpline-bench --baseline --redis-url redis://127.0.0.1:6379
//   helpline-bench --compare [--json bench.json]
//
// Without --target/--key/--redis-url the values come from the environment (HELPLINE_GRPC,
// HELPLINE_API_KEY, REDIS_URL) or from the file given by --env-file (default
// .run/stack.env, written by `scripts/stack up`).
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"
#include "tools/bench/baseline.h"
#include "tools/bench/load.h"

namespace helpline::bench {
namespace {

struct Flags {
  std::string target;
  std::string key;
  std::string redis_url;
  std::string env_file = ".run/stack.env";
  int sessions = 64;
  int turns = 5;
  std::vector<int> concurrency = {1, 64};
  std::string text = "Hi, where is my order A-1234567? It has not arrived yet.";
  bool baseline = false;
  bool compare = false;
  std::string json_file;
  int warmup_turns = 2;
  int channels = 4;
  int redis_threads = 16;
  double timeout_seconds = 30;
};

std::map<std::string, std::string> ReadEnvFile(const std::string& path) {
  std::map<std::string, std::string> values;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    size_t eq = line.find('=');
    if (eq == std::string::npos || line.empty() || line[0] == '#') continue;
    std::string value = line.substr(eq + 1);
    if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'')) {
      value = value.substr(1, value.size() - 2);
    }
    values[line.substr(0, eq)] = value;
  }
  return values;
}

void FillFromEnvironment(Flags& flags) {
  std::map<std::string, std::string> file = ReadEnvFile(flags.env_file);
  auto lookup = [&](const char* name) -> std::string {
    const char* value = std::getenv(name);
    if (value != nullptr && *value != '\0') return value;
    auto it = file.find(name);
    return it == file.end() ? "" : it->second;
  };
  if (flags.target.empty()) flags.target = lookup("HELPLINE_GRPC");
  if (flags.key.empty()) flags.key = lookup("HELPLINE_API_KEY");
  if (flags.redis_url.empty()) flags.redis_url = lookup("REDIS_URL");
}

struct Measured {
  std::string mode;  // "pipeline" or "baseline"
  LoadResult result;
};

// Warm-up (connections, caches), then the measured run.
LoadResult Measure(const Flags& flags, const std::string& mode, const std::string& target,
                   const std::string& key, int concurrency) {
  const std::string run_id = absl::StrCat(mode, "-", concurrency, "-", std::rand() % 1000000);
  LoadOptions options;
  options.target = target;
  options.api_key = key;
  options.text = flags.text;
  options.channels = flags.channels;
  options.turn_timeout = absl::Seconds(flags.timeout_seconds);
  options.concurrency = concurrency;
  if (flags.warmup_turns > 0) {
    options.sessions = std::max(1, std::min(flags.sessions, concurrency));
    options.turns = flags.warmup_turns;
    options.session_prefix = absl::StrCat("bench-warm-", run_id);
    (void)RunLoad(options);
  }
  options.sessions = flags.sessions;
  options.turns = flags.turns;
  options.session_prefix = absl::StrCat("bench-", run_id);
  return RunLoad(options);
}

const std::vector<std::string>& StageOrder() {
  static const auto* order = new std::vector<std::string>{
      "session_load", "preprocess", "fusion", "dst", "generation", "session_commit"};
  return *order;
}

void PrintHeader() {
  std::printf("%-9s %9s %7s %6s %9s %8s %8s %8s %8s\n", "mode", "in-flight", "turns", "errors",
              "turns/s", "p50 ms", "p90 ms", "p99 ms", "max ms");
}

void PrintRun(const Measured& m) {
  const LoadResult& r = m.result;
  std::printf("%-9s %9d %7lld %6lld %9.1f %8.2f %8.2f %8.2f %8.2f\n", m.mode.c_str(), r.concurrency,
              static_cast<long long>(r.turns), static_cast<long long>(r.errors), r.turns_per_second,
              r.p50_ms, r.p90_ms, r.p99_ms, r.max_ms);
  std::vector<std::string> stages;
  for (const std::string& stage : StageOrder()) {
    auto it = r.stage_median_ms.find(stage);
    if (it != r.stage_median_ms.end()) {
      stages.push_back(absl::StrFormat("%s %.2f", stage, it->second));
    }
  }
  for (const auto& [stage, ms] : r.stage_median_ms) {
    if (std::find(StageOrder().begin(), StageOrder().end(), stage) == StageOrder().end()) {
      stages.push_back(absl::StrFormat("%s %.2f", stage, ms));
    }
  }
  if (!stages.empty())
    std::printf("  stage medians (ms): %s\n", absl::StrJoin(stages, ", ").c_str());
  if (r.errors > 0) std::printf("  first error: %s\n", r.first_error.c_str());
  std::fflush(stdout);
}

nlohmann::json ToJson(const Measured& m) {
  const LoadResult& r = m.result;
  return {{"mode", m.mode},
          {"concurrency", r.concurrency},
          {"turns", r.turns},
          {"errors", r.errors},
          {"first_error", r.first_error},
          {"seconds", r.seconds},
          {"turns_per_second", r.turns_per_second},
          {"p50_ms", r.p50_ms},
          {"p90_ms", r.p90_ms},
          {"p99_ms", r.p99_ms},
          {"max_ms", r.max_ms},
          {"stage_median_ms", r.stage_median_ms}};
}

int Main(int argc, char** argv) {
  Flags flags;
  CLI::App app{"helpline-bench: load for the gateway's ChatService.Converse, and a baseline"};
  app.add_option("--target", flags.target, "gateway gRPC host:port (default $HELPLINE_GRPC)");
  app.add_option("--key", flags.key, "API key (default $HELPLINE_API_KEY)");
  app.add_option("--redis-url", flags.redis_url, "Redis of the baseline (default $REDIS_URL)");
  app.add_option("--env-file", flags.env_file, "KEY=VALUE file with the defaults above")
      ->capture_default_str();
  app.add_option("--sessions", flags.sessions, "N sessions")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--turns", flags.turns, "M turns per session")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--concurrency", flags.concurrency, "sessions in flight; a list runs each")
      ->delimiter(',')
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--text", flags.text, "the customer's text of every turn")->capture_default_str();
  app.add_flag("--baseline", flags.baseline, "run the baseline instead of the gateway");
  app.add_flag("--compare", flags.compare, "run both and print the ratios");
  app.add_option("--json", flags.json_file, "also write the figures to this JSON file");
  app.add_option("--warmup-turns", flags.warmup_turns, "turns per session of the warm-up")
      ->capture_default_str();
  app.add_option("--channels", flags.channels, "gRPC connections the load is spread over")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--redis-threads", flags.redis_threads, "baseline's Redis worker threads")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--timeout", flags.timeout_seconds, "deadline of one turn, seconds")
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  FillFromEnvironment(flags);

  const bool run_pipeline = flags.compare || !flags.baseline;
  const bool run_baseline = flags.compare || flags.baseline;
  if (run_pipeline && (flags.target.empty() || flags.key.empty())) {
    std::cerr << "helpline-bench: --target and --key are needed (or HELPLINE_GRPC and "
                 "HELPLINE_API_KEY, or "
              << flags.env_file << " from `scripts/stack up`)\n";
    return 2;
  }
  if (run_baseline && flags.redis_url.empty()) {
    std::cerr << "helpline-bench: --redis-url is needed for the baseline (or REDIS_URL)\n";
    return 2;
  }

  std::unique_ptr<Baseline> baseline;
  if (run_baseline) {
    absl::StatusOr<std::unique_ptr<Baseline>> started =
        Baseline::Start(flags.redis_url, flags.redis_threads);
    if (!started.ok()) {
      std::cerr << "helpline-bench: baseline: " << started.status() << "\n";
      return 1;
    }
    baseline = std::move(*started);
  }

  std::printf("helpline-bench: %d sessions x %d turns, text %zu bytes%s%s\n", flags.sessions,
              flags.turns, flags.text.size(),
              run_pipeline ? absl::StrCat(", gateway ", flags.target).c_str() : "",
              run_baseline ? absl::StrCat(", baseline redis ", flags.redis_url).c_str() : "");
  PrintHeader();
  std::vector<Measured> runs;
  std::map<int, LoadResult> pipeline, base;
  for (int concurrency : flags.concurrency) {
    if (run_pipeline) {
      Measured m{"pipeline", Measure(flags, "pipeline", flags.target, flags.key, concurrency)};
      PrintRun(m);
      pipeline[m.result.concurrency] = m.result;
      runs.push_back(m);
    }
    if (run_baseline) {
      Measured m{"baseline", Measure(flags, "baseline", baseline->target(), "", concurrency)};
      PrintRun(m);
      base[m.result.concurrency] = m.result;
      runs.push_back(m);
    }
  }

  nlohmann::json json = {{"sessions", flags.sessions},
                         {"turns", flags.turns},
                         {"text_bytes", flags.text.size()},
                         {"runs", nlohmann::json::array()}};
  for (const Measured& m : runs) json["runs"].push_back(ToJson(m));

  int64_t errors = 0;
  for (const Measured& m : runs) errors += m.result.errors;
  if (flags.compare) {
    std::printf("\n%-22s %10s %10s %8s %8s\n", "pipeline vs baseline", "pipeline", "baseline",
                "ratio", "goal");
    nlohmann::json ratios = nlohmann::json::array();
    for (const auto& [concurrency, p] : pipeline) {
      auto it = base.find(concurrency);
      if (it == base.end()) continue;
      const LoadResult& b = it->second;
      const double latency_ratio = b.p50_ms > 0 ? p.p50_ms / b.p50_ms : 0;
      const double throughput_ratio =
          b.turns_per_second > 0 ? p.turns_per_second / b.turns_per_second : 0;
      std::printf("%-22s %10.2f %10.2f %8.2f %8s %s\n",
                  absl::StrCat("p50 ms @", concurrency).c_str(), p.p50_ms, b.p50_ms, latency_ratio,
                  "<= 2", latency_ratio <= 2 ? "ok" : "MISSED");
      std::printf("%-22s %10.1f %10.1f %8.2f %8s %s\n",
                  absl::StrCat("turns/s @", concurrency).c_str(), p.turns_per_second,
                  b.turns_per_second, throughput_ratio, ">= 0.5",
                  throughput_ratio >= 0.5 ? "ok" : "MISSED");
      ratios.push_back({{"concurrency", concurrency},
                        {"p50_ratio", latency_ratio},
                        {"p50_goal_met", latency_ratio <= 2},
                        {"throughput_ratio", throughput_ratio},
                        {"throughput_goal_met", throughput_ratio >= 0.5}});
    }
    json["ratios"] = ratios;
  }
  if (!flags.json_file.empty()) {
    std::ofstream out(flags.json_file);
    out << json.dump(2) << "\n";
    if (!out) {
      std::cerr << "helpline-bench: cannot write " << flags.json_file << "\n";
      return 1;
    }
  }
  return errors > 0 ? 1 : 0;
}

}  // namespace
}  // namespace helpline::bench

int main(int argc, char** argv) { return helpline::bench::Main(argc, argv); }
