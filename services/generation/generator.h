// The template reply engine: candidates from the domain's response templates
// (common/domain SelectTemplate + RenderTemplate), with the limits a model engine honors
// (max_tokens, stop sequences, n) so that the RPC shape is already the final one. A neural
// engine replaces it later and this becomes the fallback path.
//
// "Tokens" here are NOT model tokens: a token is a run of non-space characters, and each
// CJK character is one token (CountTokens). Usage figures are estimates of that kind.
//
// Thread-safe after construction.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/domain/domain.h"
#include "helpline/generation/v1/generation_service.pb.h"

namespace helpline::generation {

// max_tokens when a request leaves it 0. 192 rather than 128: the Bitext dev replies (step-by-
// step instructions, 568 characters on average) were cut at 128 tokens (dev chrF 36.6 -> 39.5);
// the other sets' replies end well before either.
inline constexpr uint32_t kDefaultMaxTokens = 192;

struct GeneratorOptions {
  // max_tokens when a request leaves it 0.
  uint32_t default_max_tokens = kDefaultMaxTokens;
  // Largest max_tokens a request may ask for.
  uint32_t max_tokens_limit = 512;
  // Largest n a request may ask for.
  uint32_t max_candidates = 8;
};

// Whitespace-separated runs count one each; every CJK character counts one.
uint32_t CountTokens(absl::string_view text);

struct Limited {
  std::string text;
  v1::FinishReason finish_reason = v1::FINISH_REASON_STOP;
};

// Cuts `text` before the earliest occurrence of any stop string (finish STOP), then keeps
// at most `max_tokens` tokens, whole words and whole characters only, trailing space
// dropped (finish LENGTH when something was cut). max_tokens 0 means no limit.
Limited ApplyLimits(absl::string_view text, uint32_t max_tokens,
                    const std::vector<std::string>& stop);

// Splits a reply into stream deltas: one token each, with the whitespace that follows it
// (leading whitespace goes with the first). The deltas concatenate to `text` exactly and
// never split a UTF-8 sequence.
std::vector<std::string> SplitIntoDeltas(absl::string_view text);

class TemplateGenerator {
 public:
  TemplateGenerator(std::shared_ptr<const domain::Domain> domain, GeneratorOptions options);

  // INVALID_ARGUMENT naming the field: params.n, params.max_tokens, params.temperature,
  // params.top_p, params.stop[i], context.domain.
  absl::Status Validate(const v1::GenerationContext& context,
                        const v1::SamplingParams& params) const;

  // Validates, then renders n candidates (variants of the selected template; candidate i
  // uses variant offset i). Temperature, top_p, top_k and seed are accepted and ignored:
  // the choice among variants is deterministic (turn_count + i).
  absl::StatusOr<v1::GenerateResponse> Generate(const v1::GenerationContext& context,
                                                const v1::SamplingParams& params) const;

  // Tokens of what a model would read: system prompt, history, user text and evidence.
  uint32_t PromptTokens(const v1::GenerationContext& context) const;

  const domain::Domain& domain() const { return *domain_; }
  const GeneratorOptions& options() const { return options_; }

 private:
  std::shared_ptr<const domain::Domain> domain_;
  GeneratorOptions options_;
  // CountTokens of the domain's system prompt, per language (counted once at construction).
  std::map<std::string, uint32_t, std::less<>> system_prompt_tokens_;
};

}  // namespace helpline::generation
