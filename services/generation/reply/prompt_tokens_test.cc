// The prompt layout against GPT-2's real tokenizer (lm_tokenizer on GPT-2's files): the
// stable part of turn k's prompt is a *token* prefix of turn k+1's prompt, and the builder's
// token counts are exact. Skipped when GPT-2's files are not on this machine
// (HELPLINE_GPT2_BPE_DIR, else $HELPLINE_SOURCE_DIR/../shared/data/gpt2_bpe).
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lm/tokenizer/bpe.h"
#include "services/generation/reply/prompt_builder.h"
#include "tests/testing/shop_domain.h"

namespace helpline::generation::reply {
namespace {

namespace fs = std::filesystem;

std::string Gpt2Dir() {
  if (const char* dir = std::getenv("HELPLINE_GPT2_BPE_DIR")) return dir;
  const char* source = std::getenv("HELPLINE_SOURCE_DIR");
  return (fs::path(source != nullptr ? source : ".") / ".." / "shared" / "data" / "gpt2_bpe")
      .string();
}

bool IsPrefix(const std::vector<int32_t>& prefix, const std::vector<int32_t>& ids) {
  return prefix.size() <= ids.size() && std::equal(prefix.begin(), prefix.end(), ids.begin());
}

class PromptTokensTest : public testing::Test {
 protected:
  void SetUp() override {
    if (!fs::is_directory(Gpt2Dir())) GTEST_SKIP() << "no GPT-2 files at " << Gpt2Dir();
    auto tokenizer = lm::BpeTokenizer::Load(Gpt2Dir());
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
    tokenizer_ = *std::move(tokenizer);
    const auto& shop = testutil::ShopDomain();
    ASSERT_TRUE(shop.ok()) << shop.status();
    auto builder = PromptBuilder::Create(
        *shop, {}, {}, [this](absl::string_view s) { return tokenizer_->Encode(s).size(); });
    ASSERT_TRUE(builder.ok()) << builder.status();
    builder_ = *std::move(builder);
  }

  std::unique_ptr<lm::BpeTokenizer> tokenizer_;
  std::unique_ptr<const PromptBuilder> builder_;
};

struct Step {
  std::string user, intent, reply, language;
  std::vector<std::pair<std::string, std::string>> slots = {};
  std::string evidence = "";
};

// Replies and texts with what breaks naive layouts: trailing spaces and newlines, "...",
// "!!", digits, an e-mail, Chinese, an emoji, a language switch.
const std::vector<Step>& Session() {
  static const auto* steps = new std::vector<Step>{
      {"Hi there  ", "greet", " Hello! I'm the shop's virtual assistant.\nHow can I help?", "en"},
      {"I want to return the running shoes...",
       "return_item",
       "Could you give me your order number? It's in the confirmation e-mail, e.g. 12345678.",
       "en",
       {{"item", "the running shoes"}}},
      {"It's A-1234567, they're too small!!",
       "return_item",
       "All set: a return for the running shoes from order A-1234567 has been started.  ",
       "en",
       {{"item", "the running shoes"}, {"order_id", "A-1234567"}, {"reason", "too_small"}},
       "ORDER A-1234567\n\nTotal: $49.90  "},
      {"and mail the label to jane.doe@example.com please",
       "return_item",
       "Done, the label is on its way to jane.doe@example.com.",
       "en",
       {{"order_id", "A-1234567"}, {"email", "jane.doe@example.com"}}},
      {"还有，我的退款49.9元什么时候到账？",
       "refund_status",
       "已查询订单 A-1234567。退款发起后会原路退回，一般 5 至 10 个工作日到账。",
       "zh",
       {{"order_id", "A-1234567"}, {"amount", "49.9"}}},
      {"谢谢 😀", "thanks", "不客气！还有其他可以帮您的吗？", "zh", {{"order_id", "A-1234567"}}},
  };
  return *steps;
}

TEST_F(PromptTokensTest, StablePartIsATokenPrefixOfTheNextTurnsPrompt) {
  v1::GenerationContext context;
  std::vector<int32_t> previous_stable;
  std::string previous_language;
  size_t checked = 0;
  for (size_t k = 0; k < Session().size(); ++k) {
    const Step& step = Session()[k];
    context.set_user_text(step.user);
    context.mutable_state()->set_active_intent(step.intent);
    context.mutable_state()->set_language(step.language);
    context.mutable_state()->clear_slots();
    for (const auto& [name, value] : step.slots) {
      (*context.mutable_state()->mutable_slots())[name].set_value(value);
    }
    context.clear_evidence();
    if (!step.evidence.empty()) context.add_evidence()->set_text(step.evidence);

    absl::StatusOr<BuiltPrompt> p = builder_->Build(context, 1024);
    ASSERT_TRUE(p.ok()) << p.status();
    const std::vector<int32_t> ids = tokenizer_->Encode(p->text);
    const std::vector<int32_t> stable = tokenizer_->Encode(p->text.substr(0, p->stable_bytes));
    EXPECT_EQ(p->tokens, ids.size()) << "turn " << k;
    EXPECT_TRUE(IsPrefix(stable, ids)) << "turn " << k;
    // The same language keeps the same system prompt: the whole previous stable part is
    // reused token for token. (A language switch changes the system prompt.)
    if (k > 0 && step.language == previous_language) {
      EXPECT_TRUE(IsPrefix(previous_stable, ids)) << "turn " << k;
      EXPECT_GT(stable.size(), previous_stable.size());
      ++checked;
    }
    previous_stable = stable;
    previous_language = step.language;
    common::v1::Turn* turn = context.add_history();
    turn->set_index(static_cast<uint32_t>(k));
    turn->set_user_text(step.user);
    turn->set_reply(step.reply);
  }
  EXPECT_EQ(checked, 4u);
}

TEST_F(PromptTokensTest, TrimmedPromptsFitTheBudgetExactly) {
  v1::GenerationContext context;
  context.set_user_text("And where is my refund?");
  context.mutable_state()->set_active_intent("refund_status");
  for (int i = 0; i < 30; ++i) {
    common::v1::Turn* turn = context.add_history();
    turn->set_index(static_cast<uint32_t>(i));
    turn->set_user_text(absl::StrCat("Question ", i, ": is order A-", 1000000 + i, " shipped?"));
    turn->set_reply(absl::StrCat("Order A-", 1000000 + i, " left our warehouse today. 😀"));
  }
  for (size_t budget : {150u, 256u, 400u, 700u}) {
    absl::StatusOr<BuiltPrompt> p = builder_->Build(context, budget);
    ASSERT_TRUE(p.ok()) << p.status();
    EXPECT_LE(tokenizer_->Encode(p->text).size(), budget);
    EXPECT_EQ(p->tokens, tokenizer_->Encode(p->text).size());
    EXPECT_GT(p->history_turns_kept, 0u) << budget;
    EXPECT_LT(p->history_turns_kept, 30u) << budget;
  }
}

}  // namespace
}  // namespace helpline::generation::reply
