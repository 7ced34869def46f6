// Microbenchmarks of the template generator (no gRPC) with domains/shop.yaml: the reply to
// a state that misses the order number and to one that has every slot, with two turns of
// history, in English and Chinese. Run from the source tree or with HELPLINE_SOURCE_DIR set.
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "common/domain/domain.h"
#include "services/generation/generator.h"
#include "tests/testing/shop_domain.h"

namespace helpline::generation {
namespace {

const TemplateGenerator& Shared() {
  static const TemplateGenerator* generator = [] {
    const auto& d = testutil::ShopDomain();
    if (!d.ok()) {
      std::fprintf(stderr, "%s (set HELPLINE_SOURCE_DIR)\n", d.status().ToString().c_str());
      std::exit(1);
    }
    return new TemplateGenerator(*d,
                                 GeneratorOptions{});
  }();
  return *generator;
}

v1::GenerationContext Context(const char* language, bool done) {
  v1::GenerationContext context;
  context.set_domain("shop");
  context.set_language(language);
  common::v1::DialogueState& state = *context.mutable_state();
  state.set_domain("shop");
  state.set_language(language);
  state.set_active_intent("track_order");
  state.set_intent_confidence(0.8f);
  state.set_turn_count(2);
  const bool zh = std::string(language) == "zh";
  if (done) {
    common::v1::SlotValue& order = (*state.mutable_slots())["order_id"];
    order.set_value("A-1234567");
    order.set_confidence(0.95f);
  } else {
    state.add_missing_slots("order_id");
    state.add_requested_slots("order_id");
  }
  for (int i = 0; i < 2; ++i) {
    common::v1::Turn& turn = *context.add_history();
    turn.set_user_text(zh ? "你好，我的订单还没到，请帮我查一下物流。"
                          : "Hi, where is my order? It has not arrived yet.");
    turn.set_reply(zh ? "好的，请告诉我您的订单号。"
                      : "I can help with that. What is your order number?");
  }
  context.set_user_text(zh ? "订单号是 A-1234567" : "sure, it is A-1234567");
  return context;
}

void BM_Generate(benchmark::State& state, v1::GenerationContext context) {
  const TemplateGenerator& generator = Shared();
  v1::SamplingParams params;
  for (auto _ : state) {
    auto result = generator.Generate(context, params);
    if (!result.ok()) state.SkipWithError("generate failed");
    benchmark::DoNotOptimize(result);
  }
}
BENCHMARK_CAPTURE(BM_Generate, en_ask, Context("en", false));
BENCHMARK_CAPTURE(BM_Generate, en_done, Context("en", true));
BENCHMARK_CAPTURE(BM_Generate, zh_ask, Context("zh", false));
BENCHMARK_CAPTURE(BM_Generate, zh_done, Context("zh", true));

}  // namespace
}  // namespace helpline::generation

BENCHMARK_MAIN();
