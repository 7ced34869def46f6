#include "services/generation/generator.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/domain/template.h"
#include "common/domain/text.h"

namespace helpline::generation {

namespace text = domain::text;

uint32_t CountTokens(absl::string_view s) {
  return static_cast<uint32_t>(text::CountTokenUnits(s));
}

Limited ApplyLimits(absl::string_view s, uint32_t max_tokens,
                    const std::vector<std::string>& stop) {
  Limited out;
  out.finish_reason = v1::FINISH_REASON_STOP;
  size_t cut = s.size();
  for (const std::string& st : stop) {
    if (st.empty()) continue;
    const size_t pos = s.find(st);
    if (pos != absl::string_view::npos && pos < cut) cut = pos;
  }
  absl::string_view kept = s.substr(0, cut);
  if (max_tokens > 0 && text::CountTokenUnits(kept) > max_tokens) {  // Spans only to cut.
    kept = kept.substr(0, text::TokenUnits(kept)[max_tokens - 1].second);
    out.finish_reason = v1::FINISH_REASON_LENGTH;
  }
  out.text = std::string(kept);
  if (out.finish_reason == v1::FINISH_REASON_LENGTH) {
    while (!out.text.empty() && (out.text.back() == ' ' || out.text.back() == '\n')) {
      out.text.pop_back();
    }
  }
  return out;
}

std::vector<std::string> SplitIntoDeltas(absl::string_view s) {
  std::vector<std::string> deltas;
  const auto units = text::TokenUnits(s);
  if (units.empty()) {
    if (!s.empty()) deltas.emplace_back(s);
    return deltas;
  }
  for (size_t i = 0; i < units.size(); ++i) {
    const size_t begin = i == 0 ? 0 : units[i].first;
    const size_t end = i + 1 < units.size() ? units[i + 1].first : s.size();
    deltas.emplace_back(s.substr(begin, end - begin));
  }
  return deltas;
}

TemplateGenerator::TemplateGenerator(std::shared_ptr<const domain::Domain> domain,
                                     GeneratorOptions options)
    : domain_(std::move(domain)), options_(options) {
  for (const auto& [language, prompt] : domain_->system_prompt) {
    system_prompt_tokens_[language] = CountTokens(prompt);
  }
}

absl::Status TemplateGenerator::Validate(const v1::GenerationContext& context,
                                         const v1::SamplingParams& params) const {
  if (params.n() > options_.max_candidates) {
    return absl::InvalidArgumentError(absl::StrCat(
        "params.n: ", params.n(), " is more than the limit of ", options_.max_candidates));
  }
  if (params.max_tokens() > options_.max_tokens_limit) {
    return absl::InvalidArgumentError(absl::StrCat("params.max_tokens: ", params.max_tokens(),
                                                   " is more than the limit of ",
                                                   options_.max_tokens_limit));
  }
  if (!std::isfinite(params.temperature()) || params.temperature() < 0 ||
      params.temperature() > 2) {
    return absl::InvalidArgumentError("params.temperature: must be in [0, 2]");
  }
  if (!std::isfinite(params.top_p()) || params.top_p() < 0 || params.top_p() > 1) {
    return absl::InvalidArgumentError("params.top_p: must be in [0, 1]");
  }
  if (!std::isfinite(params.repetition_penalty()) || params.repetition_penalty() < 0 ||
      params.repetition_penalty() > 10) {
    return absl::InvalidArgumentError("params.repetition_penalty: must be in [0, 10] (0 or 1: off)");
  }
  if (!std::isfinite(params.frequency_penalty()) || std::abs(params.frequency_penalty()) > 2) {
    return absl::InvalidArgumentError("params.frequency_penalty: must be in [-2, 2]");
  }
  if (!std::isfinite(params.presence_penalty()) || std::abs(params.presence_penalty()) > 2) {
    return absl::InvalidArgumentError("params.presence_penalty: must be in [-2, 2]");
  }
  if (params.stop_size() > 16) {
    return absl::InvalidArgumentError("params.stop: at most 16 stop sequences");
  }
  for (int i = 0; i < params.stop_size(); ++i) {
    if (params.stop(i).empty()) {
      return absl::InvalidArgumentError(absl::StrCat("params.stop[", i, "]: must not be empty"));
    }
    if (params.stop(i).size() > 256) {
      return absl::InvalidArgumentError(
          absl::StrCat("params.stop[", i, "]: longer than 256 bytes"));
    }
  }
  if (!context.domain().empty() && context.domain() != domain_->name) {
    return absl::InvalidArgumentError(absl::StrCat("context.domain: unknown domain '",
                                                   context.domain(), "' (this service serves '",
                                                   domain_->name, "')"));
  }
  return absl::OkStatus();
}

uint32_t TemplateGenerator::PromptTokens(const v1::GenerationContext& context) const {
  const std::string language =
      domain::ResolveLanguage(*domain_, context.language(), context.state());
  uint32_t n = 0;
  auto it = system_prompt_tokens_.find(language);
  if (it != system_prompt_tokens_.end()) n += it->second;
  for (const auto& turn : context.history()) {
    n += CountTokens(turn.user_text()) + CountTokens(turn.reply());
  }
  n += CountTokens(context.user_text());
  for (const auto& e : context.evidence()) n += CountTokens(e.text());
  return n;
}

absl::StatusOr<v1::GenerateResponse> TemplateGenerator::Generate(
    const v1::GenerationContext& context, const v1::SamplingParams& params) const {
  if (absl::Status s = Validate(context, params); !s.ok()) return s;
  const uint32_t n = params.n() == 0 ? 1 : params.n();
  const uint32_t max_tokens =
      params.max_tokens() == 0 ? options_.default_max_tokens : params.max_tokens();
  const std::vector<std::string> stop(params.stop().begin(), params.stop().end());

  v1::GenerateResponse response;
  uint32_t completion = 0;
  int chosen = -1;
  for (uint32_t i = 0; i < n; ++i) {
    absl::StatusOr<domain::Reply> reply =
        domain::RenderReply(*domain_, context.state(), context.language(), i);
    if (!reply.ok()) return reply.status();
    Limited limited = ApplyLimits(reply->text, max_tokens, stop);
    v1::Candidate* c = response.add_candidates();
    c->set_text(std::move(limited.text));
    c->set_finish_reason(limited.finish_reason);
    c->set_origin("template");
    c->set_score(1.0f);
    if (!reply->unfilled.empty()) {
      c->add_rejection_reasons(
          absl::StrCat("unfilled placeholders: ", absl::StrJoin(reply->unfilled, ", ")));
      c->set_score(0.5f);
    }
    if (c->text().empty()) {
      c->add_rejection_reasons("empty text");
      c->set_score(0.0f);
    }
    if (chosen < 0 && c->rejection_reasons_size() == 0) chosen = static_cast<int>(i);
    completion += CountTokens(c->text());
  }
  // When every candidate was rejected, the first is still the best there is.
  response.set_chosen_index(chosen < 0 ? 0 : static_cast<uint32_t>(chosen));
  response.mutable_usage()->set_prompt_tokens(PromptTokens(context));
  response.mutable_usage()->set_completion_tokens(completion);
  response.set_degraded(false);
  return response;
}

}  // namespace helpline::generation
