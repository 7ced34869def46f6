#include "lm/serving/engine.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "lm/serving/placeholders.h"
#include "lm/serving/prefix_cache.h"
#include "lm/serving/sampler.h"
#include "lm/serving/stop_matcher.h"

namespace helpline::lm {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

bool Finite(float v) { return std::isfinite(v); }

absl::Status ValidateRequest(const GenerationRequest& request, const Gpt2Config& config,
                             const EngineOptions& options) {
  const auto invalid = [](auto&&... parts) {
    return absl::InvalidArgumentError(absl::StrCat(parts...));
  };
  if (request.prompt.empty()) return invalid("prompt: empty");
  if (static_cast<int64_t>(request.prompt.size()) >= config.n_positions) {
    return invalid("prompt: ", request.prompt.size(), " tokens; the model's context holds ",
                   config.n_positions, " and at least one must be left to generate");
  }
  for (size_t i = 0; i < request.prompt.size(); ++i) {
    if (request.prompt[i] < 0 || request.prompt[i] >= config.vocab_size) {
      return invalid("prompt[", i, "]: id ", request.prompt[i], " is outside the vocabulary [0, ",
                     config.vocab_size, ")");
    }
  }
  if (request.max_tokens < 1 || request.max_tokens >= config.n_positions) {
    return invalid("max_tokens: ", request.max_tokens, " is outside [1, ",
                   config.n_positions - 1, "]");
  }
  if (request.n < 1 || request.n > options.max_candidates) {
    return invalid("n: ", request.n, " is outside [1, ", options.max_candidates, "]");
  }
  const SamplingOptions& s = request.sampling;
  if (!Finite(s.temperature) || s.temperature < 0.0f) {
    return invalid("temperature: ", s.temperature, " must be >= 0");
  }
  if (!(s.top_p > 0.0f && s.top_p <= 1.0f)) return invalid("top_p: ", s.top_p, " is outside (0, 1]");
  if (s.top_k < 0) return invalid("top_k: ", s.top_k, " must be >= 0");
  if (!Finite(s.repetition_penalty) || s.repetition_penalty <= 0.0f) {
    return invalid("repetition_penalty: ", s.repetition_penalty, " must be > 0");
  }
  if (!(s.frequency_penalty >= -2.0f && s.frequency_penalty <= 2.0f)) {
    return invalid("frequency_penalty: ", s.frequency_penalty, " is outside [-2, 2]");
  }
  if (!(s.presence_penalty >= -2.0f && s.presence_penalty <= 2.0f)) {
    return invalid("presence_penalty: ", s.presence_penalty, " is outside [-2, 2]");
  }
  if (s.no_repeat_ngram < 0 || s.no_repeat_ngram > 32) {
    return invalid("no_repeat_ngram: ", s.no_repeat_ngram, " is outside [0, 32]");
  }
  if (static_cast<int>(request.stop.size()) > options.max_stop_sequences) {
    return invalid("stop: ", request.stop.size(), " sequences; at most ",
                   options.max_stop_sequences);
  }
  for (size_t i = 0; i < request.stop.size(); ++i) {
    if (request.stop[i].empty() || request.stop[i].size() > kMaxStopBytes) {
      return invalid("stop[", i, "]: ", request.stop[i].size(), " bytes; must be 1..",
                     kMaxStopBytes);
    }
  }
  if (!request.on_done) return invalid("on_done: required");
  return absl::OkStatus();
}

EngineOptions Normalized(EngineOptions o) {
  o.max_running_sequences = std::max(1, o.max_running_sequences);
  o.max_batch_tokens = std::max(1, o.max_batch_tokens);
  o.prefill_chunk = std::max(1, o.prefill_chunk);
  o.max_waiting_requests = std::max(1, o.max_waiting_requests);
  o.max_candidates = std::clamp(o.max_candidates, 1, o.max_running_sequences);
  o.max_stop_sequences = std::max(0, o.max_stop_sequences);
  return o;
}

struct Metrics {
  explicit Metrics(metrics::Registry& r)
      : prompt_tokens(r.AddCounter("helpline_generation_tokens_total",
                                   "Tokens read (prompt) and generated (completion).", {"kind"})
                          .Get({"prompt"})),
        completion_tokens(
            r.AddCounter("helpline_generation_tokens_total", "", {"kind"}).Get({"completion"})),
        prefill_tokens(r.AddCounter("helpline_generation_prefill_tokens_total",
                                    "Prompt tokens run through the model (not taken from the "
                                    "prefix cache).")
                           .Get(std::vector<std::string>{})),
        time_to_first_token(
            r.AddHistogram("helpline_generation_time_to_first_token_seconds",
                           "Time from the request to the first output token.", {})
                .Get(std::vector<std::string>{})),
        time_per_output_token(
            r.AddHistogram("helpline_generation_time_per_output_token_seconds",
                           "Time between output tokens after the first.", {},
                           {0.00001, 0.0001, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1})
                .Get(std::vector<std::string>{})),
        request_duration(r.AddHistogram("helpline_generation_request_duration_seconds",
                                         "Time from the request to its end (all candidates).",
                                         {})
                             .Get(std::vector<std::string>{})),
        queue_time(r.AddHistogram("helpline_generation_queue_time_seconds",
                                  "Time a request waited before joining the batch.", {})
                       .Get(std::vector<std::string>{})),
        batch_size(r.AddHistogram("helpline_generation_batch_size",
                                  "Sequences per engine step.", {}, {1, 2, 4, 8, 16, 32, 64})
                       .Get(std::vector<std::string>{})),
        batch_tokens(r.AddHistogram("helpline_generation_batch_tokens",
                                    "Tokens per engine step (decodes + prefill chunks).", {},
                                    {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048})
                         .Get(std::vector<std::string>{})),
        running_sequences(r.AddGauge("helpline_generation_running_sequences",
                                     "Sequence slots held by requests in the batch.")
                              .Get(std::vector<std::string>{})),
        waiting_requests(r.AddGauge("helpline_generation_waiting_requests",
                                    "Requests queued for the batch.")
                             .Get(std::vector<std::string>{})),
        kv_cache_bytes(r.AddGauge("helpline_generation_kv_cache_bytes",
                                  "KV cache memory of the sequences in the batch.")
                           .Get(std::vector<std::string>{})),
        candidates(r.AddCounter("helpline_generation_candidates_total",
                                "Finished candidates by finish reason.", {"finish_reason"})),
        rejected(r.AddCounter("helpline_generation_requests_rejected_total",
                              "Requests refused by Submit, by status code.", {"code"})),
        cache_lookups(r.AddCounter("helpline_generation_prefix_cache_lookups_total",
                                   "Prefix cache lookups of requests with a cache key.",
                                   {"result"})),
        cache_hits(cache_lookups.Get({"hit"})),
        cache_misses(cache_lookups.Get({"miss"})),
        cache_tokens_saved(r.AddCounter("helpline_generation_prefix_cache_tokens_saved_total",
                                        "Prompt tokens taken from the prefix cache.")
                               .Get(std::vector<std::string>{})),
        cache_bytes(r.AddGauge("helpline_generation_prefix_cache_bytes",
                               "KV cache memory held by the session prefix cache.")
                        .Get(std::vector<std::string>{})),
        cache_keys(r.AddGauge("helpline_generation_prefix_cache_keys",
                              "Sessions held by the prefix cache.")
                       .Get(std::vector<std::string>{})) {}

