// The neural reply engine: builds the prompt from the context (reply::PromptBuilder),
// generates n candidates with the GPT-2 engine (lm::Engine: continuous batching, session
// prefix cache), then filters, prunes, fills and reranks them (reply::ReplyChooser). A unary
// request for one greedy reply gets reply.candidates candidates: the greedy reply and samples
// at reply.candidate_temperature (services/generation/decoding.h). When
// no candidate survives, or the engine fails, the template reply is sent, marked degraded.
//
// Streaming (GenerateStream with n = 1): the reply is released sentence by sentence, each
// release checked by the same filters on the text so far, so no delta ever carries text the
// final check would reject. A sentence that fails ends the reply after the sentences already
// sent (the rest is cancelled); when nothing was sent yet, the template reply is streamed.
// With n > 1 the choice needs every candidate, so the chosen text is streamed at the end.
//
// Thread-safe: Start may be called from any thread; callbacks run on the engine's thread.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/domain/domain.h"
#include "common/metrics/metrics.h"
#include "helpline/generation/v1/generation_config.pb.h"
#include "lm/model/gpt2.h"
#include "lm/serving/engine.h"
#include "lm/tokenizer/bpe.h"
#include "services/generation/decoding.h"
#include "services/generation/generator.h"
#include "services/generation/reply/prompt_builder.h"
#include "services/generation/reply/reply_chooser.h"
#include "services/generation/reply/retrieval.h"
#include "services/generation/reply_engine.h"

namespace helpline::generation {

class NeuralReplyEngine final : public ReplyEngine {
 public:
  // Loads the tokenizer and the model from config.model().dir(), checks the engine options
  // and the reply config (the blocklist file, the exemplar data), and starts the engine's
  // owner thread.
  // `fallback` must outlive the engine. Errors name the file or the config field.
  static absl::StatusOr<std::unique_ptr<NeuralReplyEngine>> Create(
      const v1::GenerationConfig& config, std::shared_ptr<const domain::Domain> domain,
      const TemplateGenerator& fallback,
      metrics::Registry& registry = metrics::Registry::Default());

  ~NeuralReplyEngine() override;

  std::shared_ptr<ReplyCall> Start(const v1::GenerationContext& context,
                                   const v1::SamplingParams& params, bool stream,
                                   absl::Time deadline, ReplySink sink) override;
  bool records_token_metrics() const override { return true; }

  const lm::Gpt2Config& model_config() const { return model_->config(); }

 private:
  class Call;

  NeuralReplyEngine(const TemplateGenerator& fallback, metrics::Registry& registry);

  const TemplateGenerator& fallback_;
  std::unique_ptr<lm::BpeTokenizer> tokenizer_;
  std::unique_ptr<lm::Gpt2Model> model_;
  std::unique_ptr<const reply::PromptBuilder> prompts_;
  std::unique_ptr<const reply::ReplyChooser> chooser_;
  // reply.exemplar_data's turns; null without.
  std::unique_ptr<const reply::ExemplarIndex> exemplars_;
  // How many similar replies a request without an exemplar gets (reply.similar_replies).
  size_t similar_replies_ = kDefaultSimilarReplies;
  std::vector<std::string> format_stops_;
  uint32_t max_prompt_tokens_ = 0;
  int no_repeat_ngram_ = kDefaultNoRepeatNgram;
  int reply_candidates_ = kDefaultReplyCandidates;
  float candidate_temperature_ = kDefaultCandidateTemperature;
  metrics::Family<metrics::Counter>& rejections_;
  metrics::Family<metrics::Counter>& degraded_;
  // Last: destroyed first, so its thread stops before the model and tokenizer go.
  std::unique_ptr<lm::Engine> engine_;
};

}  // namespace helpline::generation
