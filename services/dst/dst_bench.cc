// Microbenchmarks of the dialogue state tracker (no gRPC) with domains/shop.yaml: a first
// turn and a turn with a prior state (the intent known, the order number asked for), in
// English and Chinese. Run from the source tree or with HELPLINE_SOURCE_DIR set.
// Also the trained utterance model on a 20-word turn (p50/p99 per call as counters) and a
// tracker using it: the folder of HELPLINE_DST_MODEL_DIR, else one trained here first; and a
// tracker with the learned dialogue state tracker of HELPLINE_DST_DIALOGUE_MODEL_DIR.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "common/domain/domain.h"
#include "common/metrics/metrics.h"
#include "services/dst/dialogue_model.h"
#include "services/dst/dst_service.h"
#include "services/dst/model_scorer.h"
#include "services/dst/model_testutil.h"
#include "services/dst/tracker.h"
#include "tests/testing/shop_domain.h"

namespace helpline::dst {
namespace {

const Tracker& Shared() {
  static const Tracker* tracker = [] {
    const auto& d = testutil::ShopDomain();
    if (!d.ok()) {
      std::fprintf(stderr, "%s (set HELPLINE_SOURCE_DIR)\n", d.status().ToString().c_str());
      std::exit(1);
    }
    return new Tracker(*d, TrackerOptions{});
  }();
  return *tracker;
}

TurnInput FirstTurn(const char* text, const char* language) {
  TurnInput input;
  input.user_text = text;
  input.language = language;
  return input;
}

// The intent is known and the order number was asked for; the customer answers.
TurnInput AnswerTurn(const char* text, const char* language) {
  TurnInput input = FirstTurn(text, language);
  common::v1::DialogueState& prior = input.prior;
  prior.set_domain("shop");
  prior.set_language(language);
  prior.set_active_intent("track_order");
  prior.set_intent_confidence(0.8f);
  prior.add_missing_slots("order_id");
  prior.add_requested_slots("order_id");
  prior.set_turn_count(1);
  common::v1::SlotValue& email = (*prior.mutable_slots())["email"];
  email.set_value("jane.doe@example.com");
  email.set_confidence(0.95f);
  email.set_source(common::v1::SLOT_SOURCE_CUSTOMER_TEXT);
  return input;
}

void BM_Track(benchmark::State& state, TurnInput input) {
  const Tracker& tracker = Shared();
  for (auto _ : state) {
    auto result = tracker.Track(input);
    if (!result.ok()) state.SkipWithError("track failed");
    benchmark::DoNotOptimize(result);
  }
}
BENCHMARK_CAPTURE(BM_Track, en_first,
                  FirstTurn("Hi, where is my order A-1234567? It has not arrived yet.", "en"));
BENCHMARK_CAPTURE(BM_Track, zh_first, FirstTurn("你好，我的订单还没到，请帮我查一下物流。", "zh"));
BENCHMARK_CAPTURE(BM_Track, en_answer, AnswerTurn("sure, it is A-1234567", "en"));
BENCHMARK_CAPTURE(BM_Track, zh_answer, AnswerTurn("订单号是 A-1234567", "zh"));

// The service's work for one call without gRPC: proto conversion, tracking, metrics, logs.
void BM_TrackOne(benchmark::State& state, TurnInput input) {
  static metrics::Registry* registry = new metrics::Registry();
  static DstService* service = new DstService(Shared(), *registry);
  v1::TrackRequest request;
  request.set_user_text(input.user_text);
  request.set_language(input.language);
  *request.mutable_prior_state() = input.prior;
  for (auto _ : state) {
    v1::TrackResponse response;
    if (!service->TrackOne(request, response).ok()) state.SkipWithError("track failed");
    benchmark::DoNotOptimize(response);
  }
}
BENCHMARK_CAPTURE(BM_TrackOne, en_first,
                  FirstTurn("Hi, where is my order A-1234567? It has not arrived yet.", "en"));
BENCHMARK_CAPTURE(BM_TrackOne, en_answer, AnswerTurn("sure, it is A-1234567", "en"));

// The model folder of HELPLINE_DST_MODEL_DIR, loaded once. Without it, a model of nlu/model's
// default size is trained on the shop domain's examples first (30 epochs, seconds).
const ModelUtteranceModel* SharedModel() {
  static const ModelUtteranceModel* model = []() -> const ModelUtteranceModel* {
    std::string dir = std::getenv("HELPLINE_DST_MODEL_DIR") != nullptr
                          ? std::getenv("HELPLINE_DST_MODEL_DIR")
                          : "";
    if (dir.empty()) {
      dir = "/tmp/bench_dst_shop_model";
      absl::Status trained =
          model_testing::TrainTinyModel(*testutil::ShopDomain(), dir, 30, /*tiny=*/false);
      if (!trained.ok()) {
        std::fprintf(stderr, "training the bench model: %s\n", trained.ToString().c_str());
        std::exit(1);
      }
    }
    auto loaded = ModelUtteranceModel::Load(dir, *testutil::ShopDomain());
    if (!loaded.ok()) {
      std::fprintf(stderr, "%s\n", loaded.status().ToString().c_str());
      std::exit(1);
    }
    return loaded->release();
  }();
  return model;
}

// 20 words.
constexpr char kTwentyWords[] =
    "I ordered a pair of running shoes last week and the parcel still has not arrived, where "
    "is my order?";

// One Analyze call per iteration, timed one by one for the tail: counters p50_ms, p99_ms.
void BM_ModelAnalyze(benchmark::State& state, const char* text) {
  const ModelUtteranceModel* model = SharedModel();
  std::vector<double> ms;
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(model->Analyze(text, "en"));
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() -
                                                           start)
                     .count());
  }
  std::sort(ms.begin(), ms.end());
  state.counters["p50_ms"] = ms[ms.size() / 2];
  state.counters["p99_ms"] = ms[std::min(ms.size() - 1, ms.size() * 99 / 100)];
  state.counters["max_ms"] = ms.back();
}
BENCHMARK_CAPTURE(BM_ModelAnalyze, en_20_words, kTwentyWords)
    ->Iterations(2000)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_ModelAnalyze, zh, "你好，我上周买的跑鞋到现在还没到，请帮我查一下订单。")
    ->Iterations(2000)
    ->Unit(benchmark::kMicrosecond);

