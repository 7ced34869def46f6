// Microbenchmarks of the preprocess logic (no gRPC): one typical customer turn in English
// and in Chinese, and the steps separately. Run: build/bin/bench_preprocess.
#include <cstdlib>
#include <memory>
#include <string>

#include "benchmark/benchmark.h"
#include "services/preprocess/preprocessor.h"

namespace helpline::preprocess {
namespace {

constexpr char kEnglish[] =
    "Hi, where is my order A-1234567? It has not arrived yet. Mail me at jane.doe@example.com "
    "or call +1 415 555 0134.";
constexpr char kChinese[] = "你好，我的订单 A-1234567 还没到，请帮我查一下物流。电话 13812345678。";

const Preprocessor& Shared() {
  static const Preprocessor* p = [] {
    auto created = Preprocessor::Create({});
    if (!created.ok()) std::abort();
    return created->release();
  }();
  return *p;
}

void BM_Process(benchmark::State& state, const char* text) {
  const Preprocessor& p = Shared();
  for (auto _ : state) {
    auto result = p.Process(text, "");
    if (!result.ok()) state.SkipWithError("process failed");
    benchmark::DoNotOptimize(result);
  }
}
BENCHMARK_CAPTURE(BM_Process, en, kEnglish);
BENCHMARK_CAPTURE(BM_Process, zh, kChinese);

void BM_Normalize(benchmark::State& state, const char* text) {
  const Preprocessor& p = Shared();
  for (auto _ : state) benchmark::DoNotOptimize(p.Normalize(text));
}
BENCHMARK_CAPTURE(BM_Normalize, en, kEnglish);
BENCHMARK_CAPTURE(BM_Normalize, zh, kChinese);

void BM_Segment(benchmark::State& state, const char* text) {
  const Preprocessor& p = Shared();
  const std::string normalized = *p.Normalize(text);
  for (auto _ : state) benchmark::DoNotOptimize(p.Segment(normalized));
}
BENCHMARK_CAPTURE(BM_Segment, en, kEnglish);
BENCHMARK_CAPTURE(BM_Segment, zh, kChinese);

void BM_FindPii(benchmark::State& state, const char* text) {
  const Preprocessor& p = Shared();
  const std::string normalized = *p.Normalize(text);
  for (auto _ : state) benchmark::DoNotOptimize(p.FindPii(normalized));
}
BENCHMARK_CAPTURE(BM_FindPii, en, kEnglish);
BENCHMARK_CAPTURE(BM_FindPii, zh, kChinese);

}  // namespace
}  // namespace helpline::preprocess

BENCHMARK_MAIN();