  metrics::Counter& prompt_tokens;
  metrics::Counter& completion_tokens;
  metrics::Counter& prefill_tokens;
  metrics::Histogram& time_to_first_token;
  metrics::Histogram& time_per_output_token;
  metrics::Histogram& request_duration;
  metrics::Histogram& queue_time;
  metrics::Histogram& batch_size;
  metrics::Histogram& batch_tokens;
  metrics::Gauge& running_sequences;
  metrics::Gauge& waiting_requests;
  metrics::Gauge& kv_cache_bytes;
  metrics::Family<metrics::Counter>& candidates;
  metrics::Family<metrics::Counter>& rejected;
  metrics::Family<metrics::Counter>& cache_lookups;
  metrics::Counter& cache_hits;
  metrics::Counter& cache_misses;
  metrics::Counter& cache_tokens_saved;
  metrics::Gauge& cache_bytes;
  metrics::Gauge& cache_keys;
};

}  // namespace

const char* FinishReasonName(FinishReason reason) {
  switch (reason) {
    case FinishReason::kLength:
      return "length";
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kEos:
      return "eos";
    case FinishReason::kCancelled:
      return "cancelled";
  }
  return "unknown";
}

absl::Status ValidateEngineOptions(const EngineOptions& o) {
  const auto at_least_one = [](const char* name, int v) -> absl::Status {
    if (v >= 1) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(name, ": ", v, " must be >= 1"));
  };
  for (auto [name, value] : {std::pair{"max_running_sequences", o.max_running_sequences},
                             {"max_batch_tokens", o.max_batch_tokens},
                             {"prefill_chunk", o.prefill_chunk},
                             {"max_waiting_requests", o.max_waiting_requests},
                             {"max_candidates", o.max_candidates}}) {
    if (absl::Status s = at_least_one(name, value); !s.ok()) return s;
  }
  if (o.max_candidates > o.max_running_sequences) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_candidates: ", o.max_candidates, " exceeds max_running_sequences (",
                     o.max_running_sequences, ")"));
  }
  if (o.max_stop_sequences < 0) {
    return absl::InvalidArgumentError("max_stop_sequences: must be >= 0");
  }
  return absl::OkStatus();
}