// A whole turn with the model in the tracker's options.
void BM_TrackWithModel(benchmark::State& state, TurnInput input) {
  const ModelUtteranceModel* model = SharedModel();
  TrackerOptions options;
  options.model = std::shared_ptr<const UtteranceModel>(model, [](const UtteranceModel*) {});
  Tracker tracker(*testutil::ShopDomain(), options);
  for (auto _ : state) {
    auto result = tracker.Track(input);
    if (!result.ok()) state.SkipWithError("track failed");
    benchmark::DoNotOptimize(result);
  }
}
BENCHMARK_CAPTURE(BM_TrackWithModel, en_20_words, FirstTurn(kTwentyWords, "en"))
    ->Unit(benchmark::kMicrosecond);

// The learned dialogue state tracker (nlu/dst) of HELPLINE_DST_DIALOGUE_MODEL_DIR on the shop
// domain, zero-shot; the benchmarks below are skipped without it. `cached`: the schema
// encodings are computed once (the service's way); false: every turn (as before the cache).
std::shared_ptr<const LearnedDialogueModel> LoadDialogueModel(bool cached) {
  const char* dir = std::getenv("HELPLINE_DST_DIALOGUE_MODEL_DIR");
  if (dir == nullptr || *dir == '\0') return nullptr;
  LearnedDialogueModelOptions options;
  options.cache_encodings = cached;
  auto loaded = LearnedDialogueModel::Load(dir, **testutil::ShopDomain(), options);
  if (!loaded.ok()) {
    std::fprintf(stderr, "%s\n", loaded.status().ToString().c_str());
    std::exit(1);
  }
  return std::shared_ptr<const LearnedDialogueModel>(*std::move(loaded));
}

std::shared_ptr<const LearnedDialogueModel> SharedDialogueModel(bool cached) {
  static const std::shared_ptr<const LearnedDialogueModel> with_cache = LoadDialogueModel(true);
  static const std::shared_ptr<const LearnedDialogueModel> without = LoadDialogueModel(false);
  return cached ? with_cache : without;
}

// A whole turn (Tracker::Track) with the learned tracker, timed one by one: the session is
// resumed from the prior state's context, the turn tracked, the context written back. The
// prior is the state after a first turn, so the context (vector, history, REQUEST) is full.
void BM_TrackWithDialogueModel(benchmark::State& state, TurnInput input, bool cached) {
  std::shared_ptr<const LearnedDialogueModel> model = SharedDialogueModel(cached);
  if (model == nullptr) {
    state.SkipWithError("set HELPLINE_DST_DIALOGUE_MODEL_DIR to a learned tracker folder");
    return;
  }
  TrackerOptions options;
  options.dialogue_model = model;
  Tracker tracker(*testutil::ShopDomain(), options);
  TurnInput first = FirstTurn("Hi, I need help with an order of mine.", "en");
  auto prior = tracker.Track(first);
  if (!prior.ok()) {
    state.SkipWithError("first turn failed");
    return;
  }
  input.prior = prior->state;
  std::vector<double> ms;
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    auto result = tracker.Track(input);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() -
                                                           start)
                     .count());
    if (!result.ok()) state.SkipWithError("track failed");
    benchmark::DoNotOptimize(result);
  }
  std::sort(ms.begin(), ms.end());
  state.counters["p50_ms"] = ms[ms.size() / 2];
  state.counters["p99_ms"] = ms[std::min(ms.size() - 1, ms.size() * 99 / 100)];
  state.counters["max_ms"] = ms.back();
}
BENCHMARK_CAPTURE(BM_TrackWithDialogueModel, en_20_words, FirstTurn(kTwentyWords, "en"), true)
    ->Iterations(1000)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_TrackWithDialogueModel, en_answer, FirstTurn("it is A-1234567", "en"), true)
    ->Iterations(1000)
    ->Unit(benchmark::kMicrosecond);
// The same turns encoding the schema every turn: the cost the cache saves, in the same run.
BENCHMARK_CAPTURE(BM_TrackWithDialogueModel, en_20_words_uncached, FirstTurn(kTwentyWords, "en"),
                  false)
    ->Iterations(1000)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_TrackWithDialogueModel, en_answer_uncached, FirstTurn("it is A-1234567", "en"),
                  false)
    ->Iterations(1000)
    ->Unit(benchmark::kMicrosecond);

void BM_Score(benchmark::State& state, const char* text) {
  IntentClassifier classifier(Shared().domain());
  for (auto _ : state) benchmark::DoNotOptimize(classifier.Score(text));
}
BENCHMARK_CAPTURE(BM_Score, en, "Hi, where is my order A-1234567? It has not arrived yet.");
BENCHMARK_CAPTURE(BM_Score, zh, "你好，我的订单还没到，请帮我查一下物流。");

}  // namespace
}  // namespace helpline::dst

BENCHMARK_MAIN();
