#include "services/generation/neural.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/log/log.h"
#include "services/generation/decoding.h"
#include "services/generation/default_blocklist.h"
#include "services/generation/reply/reply_text.h"
#include "train/dialogue_text.h"

namespace helpline::generation {
namespace {

v1::FinishReason ToProto(lm::FinishReason reason) {
  switch (reason) {
    case lm::FinishReason::kLength:
      return v1::FINISH_REASON_LENGTH;
    case lm::FinishReason::kStop:
      return v1::FINISH_REASON_STOP;
    case lm::FinishReason::kEos:
      return v1::FINISH_REASON_EOS;
    case lm::FinishReason::kCancelled:
      return v1::FINISH_REASON_CANCELLED;
  }
  return v1::FINISH_REASON_UNSPECIFIED;
}

std::chrono::steady_clock::time_point ToSteady(absl::Time deadline) {
  if (deadline == absl::InfiniteFuture()) return std::chrono::steady_clock::time_point::max();
  const absl::Duration left = deadline - absl::Now();
  return std::chrono::steady_clock::now() + absl::ToChronoNanoseconds(left);
}

double Ms(std::chrono::nanoseconds d) { return static_cast<double>(d.count()) / 1e6; }

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot read"));
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

}  // namespace

// One request: owns what the engine's callbacks need. The lm::Engine holds it (through
// the callbacks' shared_ptr) until on_done, so it outlives every callback.
class NeuralReplyEngine::Call final : public ReplyCall,
                                      public std::enable_shared_from_this<Call> {
 public:
  Call(NeuralReplyEngine& owner, const v1::GenerationContext& context,
       const v1::SamplingParams& params, bool stream, ReplySink sink)
      : owner_(owner), context_(context), params_(params), stream_(stream),
        sink_(std::move(sink)) {}

  void Run(absl::Time deadline) {
    if (absl::Status s = owner_.fallback_.Validate(context_, params_); !s.ok()) {
      return Done(s);
    }
    const int n_positions = owner_.model_->config().n_positions;
    const uint32_t max_tokens = params_.max_tokens() == 0
                                    ? owner_.fallback_.options().default_max_tokens
                                    : params_.max_tokens();
    if (static_cast<int>(max_tokens) >= n_positions) {
      return Done(absl::InvalidArgumentError(
          absl::StrCat("params.max_tokens: ", max_tokens, " leaves no room for a prompt in the "
                       "model's context of ", n_positions, " tokens")));
    }
    size_t budget = static_cast<size_t>(n_positions) - max_tokens;
    if (owner_.max_prompt_tokens_ > 0) budget = std::min<size_t>(budget, owner_.max_prompt_tokens_);
    // A request without an exemplar gets the index's nearest reply (prompt and chooser) and
    // the next nearest as similar replies (chooser only).
    if (context_.exemplar().empty() && context_.similar_replies().empty() &&
        owner_.exemplars_ != nullptr) {
      reply::SetExemplars(owner_.exemplars_->FindNearest(context_, 1 + owner_.similar_replies_),
                          context_);
    }
    absl::StatusOr<reply::BuiltPrompt> prompt = owner_.prompts_->Build(context_, budget);
    if (!prompt.ok()) return Done(prompt.status());

    lm::GenerationRequest request;
    request.prompt = owner_.tokenizer_->Encode(prompt->text);
    request.max_tokens = static_cast<int>(max_tokens);
    n_ = params_.n() == 0 ? 1 : static_cast<int>(params_.n());
    request.sampling.temperature = params_.temperature();
    // One greedy unary reply: decode the greedy reply and a few samples, so that the chooser
    // has a model reply to send when the filter rejects the greedy one. (A stream keeps n = 1
    // so that its sentences go out as they are written.)
    if (!stream_ && n_ == 1 && params_.temperature() == 0.0f && owner_.reply_candidates_ > 1) {
      n_ = owner_.reply_candidates_;
      request.sampling.temperature = owner_.candidate_temperature_;
      request.sampling.greedy_first = true;
    }
    request.n = n_;
    // Only placeholders the fill step can fill (state, customer, constants): any other makes
    // the filter throw the reply away.
    request.allowed_placeholders = owner_.chooser_->AllowedPlaceholders(context_);
    request.sampling.top_p = params_.top_p() == 0 ? 1.0f : params_.top_p();
    request.sampling.top_k = static_cast<int>(params_.top_k());
    request.sampling.repetition_penalty =
        params_.repetition_penalty() == 0 ? 1.0f : params_.repetition_penalty();
    request.sampling.frequency_penalty = params_.frequency_penalty();
    request.sampling.presence_penalty = params_.presence_penalty();
    request.sampling.seed = params_.seed();
    request.sampling.no_repeat_ngram = owner_.no_repeat_ngram_;
    request.stop.assign(params_.stop().begin(), params_.stop().end());
    for (const std::string& stop : owner_.format_stops_) {
      if (std::find(request.stop.begin(), request.stop.end(), stop) == request.stop.end()) {
        request.stop.push_back(stop);
      }
    }
    request.cache_key = context_.cache_key();
    request.deadline = ToSteady(deadline);
    live_ = stream_ && n_ == 1;
    std::shared_ptr<Call> self = shared_from_this();
    if (live_) {
      request.on_text = [self](int, const std::string& piece) { self->OnText(piece); };
    }
    request.on_done = [self](absl::StatusOr<lm::GenerationResult> result) {
      self->OnDone(std::move(result));
    };
    absl::StatusOr<uint64_t> id = owner_.engine_->Submit(std::move(request));
    if (!id.ok()) return Done(id.status());
    bool cancel_now = false;
    {
      std::lock_guard lock(mu_);
      id_ = *id;
      cancel_now = cancelled_;
    }
    if (cancel_now) owner_.engine_->Cancel(*id);
  }

  void Cancel() override {
    std::optional<uint64_t> id;
    {
      std::lock_guard lock(mu_);
      cancelled_ = true;
      id = id_;
    }
    if (id.has_value()) owner_.engine_->Cancel(*id);
  }

 private:
  // Releases the text up to its last complete sentence once that passes the filters.
  void OnText(const std::string& piece) {
    raw_ += piece;
    if (stopped_) return;
    std::optional<std::string> sentences = reply::CutToLastSentence(raw_);
    if (!sentences.has_value() || sentences->size() <= released_raw_) return;
    reply::RawCandidate candidate;
    candidate.text = *sentences;
    reply::ReplyChoice choice =
        owner_.chooser_->Choose(context_, absl::Span<const reply::RawCandidate>(&candidate, 1));
    const reply::ScoredCandidate& scored = choice.candidates.front();
    if (scored.rejected()) {
      stopped_ = true;  // Nothing more is sent; the rest of the generation is wasted work.
      std::optional<uint64_t> id;
      {
        std::lock_guard lock(mu_);
        id = id_;
      }
      if (id.has_value()) owner_.engine_->Cancel(*id);
      return;
    }
    if (!absl::StartsWith(scored.text, released_)) return;  // Hold it to the end.
    Emit(scored.text.substr(released_.size()));
    released_ = scored.text;
    released_raw_ = sentences->size();
  }

  void Emit(const std::string& text) {
    if (text.empty() || !sink_.on_delta) return;
    for (std::string& piece : SplitIntoDeltas(text)) sink_.on_delta(std::move(piece));
  }

  void OnDone(absl::StatusOr<lm::GenerationResult> result) {
    bool cancelled;
    {
      std::lock_guard lock(mu_);
      cancelled = cancelled_;
    }
    if (cancelled) return Done(absl::CancelledError("the client cancelled the request"));
    if (!result.ok()) {
      log::Error("model engine failed; template reply", {{"status", result.status().ToString()}});
      return DoneWithFallback(v1::GenerateResponse(), "engine_error");
    }
    if (result->deadline_exceeded) {
      return Done(absl::DeadlineExceededError("the deadline passed during generation"));
    }
    const std::vector<reply::RawCandidate> raws = ToRawCandidates(*result);
    uint32_t completion = 0;
    for (const lm::CandidateResult& c : result->candidates) completion += static_cast<uint32_t>(c.ids.size());
    reply::ReplyChoice choice = owner_.chooser_->Choose(context_, raws);

    v1::GenerateResponse response;
    response.mutable_usage()->set_prompt_tokens(static_cast<uint32_t>(result->prompt_tokens));
    response.mutable_usage()->set_completion_tokens(completion);
    response.mutable_usage()->set_cached_prompt_tokens(
        static_cast<uint32_t>(result->cached_prompt_tokens));
    v1::EngineStats& stats = *response.mutable_engine();
    stats.set_queue_ms(Ms(result->queue_time));
    stats.set_time_to_first_token_ms(Ms(result->time_to_first_token));
    stats.set_seed(result->seed);
    if (stopped_) stats.set_stopped("filter");
    for (size_t i = 0; i < choice.candidates.size(); ++i) {
      v1::Candidate& out = *response.add_candidates();
      reply::ToProto(choice.candidates[i], out);
      out.set_finish_reason(ToProto(result->candidates[i].finish_reason));
      for (const std::string& reason : choice.candidates[i].rejection_reasons) {
        owner_.rejections_.Get({reason}).Increment();
      }
    }

    if (live_) {
      // Deltas already sent are final. Send the rest of the chosen text when it extends
      // them; otherwise the reply is what was sent (all of it passed the filters).
      if (!stopped_ && choice.chosen.has_value() &&
          absl::StartsWith(choice.candidates[*choice.chosen].text, released_)) {
        Emit(choice.candidates[*choice.chosen].text.substr(released_.size()));
        response.set_chosen_index(static_cast<uint32_t>(*choice.chosen));
        return Done(std::move(response));
      }
      if (!released_.empty()) {
        v1::Candidate& sent = *response.add_candidates();
        sent.set_text(released_);
        sent.set_origin("model");
        sent.set_finish_reason(v1::FINISH_REASON_STOP);
        response.set_chosen_index(static_cast<uint32_t>(response.candidates_size() - 1));
        return Done(std::move(response));
      }
      return DoneWithFallback(std::move(response), "no_candidate");
    }
    if (!choice.chosen.has_value()) return DoneWithFallback(std::move(response), "no_candidate");
    response.set_chosen_index(static_cast<uint32_t>(*choice.chosen));
    if (stream_) Emit(choice.candidates[*choice.chosen].text);
    Done(std::move(response));
  }

  // Appends the template reply, chooses it, marks the response degraded.
  void DoneWithFallback(v1::GenerateResponse response, const char* why) {
    owner_.degraded_.Get({why}).Increment();
    v1::SamplingParams one = params_;
    one.set_n(1);
    absl::StatusOr<v1::GenerateResponse> fallback = owner_.fallback_.Generate(context_, one);
    if (!fallback.ok()) return Done(fallback.status());
    v1::Candidate& chosen = *response.add_candidates();
    chosen = fallback->candidates(static_cast<int>(fallback->chosen_index()));
    response.set_chosen_index(static_cast<uint32_t>(response.candidates_size() - 1));
    response.set_degraded(true);
    if (!response.has_usage()) *response.mutable_usage() = fallback->usage();
    if (stream_) Emit(chosen.text());
    Done(std::move(response));
  }

  void Done(absl::StatusOr<v1::GenerateResponse> result) { sink_.on_done(std::move(result)); }

  NeuralReplyEngine& owner_;
  // Written only in Run (the exemplar), before the engine has the call; read-only after.
  v1::GenerationContext context_;
  const v1::SamplingParams params_;
  const bool stream_;
  ReplySink sink_;
  int n_ = 1;
  bool live_ = false;
  // Streaming state, touched only on the engine's thread.
  std::string raw_;          // model text so far
  size_t released_raw_ = 0;  // bytes of raw_ whose sentences were released
  std::string released_;     // filled text sent as deltas
  bool stopped_ = false;     // a sentence failed the filters
  std::mutex mu_;
  std::optional<uint64_t> id_;
  bool cancelled_ = false;
};

NeuralReplyEngine::NeuralReplyEngine(const TemplateGenerator& fallback,
                                     metrics::Registry& registry)
    : fallback_(fallback),
      rejections_(registry.AddCounter("helpline_generation_rejections_total",
                                      "Model candidates rejected by the reply filter, by reason.",
                                      {"reason"})),
      degraded_(registry.AddCounter(
          "helpline_generation_degraded_total",
          "Model requests answered with the template reply instead, by why.", {"reason"})) {
  for (absl::string_view reason : reply::AllRejectionReasons()) {
    rejections_.Get({std::string(reason)});
  }
  degraded_.Get({"no_candidate"});
  degraded_.Get({"engine_error"});
}

NeuralReplyEngine::~NeuralReplyEngine() = default;

absl::StatusOr<std::unique_ptr<NeuralReplyEngine>> NeuralReplyEngine::Create(
    const v1::GenerationConfig& config, std::shared_ptr<const domain::Domain> domain,
    const TemplateGenerator& fallback, metrics::Registry& registry) {
  const v1::ModelConfig& model = config.model();
  std::unique_ptr<NeuralReplyEngine> engine(new NeuralReplyEngine(fallback, registry));

  absl::StatusOr<std::unique_ptr<lm::BpeTokenizer>> tokenizer = lm::BpeTokenizer::Load(model.dir());
  if (!tokenizer.ok()) return tokenizer.status();
  engine->tokenizer_ = *std::move(tokenizer);
  lm::LoadOptions load;
  load.threads = static_cast<int>(model.threads());
  absl::StatusOr<std::unique_ptr<lm::Gpt2Model>> gpt2 = lm::Gpt2Model::Load(model.dir(), load);
  if (!gpt2.ok()) return gpt2.status();
  engine->model_ = *std::move(gpt2);

  lm::EngineOptions options;
  if (model.max_running_sequences() > 0) {
    options.max_running_sequences = static_cast<int>(model.max_running_sequences());
  }
  if (model.max_batch_tokens() > 0) options.max_batch_tokens = static_cast<int>(model.max_batch_tokens());
  if (model.prefill_chunk() > 0) options.prefill_chunk = static_cast<int>(model.prefill_chunk());
  if (model.max_waiting_requests() > 0) {
    options.max_waiting_requests = static_cast<int>(model.max_waiting_requests());
  }
  options.max_candidates = static_cast<int>(config.max_candidates());
  if (model.has_prefix_cache_mib()) {
    options.prefix_cache_bytes = static_cast<size_t>(model.prefix_cache_mib()) << 20;
  }
  if (absl::Status s = lm::ValidateEngineOptions(options); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("model.", s.message()));
  }