class Engine::Loop {
 public:
  Loop(Gpt2Model& model, const BpeTokenizer& tokenizer, EngineOptions options,
       metrics::Registry& registry)
      : model_(model),
        tokenizer_(tokenizer),
        options_(Normalized(options)),
        metrics_(registry),
        prefix_cache_(options_.prefix_cache_bytes),
        seed_source_(std::random_device{}()) {
    const Gpt2Config& config = model_.config();
    if (std::optional<int32_t> eos = tokenizer_.eos_id(); eos && *eos < config.vocab_size) {
      eos_ids_.insert(*eos);
    }
    if (config.eos_token_id >= 0 && config.eos_token_id < config.vocab_size) {
      eos_ids_.insert(config.eos_token_id);
    }
    thread_ = std::thread([this] { Run(); });
  }

  ~Loop() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

  const Gpt2Config& config() const { return model_.config(); }

  absl::StatusOr<uint64_t> Submit(GenerationRequest request) {
    if (absl::Status s = ValidateRequest(request, model_.config(), options_); !s.ok()) {
      metrics_.rejected.Get({"invalid_argument"}).Increment();
      return s;
    }
    auto waiting = std::make_unique<Waiting>();
    waiting->request = std::move(request);
    waiting->submitted = Clock::now();
    uint64_t id;
    {
      std::lock_guard lock(mu_);
      if (stop_) {
        metrics_.rejected.Get({"unavailable"}).Increment();
        return absl::UnavailableError("generation engine is shutting down");
      }
      if (static_cast<int>(waiting_.size()) >= options_.max_waiting_requests) {
        metrics_.rejected.Get({"resource_exhausted"}).Increment();
        // A rough time until a slot frees: the mean request duration times the queue's
        // depth in batches.
        const double batches = static_cast<double>(waiting_.size()) /
                               static_cast<double>(options_.max_running_sequences);
        const int64_t retry_ms = std::max<int64_t>(
            10, static_cast<int64_t>(mean_request_seconds_.load() * 1000.0 * batches));
        return absl::ResourceExhaustedError(absl::StrCat(
            "generation queue full (", waiting_.size(), " requests waiting); retry after ~",
            retry_ms, " ms"));
      }
      id = next_id_++;
      waiting->id = id;
      waiting_.push_back(std::move(waiting));
      metrics_.waiting_requests.Set(static_cast<double>(waiting_.size()));
    }
    cv_.notify_all();
    return id;
  }

  void Cancel(uint64_t id) {
    {
      std::lock_guard lock(mu_);
      cancels_.insert(id);
    }
    cv_.notify_all();
  }

 private:
  struct Waiting {
    uint64_t id = 0;
    GenerationRequest request;
    Clock::time_point submitted;
  };

  struct Candidate {
    Candidate(int index, uint64_t seed, const GenerationRequest& request,
              const BpeTokenizer& tokenizer)
        : index(index),
          rng(seed, static_cast<uint64_t>(index)),
          decoder(tokenizer),
          matcher(request.stop) {}

    int index;
    std::unique_ptr<KvCache> cache;
    // Prompt + generated ids; the cache holds the first cache->length() of them.
    std::vector<int32_t> tokens;
    std::unique_ptr<TokenHistory> history;  // null without penalties
    CandidateRng rng;
    StreamDecoder decoder;
    StopMatcher matcher;
    std::vector<int32_t> out_ids;
    std::string generated;  // the text of out_ids, kept only for allowed_placeholders
    std::vector<float> logprobs;
    std::vector<size_t> text_start;  // byte offset of each out id's text in the stream
    std::string text;
    int32_t pending = 0;  // the last sampled id, fed at the next step
    bool done = false;
    FinishReason reason = FinishReason::kLength;
  };

