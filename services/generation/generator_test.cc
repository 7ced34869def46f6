#include "services/generation/generator.h"

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/domain/text.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/shop_domain.h"

namespace helpline::generation {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::shared_ptr<const domain::Domain> Shop() {
  const auto& shop = testutil::ShopDomain();
  EXPECT_TRUE(shop.ok()) << shop.status();
  return shop.ok() ? *shop : std::make_shared<const domain::Domain>();
}

v1::GenerationContext TrackOrderDone(const std::string& language) {
  v1::GenerationContext context;
  context.set_domain("shop");
  context.set_language(language);
  context.set_user_text("12345678");
  auto* state = context.mutable_state();
  state->set_active_intent("track_order");
  state->set_language(language);
  state->set_turn_count(2);
  (*state->mutable_slots())["order_id"].set_value("12345678");
  return context;
}

// True when every piece is valid UTF-8 on its own.
bool ValidUtf8(absl::string_view s) {
  size_t pos = 0;
  while (pos < s.size()) {
    const size_t before = pos;
    const char32_t cp = domain::text::NextCodePoint(s, &pos);
    if (cp == 0xFFFD && s.substr(before, 3) != "\xEF\xBF\xBD") return false;
  }
  return true;
}

TEST(CountTokensTest, WordsAndCjkCharacters) {
  EXPECT_EQ(CountTokens(""), 0u);
  EXPECT_EQ(CountTokens("  Where is   my order? "), 4u);
  EXPECT_EQ(CountTokens("订单 12345678 已找到。"), 7u);  // 订 单 12345678 已 找 到 。
}

TEST(ApplyLimitsTest, StopSequenceCutsBefore) {
  Limited l = ApplyLimits("Hello there. How are you?", 0, {"How", "zzz"});
  EXPECT_EQ(l.text, "Hello there. ");
  EXPECT_EQ(l.finish_reason, v1::FINISH_REASON_STOP);
  l = ApplyLimits("Hello there. How are you?", 0, {"are", "there"});  // Earliest wins.
  EXPECT_EQ(l.text, "Hello ");
}

TEST(ApplyLimitsTest, MaxTokensKeepsWholeWords) {
  Limited l = ApplyLimits("one two three four", 2, {});
  EXPECT_EQ(l.text, "one two");
  EXPECT_EQ(l.finish_reason, v1::FINISH_REASON_LENGTH);
  l = ApplyLimits("one two", 2, {});
  EXPECT_EQ(l.text, "one two");
  EXPECT_EQ(l.finish_reason, v1::FINISH_REASON_STOP);
  l = ApplyLimits("您好！请问有什么可以帮您？", 3, {});
  EXPECT_EQ(l.text, "您好！");
  EXPECT_EQ(l.finish_reason, v1::FINISH_REASON_LENGTH);
}

TEST(SplitIntoDeltasTest, ConcatenatesExactlyAndKeepsUtf8Whole) {
  for (const std::string& s :
       {std::string("Hello! Order 12345678 is on its way."), std::string("  leading space"),
        std::string("谢谢！已查到订单 12345678。您可以在“我的订单 > 查看物流”中实时跟踪。"),
        std::string("mixed 中文 and English，ok")}) {
    std::vector<std::string> deltas = SplitIntoDeltas(s);
    EXPECT_GT(deltas.size(), 1u) << s;
    EXPECT_EQ(absl::StrJoin(deltas, ""), s);
    for (const std::string& d : deltas) {
      EXPECT_FALSE(d.empty());
      EXPECT_TRUE(ValidUtf8(d)) << "split UTF-8 in '" << s << "': '" << d << "'";
    }
  }
  EXPECT_THAT(SplitIntoDeltas("a b"), ElementsAre("a ", "b"));
  EXPECT_THAT(SplitIntoDeltas("好的"), ElementsAre("好", "的"));
  EXPECT_TRUE(SplitIntoDeltas("").empty());
}

TEST(TemplateGeneratorTest, RendersTemplateWithSlots) {
  TemplateGenerator gen(Shop(), GeneratorOptions{});
  auto r = gen.Generate(TrackOrderDone("en"), v1::SamplingParams());
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->candidates_size(), 1);
  const v1::Candidate& c = r->candidates(0);
  EXPECT_THAT(c.text(), HasSubstr("12345678"));
  EXPECT_EQ(c.text().find("{{"), std::string::npos);
  EXPECT_EQ(c.origin(), "template");
  EXPECT_EQ(c.finish_reason(), v1::FINISH_REASON_STOP);
  EXPECT_TRUE(c.rejection_reasons().empty());
  EXPECT_EQ(r->chosen_index(), 0u);
  EXPECT_FALSE(r->degraded());
  EXPECT_EQ(r->usage().completion_tokens(), CountTokens(c.text()));
  EXPECT_GT(r->usage().prompt_tokens(), CountTokens("12345678"));  // Plus the system prompt.
}