  const v1::ReplyConfig& reply_config = config.reply();
  std::string blocklist_yaml = kDefaultBlocklistYaml;
  std::string blocklist_origin = "built-in blocklist";
  if (!reply_config.blocklist_file().empty()) {
    absl::StatusOr<std::string> text = ReadFile(reply_config.blocklist_file());
    if (!text.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("reply.blocklist_file: ", text.status().message()));
    }
    blocklist_yaml = *std::move(text);
    blocklist_origin = reply_config.blocklist_file();
  }
  absl::StatusOr<reply::Blocklist> blocklist = reply::Blocklist::Parse(blocklist_yaml, blocklist_origin);
  if (!blocklist.ok()) return blocklist.status();

  reply::PromptFormat format;
  reply::ChooserOptions chooser;
  if (reply_config.has_weight_logprob()) chooser.weights.logprob = reply_config.weight_logprob();
  if (reply_config.has_weight_coverage()) chooser.weights.coverage = reply_config.weight_coverage();
  if (reply_config.has_weight_length()) chooser.weights.length = reply_config.weight_length();
  if (reply_config.has_weight_consensus()) {
    if (!(reply_config.weight_consensus() >= 0.0)) {
      return absl::InvalidArgumentError(absl::StrCat("reply.weight_consensus: ",
                                                     reply_config.weight_consensus(),
                                                     " is negative"));
    }
    chooser.weights.consensus = reply_config.weight_consensus();
  }
  if (reply_config.has_exemplar_votes()) {
    if (!(reply_config.exemplar_votes() >= 0.0)) {
      return absl::InvalidArgumentError(absl::StrCat("reply.exemplar_votes: ",
                                                     reply_config.exemplar_votes(), " is negative"));
    }
    chooser.weights.exemplar_votes = reply_config.exemplar_votes();
  }
  if (reply_config.has_similar_replies()) {
    if (reply_config.similar_replies() > static_cast<uint32_t>(kMaxSimilarReplies)) {
      return absl::InvalidArgumentError(absl::StrCat("reply.similar_replies: ",
                                                     reply_config.similar_replies(),
                                                     " is above ", kMaxSimilarReplies));
    }
    engine->similar_replies_ = reply_config.similar_replies();
  }
  chooser.allowed_values.assign(reply_config.allowed_values().begin(),
                                reply_config.allowed_values().end());
  for (const auto& [name, value] : reply_config.constants()) {
    if (value == absl::StrCat("{{", name, "}}")) {  // the chooser's evaluation-only form
      return absl::InvalidArgumentError(absl::StrCat("reply.constants[", name, "]: '", value,
                                                     "' would reach the customer as written"));
    }
    chooser.constants[name] = value;
  }
  for (const auto& [alias, slot] : reply_config.placeholder_aliases()) {
    chooser.placeholder_aliases[alias] = slot;
  }
  chooser.role_labels = {format.customer_label, format.agent_label};
  absl::StatusOr<std::unique_ptr<const reply::ReplyChooser>> choose =
      reply::ReplyChooser::Create(domain, *std::move(blocklist), chooser);
  if (!choose.ok()) {
    if (choose.status().code() == absl::StatusCode::kInvalidArgument) {
      return absl::InvalidArgumentError(absl::StrCat("reply.", choose.status().message()));
    }
    return choose.status();
  }
  engine->chooser_ = *std::move(choose);

  if (!reply_config.exemplar_data().empty()) {
    absl::StatusOr<train::TextFormat> format = train::ParseTextFormat(reply_config.exemplar_format());
    if (!format.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("reply.exemplar_format: ", format.status().message()));
    }
    train::TextOptions text;
    text.split = "train";
    absl::StatusOr<std::vector<train::ExampleRecord>> pool =
        train::ReadExampleRecords(reply_config.exemplar_data(), *format, text);
    if (!pool.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("reply.exemplar_data: ", pool.status().message()));
    }
    if (pool->empty()) {
      return absl::InvalidArgumentError(absl::StrCat("reply.exemplar_data: ", reply_config.exemplar_data(),
                                                     " has no agent turns"));
    }
    engine->exemplars_ = std::make_unique<const reply::ExemplarIndex>(train::MakeExemplarIndex(*pool));
    log::Info("exemplars loaded", {{"turns", engine->exemplars_->size()},
                                   {"data", reply_config.exemplar_data()}});
  }

  reply::PromptOptions prompt_options;
  prompt_options.history_alignment = std::max<uint32_t>(1, reply_config.history_alignment());
  const lm::BpeTokenizer* counter = engine->tokenizer_.get();
  absl::StatusOr<std::unique_ptr<const reply::PromptBuilder>> prompts = reply::PromptBuilder::Create(
      domain, format, prompt_options,
      [counter](absl::string_view text) { return counter->Encode(text).size(); });
  if (!prompts.ok()) return prompts.status();
  engine->prompts_ = *std::move(prompts);
  engine->format_stops_ = reply::FormatStopSequences(format);
  engine->max_prompt_tokens_ = reply_config.max_prompt_tokens();
  if (reply_config.has_candidates()) {
    if (reply_config.candidates() < 1 || reply_config.candidates() > config.max_candidates()) {
      return absl::InvalidArgumentError(absl::StrCat("reply.candidates: ", reply_config.candidates(),
                                                     " is outside [1, max_candidates = ",
                                                     config.max_candidates(), "]"));
    }
    engine->reply_candidates_ = static_cast<int>(reply_config.candidates());
  } else {
    engine->reply_candidates_ = std::min<int>(kDefaultReplyCandidates, static_cast<int>(config.max_candidates()));
  }
  if (reply_config.has_candidate_temperature()) {
    const float t = reply_config.candidate_temperature();
    if (!(t > 0.0f && t <= 2.0f)) {
      return absl::InvalidArgumentError(
          absl::StrCat("reply.candidate_temperature: ", t, " is outside (0, 2]"));
    }
    engine->candidate_temperature_ = t;
  }
  if (reply_config.has_no_repeat_ngram()) {
    if (reply_config.no_repeat_ngram() > 32) {
      return absl::InvalidArgumentError(absl::StrCat(
          "reply.no_repeat_ngram: ", reply_config.no_repeat_ngram(), " is outside [0, 32]"));
    }
    engine->no_repeat_ngram_ = static_cast<int>(reply_config.no_repeat_ngram());
  }

  engine->engine_ = std::make_unique<lm::Engine>(*engine->model_, *engine->tokenizer_, options, registry);
  log::Info("model loaded", {{"dir", model.dir()},
                             {"layers", engine->model_->config().n_layer},
                             {"width", engine->model_->config().n_embd},
                             {"context", engine->model_->config().n_positions},
                             {"vocab", engine->model_->config().vocab_size}});
  return engine;
}

std::shared_ptr<ReplyCall> NeuralReplyEngine::Start(const v1::GenerationContext& context,
                                                    const v1::SamplingParams& params, bool stream,
                                                    absl::Time deadline, ReplySink sink) {
  auto call = std::make_shared<Call>(*this, context, params, stream, std::move(sink));
  call->Run(deadline);
  return call;
}

}  // namespace helpline::generation