  struct Running {
    uint64_t id = 0;
    GenerationRequest request;
    Clock::time_point submitted;
    Clock::time_point admitted;
    std::optional<Clock::time_point> first_token;
    Clock::time_point last_token;
    uint64_t last_token_step = 0;
    uint64_t seed = 0;
    int max_tokens = 0;
    int cached_tokens = 0;
    int prefilled = 0;      // prompt tokens in candidate 0's cache
    bool decoding = false;  // prefill done, candidates started
    bool deadline_exceeded = false;
    absl::Status error;     // the model step failed: on_done gets this
    std::vector<std::unique_ptr<Candidate>> candidates;  // [0] only until prefill is done
    SamplingOptions greedy_sampling;  // request.sampling at temperature 0 (greedy_first)
  };

  // One input of a step.
  struct Ref {
    Running* request;
    Candidate* candidate;
    int prefill_tokens;  // 0 for a decode
  };

  void Run() {
    for (;;) {
      std::vector<std::unique_ptr<Waiting>> dropped;
      absl::flat_hash_set<uint64_t> cancels;
      bool stop;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [this] {
          return stop_ || !waiting_.empty() || !running_.empty() || !cancels_.empty();
        });
        stop = stop_;
        cancels.swap(cancels_);
        const Clock::time_point now = Clock::now();
        for (auto it = waiting_.begin(); it != waiting_.end();) {
          if (stop || cancels.contains((*it)->id) || (*it)->request.deadline <= now) {
            dropped.push_back(std::move(*it));
            it = waiting_.erase(it);
          } else {
            ++it;
          }
        }
        metrics_.waiting_requests.Set(static_cast<double>(waiting_.size()));
      }
      const Clock::time_point now = Clock::now();
      for (auto& w : dropped) DropWaiting(*w, now);
      for (auto& r : running_) {
        const bool expired = r->request.deadline <= now;
        if (stop || expired || cancels.contains(r->id)) {
          r->deadline_exceeded = expired && !stop && !cancels.contains(r->id);
          for (auto& c : r->candidates) {
            if (!c->done) FinishCandidate(*r, *c, FinishReason::kCancelled);
          }
        }
      }
      SweepFinished();
      if (!stop) Step();
      SweepFinished();
      UpdateGauges();
      RunCompletions();
      if (stop) return;
    }
  }

  // Plans and runs one model step, then samples.
  void Step() {
    inputs_.clear();
    refs_.clear();
    for (auto& r : running_) {
      if (!r->decoding) continue;
      for (auto& c : r->candidates) {
        if (c->done) continue;
        inputs_.push_back(StepInput{c->cache.get(), absl::MakeConstSpan(&c->pending, 1)});
        refs_.push_back(Ref{r.get(), c.get(), 0});
      }
    }
    int budget = options_.max_batch_tokens - static_cast<int>(inputs_.size());
    for (auto& r : running_) {
      if (budget <= 0) break;
      if (!r->decoding) AddPrefill(*r, budget);
    }
    while (budget > 0) {
      std::unique_ptr<Waiting> next;
      {
        std::lock_guard lock(mu_);
        if (waiting_.empty() ||
            running_slots_ + waiting_.front()->request.n > options_.max_running_sequences) {
          break;
        }
        next = std::move(waiting_.front());
        waiting_.pop_front();
        metrics_.waiting_requests.Set(static_cast<double>(waiting_.size()));
      }
      running_.push_back(Admit(*next));
      AddPrefill(*running_.back(), budget);
    }
    if (inputs_.empty()) return;

    ++step_;
    int tokens = 0;
    for (const StepInput& in : inputs_) tokens += static_cast<int>(in.tokens.size());
    metrics_.batch_size.Observe(static_cast<double>(inputs_.size()));
    metrics_.batch_tokens.Observe(tokens);

    if (absl::Status s = model_.Step(inputs_, logits_); !s.ok()) {
      // Fail every request of the batch; the others (none, in practice) go on.
      absl::flat_hash_set<Running*> failed;
      for (const Ref& ref : refs_) failed.insert(ref.request);
      for (Running* r : failed) {
        Fail(*r, absl::InternalError(absl::StrCat("model step failed: ", s.message())));
      }
      return;
    }
    const size_t vocab = static_cast<size_t>(model_.config().vocab_size);
    for (size_t i = 0; i < refs_.size(); ++i) {
      const Ref& ref = refs_[i];
      const absl::Span<const float> row(logits_.data() + i * vocab, vocab);
      Running& r = *ref.request;
      if (ref.prefill_tokens > 0) {
        r.prefilled += ref.prefill_tokens;
        if (r.prefilled == static_cast<int>(r.request.prompt.size())) StartCandidates(r, row);
      } else {
        SampleAndAppend(r, *ref.candidate, row);
      }
    }
  }

  void AddPrefill(Running& r, int& budget) {
    const int left = static_cast<int>(r.request.prompt.size()) - r.prefilled;
    const int chunk = std::min({left, options_.prefill_chunk, budget});
    if (chunk <= 0) return;
    budget -= chunk;
    Candidate& c = *r.candidates[0];
    inputs_.push_back(StepInput{
        c.cache.get(), absl::MakeConstSpan(r.request.prompt.data() + r.prefilled, chunk)});
    refs_.push_back(Ref{&r, &c, chunk});
    metrics_.prefill_tokens.Increment(chunk);
  }

  std::unique_ptr<Running> Admit(Waiting& w) {
    auto r = std::make_unique<Running>();
    r->id = w.id;
    r->request = std::move(w.request);
    r->submitted = w.submitted;
    r->admitted = Clock::now();
    r->seed = r->request.sampling.seed;
    while (r->seed == 0) r->seed = seed_source_();
    r->greedy_sampling = r->request.sampling;
    r->greedy_sampling.temperature = 0.0f;
    const int prompt = static_cast<int>(r->request.prompt.size());
    r->max_tokens = std::min(r->request.max_tokens, model_.config().n_positions - prompt);
    running_slots_ += r->request.n;
    metrics_.queue_time.Observe(Seconds(r->admitted - r->submitted));
    metrics_.prompt_tokens.Increment(prompt);

    auto c = std::make_unique<Candidate>(0, r->seed, r->request, tokenizer_);
    if (!r->request.cache_key.empty()) {
      // At least the last prompt token runs, so that its logits exist.
      PrefixCache::Match match =
          prefix_cache_.Lookup(r->request.cache_key, r->request.prompt, prompt - 1);
      if (match.cache != nullptr) {
        metrics_.cache_hits.Increment();
        metrics_.cache_tokens_saved.Increment(match.tokens);
        c->cache = std::move(match.cache);
        r->prefilled = r->cached_tokens = match.tokens;
      } else {
        metrics_.cache_misses.Increment();
      }
    }
    if (c->cache == nullptr) c->cache = model_.NewCache();
    c->tokens = r->request.prompt;
    if (UsesPenalties(r->request.sampling)) {
      c->history = std::make_unique<TokenHistory>();
      c->history->AddPrompt(r->request.prompt);
    }
    r->candidates.push_back(std::move(c));
    return r;
  }

  // The prompt is in candidate 0's cache and `row` holds its last token's logits: the other
  // candidates start from copies of that cache, then each samples its first token.
  void StartCandidates(Running& r, absl::Span<const float> row) {
    r.decoding = true;
    const Candidate& first = *r.candidates[0];
    for (int i = 1; i < r.request.n; ++i) {
      auto c = std::make_unique<Candidate>(i, r.seed, r.request, tokenizer_);
      c->cache = first.cache->Clone();
      c->tokens = first.tokens;
      if (first.history != nullptr) c->history = std::make_unique<TokenHistory>(*first.history);
      r.candidates.push_back(std::move(c));
    }
    for (auto& c : r.candidates) SampleAndAppend(r, *c, row);
  }

  void SampleAndAppend(Running& r, Candidate& c, absl::Span<const float> row) {
    const SamplingOptions& sampling =
        c.index == 0 && r.request.sampling.greedy_first ? r.greedy_sampling : r.request.sampling;
    if (r.request.allowed_placeholders.has_value()) {
      if (placeholders_ == nullptr) {
        placeholders_ = std::make_unique<PlaceholderGuard>(tokenizer_, model_.config().vocab_size);
      }
      placeholders_->Banned(c.generated, *r.request.allowed_placeholders, banned_);
      if (!banned_.empty() && banned_.size() < row.size()) {
        masked_.assign(row.begin(), row.end());
        for (int32_t id : banned_) masked_[static_cast<size_t>(id)] = -std::numeric_limits<float>::infinity();
        row = masked_;
      }
    }
    const SampledToken t = sampler_.Sample(row, sampling, c.history.get(), c.rng);
    const Clock::time_point now = Clock::now();
    if (!r.first_token) {
      r.first_token = now;
      metrics_.time_to_first_token.Observe(Seconds(now - r.submitted));
    } else if (r.last_token_step != step_) {
      metrics_.time_per_output_token.Observe(Seconds(now - r.last_token));
    }
    r.last_token = now;
    r.last_token_step = step_;
    metrics_.completion_tokens.Increment();

    if (eos_ids_.contains(t.id)) {
      FinishCandidate(r, c, FinishReason::kEos);
      return;
    }
    c.text_start.push_back(c.matcher.pushed_bytes());
    c.out_ids.push_back(t.id);
    if (placeholders_ != nullptr && r.request.allowed_placeholders.has_value()) {
      c.generated += placeholders_->TokenText(t.id);
    }
    c.logprobs.push_back(t.logprob);
    c.tokens.push_back(t.id);
    if (c.history != nullptr) c.history->AddOutput(t.id);
    Emit(r, c, c.matcher.Push(c.decoder.Push(t.id)));
    if (c.matcher.stopped()) {
      FinishCandidate(r, c, FinishReason::kStop);
    } else if (static_cast<int>(c.out_ids.size()) >= r.max_tokens) {
      FinishCandidate(r, c, FinishReason::kLength);
    } else {
      c.pending = t.id;
    }
  }

  void Emit(Running& r, Candidate& c, const std::string& piece) {
    if (piece.empty()) return;
    c.text += piece;
    if (r.request.on_text) r.request.on_text(c.index, piece);
  }

  void FinishCandidate(Running& r, Candidate& c, FinishReason reason) {
    if (!c.matcher.stopped()) {
      // Whatever the decoder and the matcher held back (a stop may still complete).
      Emit(r, c, c.matcher.Push(c.decoder.Flush()));
      Emit(r, c, c.matcher.Flush());
    }
    if (c.matcher.stopped()) {
      reason = FinishReason::kStop;
      size_t keep = 0;
      while (keep < c.out_ids.size() && c.text_start[keep] < c.matcher.stop_offset()) ++keep;
      c.out_ids.resize(keep);
      c.logprobs.resize(keep);
    }
    c.done = true;
    c.reason = reason;
    metrics_.candidates.Get({FinishReasonName(reason)}).Increment();
  }

  // Ends the requests whose candidates are all done.
  void SweepFinished() {
    for (auto it = running_.begin(); it != running_.end();) {
      Running& r = **it;
      const bool all_done =
          !r.error.ok() || r.decoding ? std::all_of(r.candidates.begin(), r.candidates.end(),
                                   [](const auto& c) { return c->done; })
                     : r.candidates[0]->done;
      if (!all_done) {
        ++it;
        continue;
      }
      Complete(r);
      it = running_.erase(it);
    }
  }

  void Complete(Running& r) {
    const Clock::time_point now = Clock::now();
    if (!r.error.ok()) {
      Release(r, now);
      completions_.push_back(
          [done = std::move(r.request.on_done), error = r.error]() { done(error); });
      return;
    }
    GenerationResult result;
    result.prompt_tokens = static_cast<int>(r.request.prompt.size());
    result.cached_prompt_tokens = r.cached_tokens;
    result.seed = r.seed;
    result.deadline_exceeded = r.deadline_exceeded;
    result.queue_time = r.admitted - r.submitted;
    if (r.first_token) result.time_to_first_token = *r.first_token - r.submitted;
    for (auto& c : r.candidates) {
      CandidateResult& out = result.candidates.emplace_back();
      out.ids = c->out_ids;
      out.text = std::move(c->text);
      out.finish_reason = c->reason;
      for (float lp : c->logprobs) out.logprob_sum += lp;
    }
    // Candidates that never started (cancelled during prefill).
    while (static_cast<int>(result.candidates.size()) < r.request.n) {
      result.candidates.emplace_back().finish_reason = FinishReason::kCancelled;
      metrics_.candidates.Get({FinishReasonName(FinishReason::kCancelled)}).Increment();
    }
    if (!r.request.cache_key.empty() && options_.prefix_cache_bytes > 0) {
      std::vector<PrefixCache::Sequence> keep;
      for (auto& c : r.candidates) {
        const int length = c->cache->length();
        if (length == 0) continue;
        PrefixCache::Sequence& seq = keep.emplace_back();
        seq.tokens.assign(c->tokens.begin(), c->tokens.begin() + length);
        seq.cache = std::move(c->cache);
      }
      prefix_cache_.Insert(r.request.cache_key, std::move(keep));
    }
    Release(r, now);
    completions_.push_back(
        [done = std::move(r.request.on_done), result = std::move(result)]() mutable {
          done(std::move(result));
        });
  }

  void Fail(Running& r, absl::Status status) {
    r.error = std::move(status);
    for (auto& c : r.candidates) c->done = true;
  }

  void Release(Running& r, Clock::time_point now) {
    running_slots_ -= r.request.n;
    const double seconds = Seconds(now - r.submitted);
    metrics_.request_duration.Observe(seconds);
    mean_request_seconds_.store(0.9 * mean_request_seconds_.load() + 0.1 * seconds);
    for (auto& c : r.candidates) c->cache.reset();
  }

  void DropWaiting(Waiting& w, Clock::time_point now) {
    GenerationResult result;
    result.prompt_tokens = static_cast<int>(w.request.prompt.size());
    result.seed = w.request.sampling.seed;
    result.deadline_exceeded = w.request.deadline <= now;
    result.queue_time = now - w.submitted;
    for (int i = 0; i < w.request.n; ++i) {
      result.candidates.emplace_back().finish_reason = FinishReason::kCancelled;
      metrics_.candidates.Get({FinishReasonName(FinishReason::kCancelled)}).Increment();
    }
    metrics_.request_duration.Observe(Seconds(now - w.submitted));
    completions_.push_back(
        [done = std::move(w.request.on_done), result = std::move(result)]() mutable {
          done(std::move(result));
        });
  }

  void UpdateGauges() {
    size_t bytes = 0;
    for (const auto& r : running_) {
      for (const auto& c : r->candidates) {
        if (c->cache != nullptr) bytes += c->cache->bytes();
      }
    }
    metrics_.running_sequences.Set(running_slots_);
    metrics_.kv_cache_bytes.Set(static_cast<double>(bytes));
    metrics_.cache_bytes.Set(static_cast<double>(prefix_cache_.bytes()));
    metrics_.cache_keys.Set(static_cast<double>(prefix_cache_.keys()));
  }

  void RunCompletions() {
    std::vector<std::function<void()>> completions;
    completions.swap(completions_);
    for (auto& f : completions) f();
  }

  Gpt2Model& model_;
  const BpeTokenizer& tokenizer_;
  const EngineOptions options_;
  Metrics metrics_;
  absl::flat_hash_set<int32_t> eos_ids_;

  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;                                // guarded by mu_
  std::deque<std::unique_ptr<Waiting>> waiting_;     // guarded by mu_
  absl::flat_hash_set<uint64_t> cancels_;            // guarded by mu_
  uint64_t next_id_ = 1;                             // guarded by mu_
  std::atomic<double> mean_request_seconds_{0.0};

  // Owner thread only.
  std::vector<std::unique_ptr<Running>> running_;
  int running_slots_ = 0;
  PrefixCache prefix_cache_;
  Sampler sampler_;
  std::unique_ptr<PlaceholderGuard> placeholders_;  // made at the first request that needs it
  std::vector<int32_t> banned_;                     // scratch of the placeholder ban
  std::vector<float> masked_;                       // a logits row with banned ids at -inf
  std::mt19937_64 seed_source_;
  uint64_t step_ = 0;
  std::vector<StepInput> inputs_;
  std::vector<Ref> refs_;
  std::vector<float> logits_;
  std::vector<std::function<void()>> completions_;

  std::thread thread_;  // last: starts after everything above exists
};

Engine::Engine(Gpt2Model& model, const BpeTokenizer& tokenizer, EngineOptions options,
               metrics::Registry& registry)
    : loop_(std::make_unique<Loop>(model, tokenizer, options, registry)) {}

Engine::~Engine() = default;

absl::StatusOr<uint64_t> Engine::Submit(GenerationRequest request) {
  return loop_->Submit(std::move(request));
}

void Engine::Cancel(uint64_t request_id) { loop_->Cancel(request_id); }

const Gpt2Config& Engine::model_config() const { return loop_->config(); }

}  // namespace helpline::lm