TEST(TemplateGeneratorTest, ChineseReply) {
  TemplateGenerator gen(Shop(), GeneratorOptions{});
  auto r = gen.Generate(TrackOrderDone("zh"), v1::SamplingParams());
  ASSERT_TRUE(r.ok());
  EXPECT_THAT(r->candidates(0).text(), HasSubstr("订单 12345678"));
}

TEST(TemplateGeneratorTest, AsksForMissingSlot) {
  TemplateGenerator gen(Shop(), GeneratorOptions{});
  v1::GenerationContext context;
  context.mutable_state()->set_active_intent("track_order");
  auto r = gen.Generate(context, v1::SamplingParams());
  ASSERT_TRUE(r.ok());
  EXPECT_THAT(r->candidates(0).text(), HasSubstr("order number"));
}

TEST(TemplateGeneratorTest, NCandidatesAreVariants) {
  TemplateGenerator gen(Shop(), GeneratorOptions{});
  v1::SamplingParams params;
  params.set_n(3);
  auto r = gen.Generate(TrackOrderDone("en"), params);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->candidates_size(), 3);
  EXPECT_NE(r->candidates(0).text(), r->candidates(1).text());  // Two variants exist.
  EXPECT_EQ(r->candidates(0).text(), r->candidates(2).text());  // ...and then they repeat.
  uint32_t total = 0;
  for (const auto& c : r->candidates()) total += CountTokens(c.text());
  EXPECT_EQ(r->usage().completion_tokens(), total);
}

TEST(TemplateGeneratorTest, MaxTokensAndStop) {
  TemplateGenerator gen(Shop(), GeneratorOptions{});
  v1::SamplingParams params;
  params.set_max_tokens(3);
  auto r = gen.Generate(TrackOrderDone("en"), params);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(CountTokens(r->candidates(0).text()), 3u);
  EXPECT_EQ(r->candidates(0).finish_reason(), v1::FINISH_REASON_LENGTH);
  EXPECT_EQ(r->usage().completion_tokens(), 3u);

  params.Clear();
  params.add_stop("12345678");
  r = gen.Generate(TrackOrderDone("en"), params);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->candidates(0).text().find("12345678"), std::string::npos);
  EXPECT_FALSE(r->candidates(0).text().empty());
  EXPECT_EQ(r->candidates(0).finish_reason(), v1::FINISH_REASON_STOP);
}

TEST(TemplateGeneratorTest, DefaultMaxTokensApplies) {
  GeneratorOptions options;
  options.default_max_tokens = 2;
  TemplateGenerator gen(Shop(), options);
  auto r = gen.Generate(TrackOrderDone("en"), v1::SamplingParams());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(CountTokens(r->candidates(0).text()), 2u);
}

TEST(TemplateGeneratorTest, ValidationNamesTheField) {
  TemplateGenerator gen(Shop(), GeneratorOptions{});
  v1::SamplingParams params;
  params.set_n(9);
  auto r = gen.Generate(TrackOrderDone("en"), params);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("params.n"));

  params.Clear();
  params.set_max_tokens(513);
  r = gen.Generate(TrackOrderDone("en"), params);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("params.max_tokens"));

  params.Clear();
  params.add_stop("");
  EXPECT_THAT(gen.Generate(TrackOrderDone("en"), params).status().message(),
              HasSubstr("params.stop[0]"));

  params.Clear();
  params.set_top_p(1.5f);
  EXPECT_THAT(gen.Generate(TrackOrderDone("en"), params).status().message(),
              HasSubstr("params.top_p"));

  v1::GenerationContext context = TrackOrderDone("en");
  context.set_domain("bank");
  EXPECT_THAT(gen.Generate(context, v1::SamplingParams()).status().message(),
              HasSubstr("context.domain"));
}

TEST(TemplateGeneratorTest, EscalationAndFallback) {
  TemplateGenerator gen(Shop(), GeneratorOptions{});
  v1::GenerationContext context;
  context.mutable_state()->set_escalate(true);
  context.set_language("zh");
  auto r = gen.Generate(context, v1::SamplingParams());
  ASSERT_TRUE(r.ok());
  EXPECT_THAT(r->candidates(0).text(), HasSubstr("人工"));
  context.Clear();
  r = gen.Generate(context, v1::SamplingParams());
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->candidates(0).text().empty());
}

}  // namespace
}  // namespace helpline::generation
